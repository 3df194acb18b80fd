// Package bench measures speed against the machine's own peak: a
// peak-FMA probe, per-kernel and whole-network benchmarks, every figure
// reported as a fraction of the peak measured in the same run; and sets
// our networks beside their peers: ONNX Runtime in float32 (Versus), and
// for int8 PyTorch's own int8 and ONNX Runtime on QDQ exports of our
// quantized network (Int8Peers: logits and latency).
package bench
