// Runs a QDQ model in ONNX Runtime twice (bench/torchq's QDQ check):
//   node qdq_check.js MODEL.onnx INPUT.bin N,C,H,W OPTIMIZED.onnx
// once with graph optimisation disabled — ORT then runs QuantizeLinear,
// DequantizeLinear and float Conv node by node: the fake-quantized
// reference — and once at level "all", saving the graph it optimised to
// OPTIMIZED.onnx (session option optimizedModelFilePath), where the QDQ
// groups should have become QLinearConv. Prints one JSON line:
// {"reference": [...], "fused": [...]} (the first output, flattened).
const ort = require('onnxruntime-node');
const fs = require('fs');

const [model, input, shape, optimized] = process.argv.slice(2);
(async () => {
  const buf = fs.readFileSync(input);
  const x = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const dims = shape.split(',').map(Number);
  const out = {};
  for (const [name, level] of [['reference', 'disabled'], ['fused', 'all']]) {
    const opts = {executionProviders: ['cpu'], intraOpNumThreads: 1, graphOptimizationLevel: level};
    if (level === 'all') opts.optimizedModelFilePath = optimized;
    const s = await ort.InferenceSession.create(model, opts);
    const r = await s.run({[s.inputNames[0]]: new ort.Tensor('float32', x, dims)});
    out[name] = Array.from(r[s.outputNames[0]].data);
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.error(String(e)); process.exit(1); });
