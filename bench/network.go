package bench

import (
	"runtime"
	"sync"
	"time"

	"github.com/resnetgen/resnetgen/asm"
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

// PeakGFLOPsThreads runs the probe of tier t on n threads at once and
// returns their summed GFLOP/s: the ceiling for an n-worker network.
func PeakGFLOPsThreads(t asm.Tier, n int, d time.Duration) float64 {
	if n <= 1 {
		return PeakGFLOPs(t, d)
	}
	var wg sync.WaitGroup
	res := make([]float64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			res[i] = PeakGFLOPs(t, d)
		}()
	}
	wg.Wait()
	sum := 0.0
	for _, r := range res {
		sum += r
	}
	return sum
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
			peaks = append(peaks, PeakGFLOPsThreads(t, threads, 20*time.Millisecond))
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
