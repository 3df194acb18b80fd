package bench

import (
	"time"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/asm/peak"
	"github.com/resnetgen/resnetgen/generated/all"
)

// NetResult is a whole network's speed; the JSON keys are a contract.
type NetResult struct {
	Arch            string  `json:"arch"`
	Threads         int     `json:"threads"`
	Batch           int     `json:"batch"`
	LatencyMsMedian float64 `json:"latency_ms_median"`
	LatencyMsMin    float64 `json:"latency_ms_min"`
	ImagesPerS      float64 `json:"images_per_s"`
	GFLOPs          float64 `json:"gflops"`
	PeakGFLOPs      float64 `json:"peak_gflops"`
	Efficiency      float64 `json:"efficiency"`
}

// Network times ForwardBatch of batch images on net (made with that batch
// capacity and threads workers) over runs runs, measuring the peak of the
// same thread count between blocks of runs.
func Network(info all.Info, net all.Net, t asm.Tier, threads, batch, runs int) NetResult {
	in := make([]float32, batch*info.InputLen)
	out := make([]float32, batch*info.Classes)
	for i := range in {
		in[i] = float32(i%7) * 0.1
	}
	if err := net.ForwardBatch(in, out); err != nil { // warm up
		panic(err)
	}
	var lat, peaks []float64
	for r := 0; r < runs; r++ {
		if r%max(1, runs/3) == 0 {
			peaks = append(peaks, peak.GFLOPsThreads(t, threads, 20*time.Millisecond))
		}
		start := time.Now()
		if err := net.ForwardBatch(in, out); err != nil {
			panic(err)
		}
		lat = append(lat, time.Since(start).Seconds())
	}
	med := median(lat)
	best := lat[0]
	for _, l := range lat {
		best = min(best, l)
	}
	res := NetResult{Arch: info.Arch, Threads: threads, Batch: batch,
		LatencyMsMedian: med * 1e3, LatencyMsMin: best * 1e3, ImagesPerS: float64(batch) / med,
		GFLOPs: 2 * float64(info.MACs) * float64(batch) / med / 1e9, PeakGFLOPs: median(peaks)}
	res.Efficiency = res.GFLOPs / res.PeakGFLOPs
	return res
}
