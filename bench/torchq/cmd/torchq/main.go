// Command torchq runs PyTorch's own int8 (oneDNN engine, bench/torchq)
// on resnetgen's networks, from the repository root:
//
//	torchq cifar [-data DIR] [-weights DIR] [-arch A,B] [-dir OUT] [-json]
//	    the four published CIFAR-10 ResNets: calibrated on the test images
//	    with index % 10 == 0, fp32 and int8 top-1 on the other 9,000
//	torchq latency [-arch resnet18,resnet50] [-threads 1,2] [-isa AVX512_CORE_VNNI]
//	               [-weights W] [-calib x.npy] [-rounds 3] [-runs 20] [-json]
//	    batch-1 int8 and fp32 latency, medians over alternating rounds
//
// Latencies taken here are PyTorch's alone; to set them beside resnetgen's,
// alternate a torchq.Session with our runs in one process.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/resnetgen/resnetgen/bench/torchq"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/resnet"
)

var errUsage = errors.New("usage")

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "torchq: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "torchq: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: torchq cifar|latency [flags]", errUsage)
	}
	switch args[0] {
	case "cifar":
		return runCIFAR(args[1:], stdout, stderr)
	case "latency":
		return runLatency(args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown command %q: want cifar or latency", errUsage, args[0])
}

func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

func runCIFAR(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("torchq cifar", flag.ContinueOnError)
	data := fs.String("data", "../shared/data/cifar10-test", "the CIFAR-10 test batches")
	weights := fs.String("weights", "../shared/data/cifar10-resnet", "the published checkpoints (resnetN-*.th)")
	arch := fs.String("arch", strings.Join(torchq.CIFARArchs, ","), "networks, comma-separated")
	calibBatch := fs.Int("calib-batch", 32, "calibration images per forward pass (PyTorch's histogram observer re-bins between batches)")
	every := fs.Int("every", 10, "calibrate on the images with index % every == 0, evaluate on the others")
	dir := fs.String("dir", "", "keep calib.npy, eval.npy and each network's ARCH_int8.npy and ARCH_fp32.npy logits here (default: a temporary directory)")
	python := fs.String("python", "", "interpreter with torch and torchvision (default RESNET_TORCH_PYTHON or /usr/bin/python3)")
	asJSON := fs.Bool("json", false, "print the results as a JSON array")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *every < 2 {
		return fmt.Errorf("%w: -every must be ≥ 2", errUsage)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "torchq-cifar")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	} else if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	rs, err := torchq.CIFARTable(torchq.CIFAROptions{Data: *data, Weights: *weights, Archs: strings.Split(*arch, ","), Every: *every,
		Dir: *dir, Options: torchq.Options{Python: *python, Log: stderr, CalibBatch: *calibBatch}})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	fmt.Fprintf(stdout, "PyTorch %s int8 (oneDNN engine, FX, default onednn qconfig), calibrated on the %d CIFAR-10 test images with index %% %d == 0 (batches of %d), top-1 on the other %d; %s.\n",
		rs[0].Torch, rs[0].Calibration, *every, rs[0].CalibBatch, rs[0].Images, engine.CPUModel())
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "arch\tfp32 top-1\tint8 top-1\tint8 − fp32\ttop-1 agree\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%+.2f\t%d/%d\t\n", r.Arch, r.FP32Top1, r.Int8Top1, r.Int8Top1-r.FP32Top1, r.Int8VsFP32.AgreeTop1, r.Images)
	}
	return tw.Flush()
}

func runLatency(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("torchq latency", flag.ContinueOnError)
	arch := fs.String("arch", "resnet18,resnet50", "networks, comma-separated")
	weights := fs.String("weights", "", "checkpoint (one -arch); default: bench/ort's seeded torchvision weights")
	calib := fs.String("calib", "", "calibration .npy (N×3×H×W); default: 8 seeded random images of the network's input size")
	threadsFlag := fs.String("threads", "1", "torch.set_num_threads, comma-separated list")
	isa := fs.String("isa", torchq.VNNI, `ONEDNN_MAX_CPU_ISA ("" leaves oneDNN's choice, AMX where the CPU has it)`)
	rounds := fs.Int("rounds", 3, "alternating int8/fp32 rounds")
	runs := fs.Int("runs", 20, "inferences per round and precision")
	python := fs.String("python", "", "interpreter with torch and torchvision (default RESNET_TORCH_PYTHON or /usr/bin/python3)")
	asJSON := fs.Bool("json", false, "print the results as a JSON array")
	if err := parse(fs, args); err != nil {
		return err
	}
	archs := strings.Split(*arch, ",")
	if *weights != "" && len(archs) != 1 {
		return fmt.Errorf("%w: -weights goes with one -arch", errUsage)
	}
	var threads []int
	for _, f := range strings.Split(*threadsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("%w: -threads %q: want positive integers, comma-separated", errUsage, *threadsFlag)
		}
		threads = append(threads, n)
	}
	tmp, err := os.MkdirTemp("", "torchq-latency")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	o := torchq.Options{Python: *python, ISA: *isa, Log: stderr}
	var rs []torchq.LatencyResult
	for _, a := range archs {
		c := *calib
		if c == "" {
			spec, err := resnet.Lookup(a)
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			c = filepath.Join(tmp, a+".npy")
			if err := torchq.WriteRandom(c, 8, spec.InputH, spec.InputW, 1); err != nil {
				return err
			}
		}
		for _, t := range threads {
			r, err := torchq.Latency(torchq.Net{Arch: a, Weights: *weights}, c, t, *rounds, *runs, o)
			if err != nil {
				return err
			}
			rs = append(rs, r)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	isaCap := *isa
	if isaCap == "" {
		isaCap = "none"
	}
	fmt.Fprintf(stdout, "PyTorch %s, batch 1, medians over %d alternating rounds of %d runs; ONEDNN_MAX_CPU_ISA=%s (oneDNN: %s); %s.\n",
		rs[0].Ready.Torch, *rounds, *runs, isaCap, rs[0].Ready.ISA, engine.CPUModel())
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "arch\tthreads\tint8 ms\tfp32 ms\tfp32 ÷ int8\tint8 convolutions\tfp32 via\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%d: %s\t%s\t\n", r.Arch, r.Threads, r.Int8Ms, r.FP32Ms, r.FP32Ms/r.Int8Ms,
			r.Ready.Int8ConvCount, strings.Join(r.Ready.Int8Conv, " "), r.Ready.FP32)
	}
	return tw.Flush()
}
