package bench

import (
	"time"

	"github.com/resnetgen/resnetgen/asm"
)

// Peak FMA probes: each runs a loop of independent FMAs on registers only,
// so it measures the core's FMA throughput for the tier's vector width —
// the ceiling every kernel's speed is divided by.

// probeFLOPs is the floating-point operations of one trip of each probe.
var probeFLOPs = map[asm.Tier]float64{
	asm.AVX512: 24 * 2 * 16, // 24 zmm FMAs
	asm.AVX2:   12 * 2 * 8,  // 12 ymm FMAs
	asm.Purego: 12 * 2,      // 12 scalar multiply-adds
}

// PeakGFLOPs measures the single-thread peak of tier t over about d, in
// GFLOP/s (the best of a few short runs, so a preempted run does not count).
func PeakGFLOPs(t asm.Tier, d time.Duration) float64 {
	trips := uint64(1 << 16)
	best := 0.0
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) || best == 0 {
		start := time.Now()
		runProbe(t, trips)
		el := time.Since(start)
		if el < time.Millisecond {
			trips *= 4
			continue
		}
		best = max(best, float64(trips)*probeFLOPs[t]/el.Seconds()/1e9)
	}
	return best
}

// sink keeps the portable probe's result alive.
var sink float32

// peakGo is the portable probe: 12 independent multiply-add chains.
func peakGo(n uint64) {
	var a [12]float32
	x, y := float32(1.0000001), float32(1e-7)
	for ; n > 0; n-- {
		for i := range a {
			a[i] = a[i]*x + y
		}
	}
	for _, v := range a {
		sink += v
	}
}
