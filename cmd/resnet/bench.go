package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/bench"
	"github.com/resnetgen/resnetgen/bench/ort"
	"github.com/resnetgen/resnetgen/cli"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
)

// coldWeightBytes is how many bytes of weight copies bench -kernels -cold
// rotates through.
const coldWeightBytes = 96 << 20

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	kernels := fs.Bool("kernels", false, "benchmark every kernel on one thread against the peak-FMA probe")
	layers := fs.Bool("layers", false, "time every layer of one network (-arch) inside Forward: ms, GFLOP/s, fraction of peak, kernel")
	versus := fs.Bool("ort", false, "run ONNX Runtime (npm's onnxruntime-node) and resnetgen alternately on torchvision's ONNX exports and print ratios")
	chart := fs.String("chart", "", "with -layers or -ort: also draw a chart into this .svg or .png file")
	arch := fs.String("arch", "", "networks, comma-separated (default: the five ImageNet depths; -layers takes one)")
	threadsFlag := fs.String("threads", fmt.Sprint(runtime.GOMAXPROCS(0)), "workers per network; -ort takes a list, e.g. 1,2")
	batchFlag := fs.String("batch", "1", "images per ForwardBatch call; -ort takes a list, e.g. 1,8")
	runs := fs.Int("runs", 10, "timed runs per network (-ort: per round and side)")
	convFlag := fs.String("conv", "auto", "3x3 stride-1 convolutions: auto (tuning cache or default rule), direct or winograd")
	tiers := fs.String("tier", "", "tiers: with -kernels a comma-separated list (default every SIMD tier here), else one (default the best)")
	filter := fs.String("filter", "", "only kernels whose name contains this")
	rounds := fs.Int("rounds", 3, "interleaved peak/kernel rounds per kernel and pass")
	passes := fs.Int("passes", 3, "passes over the whole kernel list; each figure is the median over all rounds of all passes")
	cold := fs.Bool("cold", false, "with -kernels: each run reads its weights from the next of copies filling 96 MB, as cold as inside a network at batch 1 (default: one warm copy)")
	asJSON := fs.Bool("json", false, "print a JSON array of {name, tier, op, kernel, stride, in_h, in_w, in_c, out_c, macs, gflops, peak_gflops, efficiency}")
	peers := fs.Bool("peers", false, "with -precision int8: our int8 beside PyTorch's (oneDNN, AVX-512 VNNI) and ONNX Runtime's on our scales: logits, then batch-1 latency alternated (-rounds 0: logits only)")
	precision := fs.String("precision", "fp32", "fp32, int8 (the packages with int8 kernels; -kernels: the int8 kernels, in GOP/s against the VNNI probe), or fp32,int8: both networks alternated, with their ratio")
	if err := parse(fs, args); err != nil {
		return err
	}
	conv, err := cli.ParseConv(*convFlag)
	if err != nil {
		return err
	}
	threadList, err := intList("-threads", *threadsFlag)
	if err != nil {
		return err
	}
	batchList, err := intList("-batch", *batchFlag)
	if err != nil {
		return err
	}
	archs := resnet.ImageNetDepths
	if *arch != "" {
		archs = strings.Split(*arch, ",")
	}
	if *chart != "" && !*layers && !*versus {
		return fmt.Errorf("%w: -chart goes with -layers or -ort", errUsage)
	}
	if *cold && (!*kernels || *layers || *versus) {
		return fmt.Errorf("%w: -cold goes with -kernels", errUsage)
	}
	if *peers {
		return benchInt8Peers(*precision, archs, threadList, batchList, *rounds, *runs, *asJSON, stdout, stderr)
	}
	var int8Opts []engine.Option
	switch *precision {
	case "fp32":
	case "int8":
		if *versus {
			return fmt.Errorf("%w: -ort compares float32 networks; -precision fp32,int8 compares ours in both", errUsage)
		}
		if *kernels {
			if *rounds < 1 || *passes < 1 {
				return fmt.Errorf("%w: -rounds and -passes must be ≥ 1", errUsage)
			}
			opts := bench.Options{Rounds: *rounds, Progress: stderr}
			if *cold {
				opts.WeightBytes = coldWeightBytes
			}
			return benchInt8Kernels(*tiers, *filter, opts, *passes, *asJSON, stdout, stderr)
		}
		int8Opts = []engine.Option{engine.WithPrecision(engine.Int8)} // calibrated per network below
	case "fp32,int8", "int8,fp32":
		if *kernels || *layers || *versus || len(threadList) != 1 || len(batchList) != 1 {
			return fmt.Errorf("%w: -precision fp32,int8 times whole networks (not -kernels, -layers or -ort) on one thread count and batch", errUsage)
		}
		tier, err := pickTier(*tiers)
		if err != nil {
			return err
		}
		return benchPrecisions(archs, tier, threadList[0], batchList[0], *rounds, *runs, conv, *asJSON, stdout, stderr)
	default:
		return fmt.Errorf("%w: unknown -precision %q (want fp32, int8 or fp32,int8)", errUsage, *precision)
	}
	switch {
	case *versus && !*layers:
		if *runs < 1 || *rounds < 1 {
			return fmt.Errorf("%w: -runs and -rounds must be ≥ 1", errUsage)
		}
		return benchVersus(archs, threadList, batchList, conv, *rounds, *runs, *chart, *asJSON, stdout, stderr)
	case *layers:
		if len(archs) != 1 || len(threadList) != 1 || len(batchList) != 1 {
			return fmt.Errorf("%w: -layers times one network (-arch) on one thread count and batch", errUsage)
		}
		return benchLayers(archs[0], *tiers, threadList[0], batchList[0], conv, *runs, *chart, *versus, *asJSON, stdout, stderr, int8Opts...)
	case !*kernels:
		if len(threadList) != 1 || len(batchList) != 1 {
			return fmt.Errorf("%w: -threads and -batch take one value each (lists go with -ort)", errUsage)
		}
		return benchNetworks(archs, *tiers, threadList[0], batchList[0], conv, *runs, *asJSON, stdout, stderr, int8Opts...)
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
	if *cold {
		// More than the L3 of any of our machines: inside a network a layer's
		// weights were last read a Forward ago, and on a shared host even a
		// few MB of them come back from memory (gen/kernels.prefetchesWeights).
		opts.WeightBytes = coldWeightBytes
	}
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

// intList reads a comma-separated list of positive integers.
func intList(flag, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: %s %q: want positive integers, comma-separated", errUsage, flag, s)
		}
		out = append(out, n)
	}
	return out, nil
}

