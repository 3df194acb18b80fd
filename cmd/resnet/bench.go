package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/bench"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
)

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	kernels := fs.Bool("kernels", false, "benchmark every kernel on one thread against the peak-FMA probe")
	arch := fs.String("arch", "", "benchmark one generated network (default: the five ImageNet depths)")
	threads := fs.Int("threads", runtime.GOMAXPROCS(0), "workers per network")
	batch := fs.Int("batch", 1, "images per ForwardBatch call")
	runs := fs.Int("runs", 10, "timed runs per network")
	tiers := fs.String("tier", "", "tiers: with -kernels a comma-separated list (default every SIMD tier here), else one (default the best)")
	filter := fs.String("filter", "", "only kernels whose name contains this")
	rounds := fs.Int("rounds", 3, "interleaved peak/kernel rounds per kernel and pass")
	passes := fs.Int("passes", 3, "passes over the whole kernel list; each figure is the median over all rounds of all passes")
	asJSON := fs.Bool("json", false, "print a JSON array of {name, tier, op, kernel, stride, in_h, in_w, in_c, out_c, macs, gflops, peak_gflops, efficiency}")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !*kernels {
		return benchNetworks(*arch, *tiers, *threads, *batch, *runs, *asJSON, stdout, stderr)
	}
	if *rounds < 1 || *passes < 1 {
		return fmt.Errorf("%w: -rounds and -passes must be ≥ 1", errUsage)
	}
	var run []asm.Tier
	if *tiers == "" {
		for _, t := range asm.Tiers() {
			if t != asm.Purego {
				run = append(run, t)
			}
		}
		if len(run) == 0 {
			run = []asm.Tier{asm.Purego}
		}
	} else {
		for _, name := range strings.Split(*tiers, ",") {
			t, err := asm.ParseTier(strings.TrimSpace(name))
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			if !asm.Has(t) {
				return fmt.Errorf("tier %v is not available on this machine (have %v)", t, asm.Tiers())
			}
			run = append(run, t)
		}
	}
	opts := bench.Options{Rounds: *rounds, Progress: stderr}
	// The machines are noisy for seconds at a time: several passes over the
	// whole list spread each kernel's samples over the run.
	var samples [][]bench.KernelResult
	for pass := 0; pass < *passes; pass++ {
		fmt.Fprintf(stderr, "pass %d of %d\n", pass+1, *passes)
		var results []bench.KernelResult
		for _, t := range run {
			jobs, err := bench.FamilyKernels(t)
			if err != nil {
				return err
			}
			for _, j := range jobs {
				if strings.Contains(j.Name, *filter) {
					results = append(results, j.Run(opts))
				}
			}
		}

		samples = append(samples, results)
	}
	results := bench.Combine(samples)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "name\ttier\tMMACs\tGFLOP/s\tpeak GFLOP/s\tefficiency\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.1f\t%.3f\t\n", r.Name, r.Tier, float64(r.MACs)/1e6, r.GFLOPs, r.PeakGFLOPs, r.Efficiency)
	}
	return tw.Flush()
}

// benchNetworks times whole generated networks with synthetic weights.
func benchNetworks(arch, tierName string, threads, batch, runs int, asJSON bool, stdout, stderr io.Writer) error {
	if threads < 1 || batch < 1 || runs < 1 {
		return fmt.Errorf("%w: -threads, -batch and -runs must be ≥ 1", errUsage)
	}
	tier := asm.Best()
	if tierName != "" {
		t, err := asm.ParseTier(tierName)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		tier = t
	}
	archs := resnet.ImageNetDepths
	if arch != "" {
		archs = []string{arch}
	}
	var results []bench.NetResult
	for _, a := range archs {
		info, err := all.Lookup(a)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		fmt.Fprintf(stderr, "%s: %d threads, batch %d, %v, %d runs\n", a, threads, batch, tier, runs)
		w := resnet.RandomWeights(resnet.MustBuild(a), 1)
		net, err := info.New(w, engine.WithTier(tier), engine.WithWorkers(threads), engine.WithBatch(batch))
		if err != nil {
			return err
		}
		results = append(results, bench.Network(info, net, tier, threads, batch, runs))
		net.Close()
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if arch != "" {
			return enc.Encode(results[0])
		}
		return enc.Encode(results)
	}
	fmt.Fprintf(stdout, "Synthetic weights, %v tier; efficiency = GFLOP/s (2·MACs/latency) ÷ the peak-FMA probe on the same thread count.\n", tier)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "arch\tthreads\tbatch\tms median\tms min\timages/s\tGFLOP/s\tpeak GFLOP/s\tefficiency\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.2f\t%.1f\t%.1f\t%.1f\t%.3f\t\n", r.Arch, r.Threads, r.Batch,
			r.LatencyMsMedian, r.LatencyMsMin, r.ImagesPerS, r.GFLOPs, r.PeakGFLOPs, r.Efficiency)
	}
	return tw.Flush()
}
