package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/resnetgen/resnetgen/cli"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
)

// precisionFlags are -precision and, for int8, the images to calibrate
// the built-in package on (a package generated with -calibrate carries its
// scales; resnet's built-in ones are calibrated at New).
type precisionFlags struct {
	precision *string
	calibrate *string
	n         *int
}

func addPrecisionFlags(fs *flag.FlagSet) precisionFlags {
	return precisionFlags{
		precision: fs.String("precision", "fp32", "fp32, or int8 (the built-in packages with int8 kernels: the CIFAR nets, resnet18, resnet50), calibrated on -calibrate"),
		calibrate: fs.String("calibrate", "", "with -precision int8: calibration images, an .npy of N×3×H×W float32 tensors (normalised) or a directory of JPEG/PNG images"),
		n:         fs.Int("calibrate-n", 100, "with -precision int8: calibrate on at most N images"),
	}
}

// check validates the flags before anything is read.
func (f precisionFlags) check() (engine.Precision, error) {
	p, err := engine.ParsePrecision(*f.precision)
	if err != nil {
		return 0, cli.Usage("-precision: %v", err)
	}
	switch {
	case p == engine.Int8 && *f.calibrate == "":
		return 0, cli.Usage("-precision int8 needs -calibrate: images to measure the activations' scales on")
	case p == engine.FP32 && *f.calibrate != "":
		return 0, cli.Usage("-calibrate is for -precision int8")
	case *f.n < 1:
		return 0, cli.Usage("-calibrate-n %d must be ≥ 1", *f.n)
	}
	return p, nil
}

// options are the engine options of the precision for network arch: none
// for float32; for int8 the calibration images (read now, so that a bad
// file fails before the model is built) — New calibrates on them.
func (f precisionFlags) options(info all.Info, net *resnet.Network, stderr io.Writer) ([]engine.Option, error) {
	p, err := f.check()
	if err != nil || p == engine.FP32 {
		return nil, err
	}
	if !info.Kernels.HasInt8() {
		return nil, fmt.Errorf("%s has no int8 kernels: the built-in int8 packages are the CIFAR nets, resnet18 and resnet50", info.Arch)
	}
	images, n, err := engine.ReadCalibrationImages(*f.calibrate, net, *f.n)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "%s: int8, calibrating on %d images of %s\n", info.Arch, n, *f.calibrate)
	return []engine.Option{engine.WithInt8Calibrating(images)}, nil
}
