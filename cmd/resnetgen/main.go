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
