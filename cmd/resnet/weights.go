package main

import (
	"fmt"
	"io"
	"math"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/weightfile"
)

// openWeights reads the weight file at path and the network it is for:
// arch when given, otherwise the catalogued network the file's tensors fit
// (weightfile.Detect), which is reported on stderr. The weights are
// validated: a wrong or missing tensor is an error naming it with both shapes.
func openWeights(path, arch string, stderr io.Writer) (string, *resnet.Network, *resnet.Weights, error) {
	f, err := weightfile.Open(path)
	if err != nil {
		return "", nil, nil, err
	}
	if arch == "" {
		if arch, err = f.Detect(); err != nil {
			return "", nil, nil, fmt.Errorf("%w (or name the network with -arch)", err)
		}
		fmt.Fprintf(stderr, "%s: %s weights (%s)\n", path, arch, f.Format)
	}
	net := resnet.MustBuild(arch)
	w, err := f.Weights(net)
	if err != nil {
		return "", nil, nil, err
	}
	return arch, net, w, nil
}

// checkArch refuses an unknown -arch before any file is read.
func checkArch(arch string) error {
	if arch == "" {
		return nil
	}
	if _, err := resnet.Lookup(arch); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// checkFinite refuses NaN and ±Inf inputs: the kernels would carry them to
// every logit, and an error that names the element is more useful.
func checkFinite(what string, xs []float32) error {
	for i, x := range xs {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%s: element %d is %v; inputs must be finite", what, i, x)
		}
	}
	return nil
}
