package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/cifar10"
)

type evalResult struct {
	Arch string `json:"arch"`
	cifar10.Result
}

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", stderr)
	arch := fs.String("arch", "", "a CIFAR-10 network: cifar-resnet20, 32, 44, 56 or 110 (default: the one the weights fit)")
	weights := fs.String("weights", "", "weights: PyTorch checkpoint (zip or legacy), safetensors or ONNX")
	data := fs.String("data", "", "folder with the CIFAR-10 binary test batches ("+cifar10.BatchPattern+")")
	limit := fs.Int("limit", 0, "evaluate only the first N images (0: all)")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "images evaluated in parallel")
	asJSON := fs.Bool("json", false, "print a JSON object {arch, images, correct, top1}")
	quiet := fs.Bool("q", false, "no progress on standard error")
	useRef := fs.Bool("ref", false, "run the float64 reference instead of the generated network")
	precision := fs.String("precision", "fp32", "fp32, or int8: calibrate on every -calibrate-every'th image (index % N == 0) and evaluate on the others")
	every := fs.Int("calibrate-every", 10, "with -precision int8: the images with index % N == 0 calibrate, the others are evaluated (the test set is sorted by label after its first 100: never a contiguous range); given with fp32, fp32 is evaluated on the same others")
	if err := parse(fs, args); err != nil {
		return err
	}
	for _, f := range []struct{ name, val string }{{"-weights", *weights}, {"-data", *data}} {
		if f.val == "" {
			return fmt.Errorf("%w: %s is required", errUsage, f.name)
		}
	}
	if *limit < 0 || *workers < 1 {
		return fmt.Errorf("%w: -limit must be ≥ 0 and -workers ≥ 1", errUsage)
	}
	prec, err := engine.ParsePrecision(*precision)
	if err != nil {
		return fmt.Errorf("%w: -precision: %v", errUsage, err)
	}
	if prec == engine.Int8 && (*useRef || *every < 2) {
		return fmt.Errorf("%w: -precision int8 runs the generated network (not -ref) and needs -calibrate-every ≥ 2", errUsage)
	}
	if err := checkArch(*arch); err != nil {
		return err
	}
	if *arch != "" {
		if err := isCIFAR(*arch); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	name, net, w, err := openWeights(*weights, *arch, stderr)
	if err != nil {
		return err
	}
	if err := isCIFAR(name); err != nil {
		return fmt.Errorf("%s: %w", *weights, err)
	}
	images, err := cifar10.ReadDir(*data)
	if err != nil {
		return err
	}
	if *limit > 0 && *limit < len(images) {
		images = images[:*limit]
	}
	var opts []engine.Option
	everySet := false
	fs.Visit(func(f *flag.Flag) { everySet = everySet || f.Name == "calibrate-every" })
	if prec == engine.FP32 && everySet {
		// The images int8 would evaluate on, for a like-for-like comparison.
		if *every < 2 {
			return fmt.Errorf("%w: -calibrate-every must be ≥ 2", errUsage)
		}
		_, images = cifar10.Split(images, *every)
	}
	if prec == engine.Int8 {
		var calib []cifar10.Image
		calib, images = cifar10.Split(images, *every)
		if len(calib) == 0 || len(images) == 0 {
			return fmt.Errorf("%w: %d images split every %d leave nothing to calibrate on or to evaluate", errUsage, len(calib)+len(images), *every)
		}
		x := make([]float32, len(calib)*cifar10.Side*cifar10.Side*3)
		for i := range calib {
			calib[i].Normalize(x[i*3*cifar10.Side*cifar10.Side:])
		}
		info, err := all.Lookup(name)
		if err != nil {
			return err
		}
		f, err := engine.Fold(net, w)
		if err != nil {
			return err
		}
		m, err := engine.Interpret(f, info.Kernels, engine.WithBatch(8))
		if err != nil {
			return err
		}
		c, err := engine.Calibrate(m, f, x, 3*cifar10.Side*cifar10.Side, 8, engine.CalibrateOptions{})
		m.Close()
		if err != nil {
			return err
		}
		if !*quiet {
			fmt.Fprintf(stderr, "calibrated on %d images (index %% %d == 0), %d tensors\n", len(calib), *every, len(c.Scales))
		}
		opts = append(opts, engine.WithInt8(c))
	}
	classify, engineName, closeAll, err := classifier(name, net, w, *useRef, *workers, opts...)
	if err != nil {
		return err
	}
	defer closeAll()
	var progress io.Writer
	if !*quiet {
		progress = stderr
		fmt.Fprintf(stderr, "evaluating %s on %d images with %s, %d workers\n", name, len(images), engineName, *workers)
	}
	start := time.Now()
	res, err := cifar10.Evaluate(images, classify, *workers, progress)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(evalResult{name, res})
	}
	fmt.Fprintf(stdout, "%s %v: top-1 %.2f%% (error %.2f%%), %d of %d images correct, %s\n",
		name, prec, res.Top1, 100-res.Top1, res.Correct, res.Images, time.Since(start).Round(time.Millisecond))
	return nil
}

// isCIFAR refuses a network that does not take CIFAR-10 images.
func isCIFAR(arch string) error {
	a, err := resnet.Lookup(arch)
	if err != nil {
		return err
	}
	if a.Classes == cifar10.Classes && a.InputH == cifar10.Side && a.InputW == cifar10.Side {
		return nil
	}
	var cifar []string
	for _, n := range resnet.Names() {
		if strings.HasPrefix(n, "cifar-") {
			cifar = append(cifar, n)
		}
	}
	return fmt.Errorf("%s is not a CIFAR-10 network (%d classes, %dx%d input); use one of %s",
		arch, a.Classes, a.InputH, a.InputW, strings.Join(cifar, ", "))
}

// classifier returns a function that Evaluate may call from workers
// goroutines at once: the float64 reference, or the generated network with
// one single-worker Model per goroutine (a Model runs one Forward at a time).
func classifier(arch string, net *resnet.Network, w *resnet.Weights, useRef bool, workers int, opts ...engine.Option) (cifar10.Classifier, string, func(), error) {
	if useRef {
		ref, err := resnet.NewReference(net, w)
		if err != nil {
			return nil, "", nil, err
		}
		return ref.Forward, "the float64 reference", func() {}, nil
	}
	info, err := all.Lookup(arch)
	if err != nil {
		return nil, "", nil, err
	}
	free := make(chan all.Net, workers)
	var nets []all.Net
	closeAll := func() {
		for _, n := range nets {
			n.Close()
		}
	}
	for range workers {
		n, err := info.New(w, append([]engine.Option{engine.WithWorkers(1)}, opts...)...)
		if err != nil {
			closeAll()
			return nil, "", nil, err
		}
		nets = append(nets, n)
		free <- n
	}
	classify := func(in []float32) ([]float64, error) {
		n := <-free
		defer func() { free <- n }()
		out := make([]float32, info.Classes)
		if err := n.ForwardBatch(in, out); err != nil {
			return nil, err
		}
		logits := make([]float64, len(out))
		for i, v := range out {
			logits[i] = float64(v)
		}
		return logits, nil
	}
	return classify, fmt.Sprintf("the generated %s (%v)", info.Arch, asm.Best()), closeAll, nil
}
