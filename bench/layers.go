package bench

import (
	"sort"
	"time"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/bench/peak"
	"github.com/resnetgen/resnetgen/generated/all"
)

// LayerResult is one layer's time inside a running network; the JSON keys
// are a contract.
type LayerResult struct {
	Index      int     `json:"index"`
	Name       string  `json:"name"`
	Kind       string  `json:"kind"`
	Kernel     string  `json:"kernel"`
	MACs       int64   `json:"macs"`
	Ms         float64 `json:"ms"` // median over the runs
	GFLOPs     float64 `json:"gflops"`
	PeakGFLOPs float64 `json:"peak_gflops"`
	Efficiency float64 `json:"efficiency"`
}

// Layers times every layer of net (made with threads workers) over runs
// Forwards of one image (ForwardBatch of 1), through the network's trace:
// each layer's median wall time, its GFLOP/s (2·MACs per second; 0 for the
// pools, the shortcut and the input copy) and the fraction of the peak of
// threads probes on tier t, measured between the runs.
func Layers(info all.Info, net all.Net, t asm.Tier, threads, runs int) []LayerResult {
	layers := net.Layers()
	in := make([]float32, info.InputLen)
	for i := range in {
		in[i] = float32(i%7) * 0.1
	}
	out := make([]float32, info.Classes)
	if err := net.ForwardBatch(in, out); err != nil { // warm caches and pages
		panic(err)
	}
	times := make([][]float64, len(layers))
	net.Trace(func(i int, d time.Duration) {
		if i < len(times) {
			times[i] = append(times[i], d.Seconds())
		}
	})
	defer net.Trace(nil)
	var peaks []float64
	for r := 0; r < runs; r++ {
		if r%max(1, runs/3) == 0 {
			peaks = append(peaks, peak.GFLOPsThreads(t, threads, 20*time.Millisecond))
		}
		if err := net.ForwardBatch(in, out); err != nil {
			panic(err)
		}
	}
	pk := median(peaks)
	res := make([]LayerResult, len(layers))
	for i, l := range layers {
		m := median(times[i])
		res[i] = LayerResult{Index: i, Name: l.Name, Kind: l.Kind, Kernel: l.Kernel, MACs: l.MACs, Ms: m * 1e3, PeakGFLOPs: pk}
		if l.MACs > 0 && m > 0 {
			res[i].GFLOPs = 2 * float64(l.MACs) / m / 1e9
			res[i].Efficiency = res[i].GFLOPs / pk
		}
	}
	return res
}

// Slowest returns the indices of the n layers that take the most time.
func Slowest(rs []LayerResult, n int) []int {
	idx := make([]int, len(rs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return rs[idx[a]].Ms > rs[idx[b]].Ms })
	return idx[:min(n, len(idx))]
}