// writeChart writes a chart made by draw into path, SVG or PNG by its
// extension.
func writeChart(path string, draw func(format string) ([]byte, error)) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if format != "svg" && format != "png" {
		return fmt.Errorf("%w: -chart %s: want a .svg or .png file", errUsage, path)
	}
	b, err := draw(format)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// benchLayers times every layer of one network inside Forward.
func benchLayers(arch, tierName string, threads, batch int, conv engine.Algorithm, runs int, chart string, withORT, asJSON bool, stdout, stderr io.Writer, extra ...engine.Option) error {
	tier, err := pickTier(tierName)
	if err != nil {
		return err
	}
	info, err := all.Lookup(arch)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	net, err := info.Network()
	if err != nil {
		return err
	}
	if len(extra) > 0 {
		extra = int8Options(net)
	}
	m, err := info.New(resnet.RandomWeights(net, 1), append([]engine.Option{engine.WithTier(tier), engine.WithWorkers(threads), engine.WithConv(conv), engine.WithBatch(batch)}, extra...)...)
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(stderr, "%s: %d layers, %d threads, %v, %d runs\n", arch, len(m.Layers()), threads, tier, runs)
	rs := bench.Layers(info, m, tier, threads, batch, runs)
	if withORT {
		if err := bench.ORTLayers(rs, arch, info.InputHeight, info.InputWidth, threads, runs, os.Getenv("RESNET_TORCH_PYTHON"), stderr); err != nil {
			return err
		}
	}
	if chart != "" {
		title := fmt.Sprintf("%s, %d thread(s), %v: each layer's fraction of the FMA peak (%s)", arch, threads, tier, cpuModel())
		if err := writeChart(chart, func(f string) ([]byte, error) { return bench.LayerChart(title, rs, f) }); err != nil {
			return err
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	total := 0.0
	for _, r := range rs {
		total += r.Ms
	}
	// The FMA probe's peak, and the VNNI probe's where int8 kernels ran
	// (bench.Layers holds those rows to it).
	fmaPeak, vnniPeak := 0.0, 0.0
	for _, r := range rs {
		if strings.HasSuffix(r.Kernel, "_vnni") {
			vnniPeak = r.PeakGFLOPs
		} else {
			fmaPeak = r.PeakGFLOPs
		}
	}
	peakNote := fmt.Sprintf("efficiency = GFLOP/s ÷ the peak-FMA probe on as many threads (%.1f GFLOP/s)", fmaPeak)
	allPeak := fmaPeak
	if vnniPeak > 0 {
		peakNote += fmt.Sprintf(", an int8 layer's GOP/s ÷ the VNNI probe's (%.1f GOP/s)", vnniPeak)
		allPeak = vnniPeak
	}
	fmt.Fprintf(stdout, "%s, %d thread(s), batch %d (times per image), %v tier, %s; medians of %d runs; %s.\n",
		arch, threads, batch, tier, cpuModel(), runs, peakNote)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	ortCols, ortTotal := "", 0.0
	if withORT {
		ortCols = "ORT ms\tours ÷ ORT\t"
		for _, r := range rs {
			ortTotal += r.ORTMs
		}
	}
	fmt.Fprintln(tw, "#\tlayer\tkind\tms\tshare\tGFLOP/s\tefficiency\t"+ortCols+"kernel\tchosen by\t")
	for _, r := range rs {
		eff, gf := "", ""
		if r.MACs > 0 {
			eff, gf = fmt.Sprintf("%.3f", r.Efficiency), fmt.Sprintf("%.1f", r.GFLOPs)
		}
		o := ""
		if withORT {
			o = "\t\t"
			if r.ORTMs > 0 {
				o = fmt.Sprintf("%.3f\t%.2f\t", r.ORTMs, r.Ms/r.ORTMs)
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.3f\t%.1f%%\t%s\t%s\t%s%s\t%s\t\n", r.Index, r.Name, r.Kind, r.Ms, 100*r.Ms/total, gf, eff, o, r.Kernel, r.ChosenBy)
	}
	o := ""
	if withORT {
		o = fmt.Sprintf("%.3f\t%.2f\t", ortTotal, total/ortTotal)
	}
	fmt.Fprintf(tw, "\tall\t\t%.3f\t\t%.1f\t%.3f\t%s\t\n", total, 2*float64(info.MACs)/total/1e6, 2*float64(info.MACs)/total/1e6/allPeak, o)
	return tw.Flush()
}

// benchVersus compares resnetgen with ONNX Runtime on the same ONNX files.
func benchVersus(archs []string, threads, batches []int, conv engine.Algorithm, rounds, runs int, chart string, asJSON bool, stdout, stderr io.Writer) error {
	rs, err := bench.Versus(bench.VersusOptions{Archs: archs, Threads: threads, Batches: batches, Conv: conv, Rounds: rounds, Runs: runs,
		Python: os.Getenv("RESNET_TORCH_PYTHON"), Log: stderr})
	if err != nil {
		return err
	}
	if chart != "" {
		title := fmt.Sprintf("resnetgen and ONNX Runtime %s (CPU EP), %s", ort.Version, cpuModel())
		if err := writeChart(chart, func(f string) ([]byte, error) { return bench.VersusChart(title, rs, f) }); err != nil {
			return err
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	fmt.Fprintf(stdout, "resnetgen (%v) and ONNX Runtime %s (CPU EP, graph optimisation all), alternating, %d rounds of %d runs each; %s.\n",
		asm.Best(), ort.Version, rounds, runs, cpuModel())
	fmt.Fprintln(stdout, "ratio = median over rounds of our latency ÷ ORT's (below 1: resnetgen is faster); logits Δ = max |ours − ORT's| ÷ ORT's max |logit|,")
	fmt.Fprintf(stdout, "checked to be at most %g before the timing.\n", bench.LogitsTolerance)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "arch\tthreads\tbatch\tours ms\tORT ms\tratio\tours img/s\tORT img/s\tlogits Δ\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.2f\t%.3f\t%.1f\t%.1f\t%.1e\t\n", r.Arch, r.Threads, r.Batch, r.OursMs, r.ORTMs, r.Ratio, r.OursImagesPerS, r.ORTImagesPerS, r.LogitsDiff)
	}
	return tw.Flush()
}

func cpuModel() string { return engine.CPUModel() }

// pickTier is the named tier, or the best this machine has.
func pickTier(name string) (asm.Tier, error) {
	if name == "" {
		return asm.Best(), nil
	}
	t, err := asm.ParseTier(name)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errUsage, err)
	}
	return t, nil
}

// benchNetworks times whole generated networks with synthetic weights.
func benchNetworks(archs []string, tierName string, threads, batch int, conv engine.Algorithm, runs int, asJSON bool, stdout, stderr io.Writer, extra ...engine.Option) error {
	if runs < 1 {
		return fmt.Errorf("%w: -runs must be ≥ 1", errUsage)
	}
	tier, err := pickTier(tierName)
	if err != nil {
		return err
	}
	var results []bench.NetResult
	for _, a := range archs {
		info, err := all.Lookup(a)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		fmt.Fprintf(stderr, "%s: %d threads, batch %d, %v, %d runs\n", a, threads, batch, tier, runs)
		w := resnet.RandomWeights(resnet.MustBuild(a), 1)
		opts := []engine.Option{engine.WithTier(tier), engine.WithWorkers(threads), engine.WithBatch(batch), engine.WithConv(conv)}
		if len(extra) > 0 {
			opts = append(opts, int8Options(resnet.MustBuild(a))...)
		}
		net, err := info.New(w, opts...)
		if err != nil {
			return err
		}
		results = append(results, bench.Network(info, net, tier, threads, batch, runs))
		net.Close()
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if len(archs) == 1 {
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
