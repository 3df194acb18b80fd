// Package peak measures the machine's floating-point ceiling: register-only
// loops of independent FMAs (generated with Avo for AVX-512 and AVX2, by
// gen/kernels' NEON emitter for arm64; plain Go for the portable tier), the yardstick every kernel and network speed
// is divided by, measured in the same run.
package peak

//go:generate go run ../../gen/peak

import (
	"runtime"
	"sync"
	"time"

	"github.com/resnetgen/resnetgen/asm"
)

// probeFLOPs is the floating-point operations of one trip of each probe.
var probeFLOPs = map[asm.Tier]float64{
	asm.AVX512: 24 * 2 * 16, // 24 zmm FMAs
	asm.AVX2:   12 * 2 * 8,  // 12 ymm FMAs
	asm.NEON:   24 * 2 * 4,  // 24 128-bit FMLAs
	asm.Purego: 12 * 2,      // 12 scalar multiply-adds
	asm.VNNI:   24 * 2 * 64, // 24 zmm VPDPBUSD: int8 operations, not floating-point ones
}

// GFLOPs measures the single-thread peak of tier t over about d, in
// GFLOP/s (the best of a few short runs, so a preempted run does not count);
// for the int8 tier VNNI, in GOP/s of VPDPBUSD.
func GFLOPs(t asm.Tier, d time.Duration) float64 {
	trips := uint64(1 << 16)
	best := 0.0
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) || best == 0 {
		start := time.Now()
		run(t, trips)
		el := time.Since(start)
		if el < time.Millisecond {
			trips *= 4
			continue
		}
		best = max(best, float64(trips)*flops(t)/el.Seconds()/1e9)
	}
	return best
}

// GFLOPsThreads runs the probe of tier t on n threads at once and returns
// their summed GFLOP/s: the ceiling for an n-worker network.
func GFLOPsThreads(t asm.Tier, n int, d time.Duration) float64 {
	if n <= 1 {
		return GFLOPs(t, d)
	}
	var wg sync.WaitGroup
	res := make([]float64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			res[i] = GFLOPs(t, d)
		}()
	}
	wg.Wait()
	sum := 0.0
	for _, r := range res {
		sum += r
	}
	return sum
}

// Trip runs n trips of tier t's probe (for a Go benchmark of the probe).
func Trip(t asm.Tier, n uint64) { run(t, n) }

// flops is the work of one trip of tier t's probe.
func flops(t asm.Tier) float64 {
	if f, ok := probeFLOPs[t]; ok && hasProbe(t) {
		return f
	}
	return probeFLOPs[asm.Purego]
}

// FLOPsPerTrip is the floating-point operations one trip of tier t's probe does.
func FLOPsPerTrip(t asm.Tier) float64 { return flops(t) }

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
