package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/bench"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
)

// int8Options are the options of a benchmark's int8 Model: calibrated at
// New on a few seeded images (the scales do not change the speed).
func int8Options(net *resnet.Network) []engine.Option {
	rng := rand.New(rand.NewPCG(8, 8))
	x := make([]float32, 4*net.Values[0].Len())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return []engine.Option{engine.WithInt8Calibrating(x)}
}

// int8Tiers are the int8 tiers -kernels measures: those named (comma-
// separated), or every SIMD int8 tier here (the portable one if none).
func int8Tiers(names string) ([]asm.Tier, error) {
	var out []asm.Tier
	if names == "" {
		for _, t := range asm.Int8Tiers() {
			if t != asm.Purego {
				out = append(out, t)
			}
		}
		if len(out) == 0 {
			out = []asm.Tier{asm.Purego}
		}
		return out, nil
	}
	for _, name := range strings.Split(names, ",") {
		t, err := asm.ParseTier(strings.TrimSpace(name))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		if !contains(asm.Int8Tiers(), t) {
			return nil, fmt.Errorf("%w: %v has no int8 kernels here (int8 tiers: %v)", errUsage, t, asm.Int8Tiers())
		}
		out = append(out, t)
	}
	return out, nil
}

func contains(ts []asm.Tier, t asm.Tier) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// benchInt8Kernels is bench -kernels -precision int8: every int8 kernel of
// the family's int8 packages on one thread, in GOP/s and as a fraction of
// the VNNI probe (VPDPBUSD) measured between the runs.
func benchInt8Kernels(tierNames, filter string, opts bench.Options, passes int, asJSON bool, stdout, stderr io.Writer) error {
	tiers, err := int8Tiers(tierNames)
	if err != nil {
		return err
	}
	var samples [][]bench.KernelResult
	for pass := 0; pass < passes; pass++ {
		fmt.Fprintf(stderr, "pass %d of %d\n", pass+1, passes)
		var results []bench.KernelResult
		for _, t := range tiers {
			jobs, err := bench.FamilyInt8Kernels(t)
			if err != nil {
				return err
			}
			for _, j := range jobs {
				if strings.Contains(j.Name, filter) {
					results = append(results, j.Run(opts))
				}
			}
		}
		samples = append(samples, results)
	}
	results := bench.Combine(samples)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	fmt.Fprintf(stdout, "int8 kernels, one thread, %s; GOP/s = 2·MACs/time; peak = the VNNI probe (VPDPBUSD) of the same run.\n", cpuModel())
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kernel\ttier\tGOP/s\tpeak GOP/s\tfraction\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.3f\t\n", r.Name, r.Tier, r.GFLOPs, r.PeakGFLOPs, r.Efficiency)
	}
	return tw.Flush()
}

// precisionResult is one network's float32 and int8 latency, alternated.
type precisionResult struct {
	Arch    string  `json:"arch"`
	Threads int     `json:"threads"`
	Batch   int     `json:"batch"`
	FP32Ms  float64 `json:"fp32_ms"`
	Int8Ms  float64 `json:"int8_ms"`
	Ratio   float64 `json:"int8_over_fp32"` // median over rounds of the per-round ratio
}

// benchPrecisions is bench -precision fp32,int8: each network's float32
// and int8 Models, both built first, timed in alternating rounds of runs
// ForwardBatch calls (medians), and the int8 ÷ float32 ratio of each round.
func benchPrecisions(archs []string, tier asm.Tier, threads, batch, rounds, runs int, conv engine.Algorithm, asJSON bool, stdout, stderr io.Writer) error {
	var results []precisionResult
	for _, a := range archs {
		info, err := all.Lookup(a)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if !info.Kernels.HasInt8() {
			return fmt.Errorf("%w: %s has no int8 kernels (the family's int8 packages: the CIFAR nets, resnet18, resnet50)", errUsage, a)
		}
		netw, err := info.Network()
		if err != nil {
			return err
		}
		w := resnet.RandomWeights(netw, 1)
		base := []engine.Option{engine.WithTier(tier), engine.WithWorkers(threads), engine.WithBatch(batch), engine.WithConv(conv)}
		fp, err := info.New(w, base...)
		if err != nil {
			return err
		}
		q, err := info.New(w, append(base, int8Options(netw)...)...)
		if err != nil {
			fp.Close()
			return err
		}
		in := make([]float32, batch*info.InputLen)
		for i := range in {
			in[i] = float32(i%7) * 0.1
		}
		out := make([]float32, batch*info.Classes)
		time1 := func(m all.Net) float64 {
			var lat []float64
			m.ForwardBatch(in, out) // warm
			for range runs {
				start := time.Now()
				if err := m.ForwardBatch(in, out); err != nil {
					panic(err)
				}
				lat = append(lat, time.Since(start).Seconds()*1e3)
			}
			return medianOf(lat)
		}
		var fpMs, qMs, ratios []float64
		for r := range rounds {
			f, i8 := time1(fp), time1(q)
			fpMs, qMs, ratios = append(fpMs, f), append(qMs, i8), append(ratios, i8/f)
			fmt.Fprintf(stderr, "%s %d threads batch %d round %d: fp32 %.2f ms, int8 %.2f ms, ratio %.3f\n", a, threads, batch, r+1, f, i8, i8/f)
		}
		fp.Close()
		q.Close()
		results = append(results, precisionResult{a, threads, batch, medianOf(fpMs), medianOf(qMs), medianOf(ratios)})
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	fmt.Fprintf(stdout, "float32 and int8 alternating, %d rounds of %d runs, %v tier, %s; ratio = median over rounds of int8 ÷ float32 latency.\n", rounds, runs, tier, cpuModel())
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "arch\tthreads\tbatch\tfp32 ms\tint8 ms\tint8 ÷ fp32\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.2f\t%.3f\t\n", r.Arch, r.Threads, r.Batch, r.FP32Ms, r.Int8Ms, r.Ratio)
	}
	return tw.Flush()
}

func medianOf(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
