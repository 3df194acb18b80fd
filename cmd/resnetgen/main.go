// Command resnetgen generates a Go package for one ResNet: its own AVX-512,
// AVX2 and NEON kernels for exactly its shapes (and int8 ones with
// -precision int8), a build with one statement per layer and a
// zero-allocation Forward that runs them, tests against the float64
// reference, and optionally the weights compiled in. Run it from the module that will import the
// package, usually through go generate:
//
//	//go:generate go run github.com/resnetgen/resnetgen/cmd/resnetgen -weights ../models/pets.pth -size 256 -embed -pkg pets -o .
//
// or, with Go 1.24's tool dependencies (go get -tool github.com/resnetgen/resnetgen/cmd/resnetgen):
//
//	//go:generate go tool resnetgen -weights ../models/pets.pth -size 256 -embed -pkg pets -o .
//
// Flags:
//
//	-arch NAME     a network of the family: resnet18 … resnet152 (v1.5), resnet50v1 …
//	               resnet152v1, plain18, plain34, cifar-resnet20 … cifar-resnet1202
//	-weights FILE  a PyTorch checkpoint, safetensors or ONNX model: the architecture and the
//	               class count are read from it (-arch then only picks among networks it fits alike)
//	-classes N     the classifier's outputs (default: the checkpoint's, or the architecture's)
//	-size H|HxW    input height and width in pixels (default: what an ONNX model declares, or
//	               the architecture's: 224, or 32 for CIFAR)
//	-pkg NAME      package name (default: $GOPACKAGE under go generate, else the directory's name)
//	-o DIR         output directory (default: the current directory)
//	-embed         compile the weights into the package (BatchNorm folded, float32,
//	               checksummed): it then has Load(), and needs no file at run time
//	-precision P   fp32 (the default) or int8: the package gets int8 kernels and the
//	               activation scales measured on -calibrate, and runs in int8 by default
//	-calibrate X   int8 calibration images: an .npy of N×3×H×W float32 tensors, normalised
//	               as in training, or a directory of images for a network with a
//	               preprocessing (224×224 ImageNet, 32×32 CIFAR)
//	-calibrate-n N calibrate on at most N of them (default: all)
//	-resize N      the evaluation transform the package's Preprocess applies, torchvision's
//	-mean R,G,B    Resize(N), CenterCrop((H, W)), ToTensor(), Normalize(mean, std): the
//	-std R,G,B     default is round(max(H, W) / 0.875) (256 for 224; none for the CIFAR
//	               networks) and ImageNet's mean and std; -resize 0: no resize
//	-labels FILE   class names, one per line in class order, as many as the classes
//	               (default: ImageNet's for a 1000-class ImageNet network, CIFAR-10's for a
//	               10-class CIFAR network; none otherwise: Labels is nil and Classify's
//	               predictions carry the class index only)
//	-main DIR      also write a command for the package into DIR, in the package's module:
//	               NAME classify IMAGE… and NAME serve (resnet serve's flags and behaviour),
//	               and a Dockerfile (one static binary in an empty image)
//
// Nothing is written unless every input is valid, and a file resnetgen did
// not write is never overwritten. The exit status is 2 for bad usage and 1
// for other errors.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/resnetgen/resnetgen/gen"
	"github.com/resnetgen/resnetgen/resnet"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

var errUsage = errors.New("usage")

func run(args []string, stderr io.Writer) int {
	err := generate(args, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 2
	case errors.Is(err, errUsage), errors.Is(err, gen.ErrUsage):
		fmt.Fprintf(stderr, "resnetgen: %v\n", strings.TrimPrefix(err.Error(), "usage: "))
		return 2
	}
	fmt.Fprintf(stderr, "resnetgen: %v\n", err)
	return 1
}

