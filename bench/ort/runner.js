// ONNX Runtime's side of resnetgen's side-by-side benchmark (bench/ort).
// Started by Go as: node runner.js MODEL.onnx THREADS BATCH HEIGHT WIDTH
// It loads the model with the CPU execution provider (MLAS), then reads one
// command per line on stdin and answers one JSON line on stdout:
//   {"run": N}      runs N inferences, answers {"seconds": [t1, …]}
//   {"profile": N}  runs N inferences with ORT's profiler, answers
//                   {"nodes": {name: seconds per run, …}}
//   {"logits": 1}   runs one inference, answers {"logits": [the output's values, …]}
// Errors are answered as {"error": "…"}; stdin's end ends the process.
const ort = require('onnxruntime-node');
const readline = require('readline');

const [model, threads, batch, height, width] = process.argv.slice(2);
const profilePrefix = 'resnetgen-ort-profile-' + process.pid;
const n = +batch, h = +height, w = +width;

async function session(profile) {
  return ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: +threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableProfiling: profile,
    profileFilePrefix: require('path').join(require('os').tmpdir(), profilePrefix),
  });
}

(async () => {
  let s;
  try {
    s = await session(false);
  } catch (e) {
    console.log(JSON.stringify({error: String(e)}));
    process.exit(1);
  }
  // A deterministic input in the range of normalised pixels (bench.VersusInput
  // computes the same floats: double arithmetic, rounded to float32 once).
  const x = new Float32Array(n * 3 * h * w);
  for (let i = 0; i < x.length; i++) x[i] = ((i * 7919) % 401) / 100 - 2;
  const feeds = {[s.inputNames[0]]: new ort.Tensor('float32', x, [n, 3, h, w])};
  await s.run(feeds);
  console.log(JSON.stringify({ready: s.inputNames[0]}));
  const rl = readline.createInterface({input: process.stdin});
  for await (const line of rl) {
    try {
      const cmd = JSON.parse(line);
      if (cmd.run) {
        const t = [];
        for (let i = 0; i < cmd.run; i++) {
          const a = process.hrtime.bigint();
          await s.run(feeds);
          t.push(Number(process.hrtime.bigint() - a) / 1e9);
        }
        console.log(JSON.stringify({seconds: t}));
      } else if (cmd.logits) {
        const out = await s.run(feeds);
        console.log(JSON.stringify({logits: Array.from(out[s.outputNames[0]].data)}));
      } else if (cmd.profile) {
        const p = await session(true);
        await p.run(feeds);
        for (let i = 0; i < cmd.profile; i++) await p.run(feeds);
        await p.endProfiling();
        // The profile is written as <prefix>_<time>.json: take the newest.
        const fs = require('fs'), path = require('path'), dir = require('os').tmpdir();
        const files = fs.readdirSync(dir).filter(f => f.startsWith(profilePrefix)).map(f => path.join(dir, f));
        files.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
        if (files.length === 0) throw new Error('ORT wrote no profile');
        const events = JSON.parse(fs.readFileSync(files[0], 'utf8'));
        for (const f of files) fs.unlinkSync(f);
        const nodes = {};
        for (const e of events) {
          if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) {
            const name = e.name.slice(0, -'_kernel_time'.length);
            nodes[name] = (nodes[name] || 0) + e.dur / 1e6 / (cmd.profile + 1);
          }
        }
        console.log(JSON.stringify({nodes}));
      } else {
        console.log(JSON.stringify({error: 'unknown command ' + line}));
      }
    } catch (e) {
      console.log(JSON.stringify({error: String(e)}));
    }
  }
})();
