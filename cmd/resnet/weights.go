package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/onnx"
	"github.com/resnetgen/resnetgen/resnet/pytorch"
	"github.com/resnetgen/resnetgen/resnet/safetensors"
)

// loadWeights reads a weight file for net, recognising the format from its
// first bytes (not its name): a zip archive or a pickle is a PyTorch
// checkpoint; an 8-byte length followed by '{' is safetensors; a protobuf
// starting with ir_version (field 1) is an ONNX model. The weights are
// validated against net: a wrong or missing tensor is an error naming it.
func loadWeights(path string, net *resnet.Network) (*resnet.Weights, error) {
	w, err := readWeights(path, net)
	if err != nil {
		return nil, err
	}
	if err := w.Validate(net); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, nil
}

func readWeights(path string, net *resnet.Network) (*resnet.Weights, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var head [9]byte
	n, _ := io.ReadFull(f, head[:])
	f.Close()
	switch {
	case n >= 4 && bytes.Equal(head[:4], []byte("PK\x03\x04")), n >= 1 && head[0] == 0x80:
		return pytorch.Load(path)
	case n == 9 && head[8] == '{':
		return safetensors.Load(path)
	case n >= 1 && head[0] == 0x08:
		return onnx.Load(path, net)
	}
	return nil, fmt.Errorf("%s: not a weight file resnet reads (PyTorch .pth/.th, zip or legacy; safetensors; ONNX)", path)
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
