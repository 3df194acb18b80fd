// Package bench measures speed against the machine's own peak: a
// peak-FMA probe, per-kernel and whole-network benchmarks, every figure
// reported as a fraction of the peak measured in the same run.
package bench
