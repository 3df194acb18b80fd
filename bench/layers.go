package bench

import (
	"io"
	"sort"
	"strings"
	"time"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/asm/peak"
	"github.com/resnetgen/resnetgen/bench/ort"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
)

// LayerResult is one layer's time inside a running network; the JSON keys
// are a contract.
type LayerResult struct {
	Index      int     `json:"index"`
	Name       string  `json:"name"`
	Kind       string  `json:"kind"`
	Kernel     string  `json:"kernel"`
	ChosenBy   string  `json:"chosen_by,omitempty"` // what chose a convolution's kernel: "flag", "tuned" or "rule"
	MACs       int64   `json:"macs"`
	Ms         float64 `json:"ms"` // median over the runs
	GFLOPs     float64 `json:"gflops"`
	PeakGFLOPs float64 `json:"peak_gflops"`
	Efficiency float64 `json:"efficiency"`
	// ORTMs is ONNX Runtime's time for the same layer (with -ort), the
	// summed times of the graph nodes ORT ran for it; 0 if not measured.
	ORTMs float64 `json:"ort_ms,omitempty"`
}

// ORTLayer maps a node of ONNX Runtime's optimised graph (named after
// torch's exporter's nodes) to our layer name: "/layer1/layer1.0/conv2/Conv"
// → "layer1.0.conv2", "/layer2/layer2.0/downsample/downsample.0/Conv" →
// "layer2.0.downsample.0", "/fc/Gemm" → "fc". ORT names a Conv fused with
// the ReLU after it by the ReLU's output, so "/layer1/layer1.0/relu/Relu"
// is that block's conv1, "…/relu_1/Relu" its conv2 (a bottleneck's), and
// "/relu/Relu" the stem's conv1; a Conv fused with the residual Add and
// ReLU keeps its own name. Suffixes such as _output_0_nchwc are dropped.
func ORTLayer(node string) string {
	node = strings.TrimSuffix(strings.TrimSuffix(node, "_nchwc"), "_output_0")
	mods := strings.Split(strings.Trim(node, "/"), "/")
	if len(mods) < 2 {
		return node
	}
	mods = mods[:len(mods)-1] // the op
	name := mods[len(mods)-1] // the innermost module: conv1, downsample.0, relu, …
	switch name {
	case "relu":
		name = "conv1"
	case "relu_1":
		name = "conv2"
	}
	if len(mods) >= 3 { // layerN / layerN.i / …
		return mods[1] + "." + name
	}
	return name
}

// Layers times every layer of net (made with threads workers and a batch
// capacity of at least batch) over runs ForwardBatch calls of batch images,
// through the network's trace, per image:
// each layer's median wall time, its GFLOP/s (2·MACs per second; 0 for the
// pools, the shortcut and the input copy) and the fraction of the peak of
// threads probes on tier t, measured between the runs — an int8 layer's
// (GOP/s) of the VNNI probe's when its kernel is VNNI's (the other int8
// tiers have no probe: they are held to t's).
func Layers(info all.Info, net all.Net, t asm.Tier, threads, batch, runs int) []LayerResult {
	layers := net.Layers()
	in := make([]float32, batch*info.InputLen)
	for i := range in {
		in[i] = float32(i%7) * 0.1
	}
	out := make([]float32, batch*info.Classes)
	if err := net.ForwardBatch(in, out); err != nil { // warm caches and pages
		panic(err)
	}
	times := make([][]float64, len(layers))
	cur := make([]float64, len(layers)) // this run's time per layer: a batch may run a layer once per group of images
	net.Trace(func(i int, d time.Duration) {
		if i < len(cur) {
			cur[i] += d.Seconds()
		}
	})
	defer net.Trace(nil)
	probeOf := func(l engine.Named) asm.Tier {
		if strings.HasSuffix(l.Kernel, "_vnni") {
			return asm.VNNI
		}
		return t
	}
	peaks := map[asm.Tier][]float64{}
	for _, l := range layers {
		peaks[probeOf(l)] = nil
	}
	for r := 0; r < runs; r++ {
		if r%max(1, runs/3) == 0 {
			for pt := range peaks {
				peaks[pt] = append(peaks[pt], peak.GFLOPsThreads(pt, threads, 20*time.Millisecond))
			}
		}
		clear(cur)
		if err := net.ForwardBatch(in, out); err != nil {
			panic(err)
		}
		for i, t := range cur {
			times[i] = append(times[i], t)
		}
	}
	res := make([]LayerResult, len(layers))
	for i, l := range layers {
		pk := median(peaks[probeOf(l)])
		m := median(times[i]) / float64(batch) // per image
		res[i] = LayerResult{Index: i, Name: l.Name, Kind: l.Kind, Kernel: l.Kernel, ChosenBy: l.ChosenBy, MACs: l.MACs, Ms: m * 1e3, PeakGFLOPs: pk}
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

// ORTLayers adds ONNX Runtime's per-layer times to rs: it profiles runs
// inferences of torchvision's export of arch (bench/ort) on threads intra-op
// threads and sums each layer's nodes.
func ORTLayers(rs []LayerResult, arch string, h, w, threads, runs int, python string, log io.Writer) error {
	dir, err := ort.Dir()
	if err != nil {
		return err
	}
	if err := ort.Setup(dir, log); err != nil {
		return err
	}
	models, err := ort.Export(dir, python, []string{arch}, log)
	if err != nil {
		return err
	}
	s, err := ort.Start(dir, models[arch], threads, 1, h, w)
	if err != nil {
		return err
	}
	defer s.Close()
	nodes, err := s.Profile(runs)
	if err != nil {
		return err
	}
	byLayer := map[string]float64{}
	for node, sec := range nodes {
		byLayer[ORTLayer(node)] += sec
	}
	for i := range rs {
		rs[i].ORTMs = byLayer[rs[i].Name] * 1e3
	}
	return nil
}