func generate(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("resnetgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o gen.Options
	fs.StringVar(&o.Arch, "arch", "", "network of the family ("+strings.Join(resnet.Names(), ", ")+")")
	fs.StringVar(&o.Weights, "weights", "", "checkpoint (PyTorch, safetensors or ONNX) to read the architecture and classes from")
	fs.IntVar(&o.Classes, "classes", 0, "classifier outputs (default: the checkpoint's or the architecture's)")
	size := fs.String("size", "", "input size in pixels, H or HxW (default: the ONNX model's, or the architecture's)")
	fs.StringVar(&o.Pkg, "pkg", "", "package name (default: $GOPACKAGE under go generate, else the directory's name)")
	fs.StringVar(&o.Dir, "o", ".", "output directory")
	fs.BoolVar(&o.Embed, "embed", false, "compile the weights into the package (needs -weights)")
	precision := fs.String("precision", "fp32", "fp32, or int8: int8 kernels and activation scales calibrated on -calibrate (needs -weights)")
	fs.StringVar(&o.Calibrate, "calibrate", "", "int8 calibration images: an .npy of N×3×H×W float32 tensors (normalised as in training), or a directory of images where the network has a preprocessing (224×224 ImageNet, 32×32 CIFAR)")
	fs.IntVar(&o.CalibrateN, "calibrate-n", 0, "calibrate on at most N images of -calibrate (0: all)")
	resize := fs.Int("resize", 0, "Preprocess resizes the shorter side to N before the centre crop (default: round(max(H, W) / 0.875), none for CIFAR; 0: none)")
	mean := fs.String("mean", "", "Preprocess normalises with this mean per RGB channel, e.g. 0.485,0.456,0.406 (the default: ImageNet's)")
	std := fs.String("std", "", "and this standard deviation, e.g. 0.229,0.224,0.225 (the default: ImageNet's)")
	fs.StringVar(&o.Labels, "labels", "", "class names, one per line (default: ImageNet's for 1000-class ImageNet networks, CIFAR-10's for 10-class CIFAR ones, else none)")
	fs.StringVar(&o.Main, "main", "", "also write a command for the package (classify, serve) and a Dockerfile into this directory")
	quiet := fs.Bool("q", false, "print nothing but errors")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["classes"] && o.Classes < 1 {
		return fmt.Errorf("%w: -classes %d: a classifier needs at least 1 output", errUsage, o.Classes)
	}
	if set["o"] && o.Dir == "" {
		return fmt.Errorf("%w: -o is empty", errUsage)
	}
	if set["resize"] {
		o.Resize = resize
	}
	for _, v := range []struct {
		name, s string
		dst     **[3]float64
	}{{"mean", *mean, &o.Mean}, {"std", *std, &o.Std}} {
		if !set[v.name] {
			continue
		}
		rgb, err := parseRGB(v.s)
		if err != nil {
			return fmt.Errorf("%w: -%s %q: %v", errUsage, v.name, v.s, err)
		}
		*v.dst = &rgb
	}
	for _, v := range []struct{ name, val string }{{"labels", o.Labels}, {"main", o.Main}} {
		if set[v.name] && v.val == "" {
			return fmt.Errorf("%w: -%s is empty", errUsage, v.name)
		}
	}
	switch *precision {
	case "fp32":
		if o.Calibrate != "" || set["calibrate-n"] {
			return fmt.Errorf("%w: -calibrate and -calibrate-n are for -precision int8", errUsage)
		}
	case "int8":
		if o.Weights == "" {
			return fmt.Errorf("%w: -precision int8 needs -weights: the scales are calibrated on the weights' activations", errUsage)
		}
		if o.Calibrate == "" {
			return fmt.Errorf("%w: -precision int8 needs -calibrate: images (an .npy or a directory) to measure the activations on", errUsage)
		}
		if o.CalibrateN < 0 {
			return fmt.Errorf("%w: -calibrate-n %d must be ≥ 0", errUsage, o.CalibrateN)
		}
		o.Int8 = true
	default:
		return fmt.Errorf("%w: unknown -precision %q (want fp32 or int8)", errUsage, *precision)
	}
	if *size != "" {
		h, w, err := parseSize(*size)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		o.Height, o.Width = h, w
	}
	o.Command = "resnetgen " + strings.Join(args, " ")
	if !*quiet {
		o.Progress = stderr
	}
	_, err := gen.Generate(o)
	return err
}

// parseRGB reads three numbers separated by commas, one per RGB channel.
func parseRGB(s string) ([3]float64, error) {
	var v [3]float64
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return v, fmt.Errorf("want three numbers separated by commas, one per RGB channel, e.g. 0.485,0.456,0.406 (got %d)", len(parts))
	}
	for i, p := range parts {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return v, fmt.Errorf("%q is not a number", p)
		}
		v[i] = x
	}
	return v, nil
}

// parseSize reads "H" (a square input) or "HxW".
func parseSize(s string) (h, w int, err error) {
	hs, ws, rect := strings.Cut(strings.ToLower(s), "x")
	if h, err = strconv.Atoi(hs); err == nil && rect {
		w, err = strconv.Atoi(ws)
	} else {
		w = h
	}
	if err != nil || h < 1 || w < 1 {
		return 0, 0, fmt.Errorf("-size %q: want H or HxW in pixels, e.g. 224 or 192x160", s)
	}
	return h, w, nil
}
