package main

import (
	"fmt"
	"io"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/cli"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet/npy"
)

func runRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	arch := fs.String("arch", "", "network, e.g. resnet50 or cifar-resnet20 (default: the one the weights fit)")
	weights := fs.String("weights", "", "weights: PyTorch checkpoint, safetensors or ONNX")
	in := fs.String("in", "", "input .npy: float32, NCHW (N,3,H,W) or one CHW image (3,H,W), normalised")
	out := fs.String("out", "", "output .npy: float32 logits (N, classes)")
	convFlag := fs.String("conv", "auto", "3x3 stride-1 convolutions: auto (tuning cache or default rule), direct (most accurate) or winograd")
	prec := addPrecisionFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if _, err := prec.check(); err != nil {
		return err
	}
	conv, err := cli.ParseConv(*convFlag)
	if err != nil {
		return err
	}
	for _, f := range []struct{ name, val string }{{"-weights", *weights}, {"-in", *in}, {"-out", *out}} {
		if f.val == "" {
			return fmt.Errorf("%w: %s is required", errUsage, f.name)
		}
	}
	if err := checkArch(*arch); err != nil {
		return err
	}
	x, err := npy.ReadFile(*in)
	if err != nil {
		return err
	}
	if err := checkFinite(*in, x.Data); err != nil {
		return err
	}
	name, net, w, err := openWeights(*weights, *arch, stderr)
	if err != nil {
		return err
	}
	info, err := all.Lookup(name)
	if err != nil {
		return err
	}
	want := net.Input()
	shape := x.Shape
	if len(shape) == 3 {
		shape = append([]int{1}, shape...)
	}
	if len(shape) != 4 || shape[1] != want.C || shape[2] != want.H || shape[3] != want.W || shape[0] < 1 {
		return fmt.Errorf("%s: shape %v, want (N, %d, %d, %d) or (%d, %d, %d) float32 for %s", *in, x.Shape, want.C, want.H, want.W, want.C, want.H, want.W, name)
	}
	n := shape[0]
	opts, err := prec.options(info, net, stderr)
	if err != nil {
		return err
	}
	m, err := info.New(w, append([]engine.Option{engine.WithBatch(n), engine.WithConv(conv)}, opts...)...)
	if err != nil {
		return err
	}
	defer m.Close()
	logits := make([]float32, n*info.Classes)
	if err := m.ForwardBatch(x.Data, logits); err != nil {
		return err
	}
	if err := npy.WriteFile(*out, &npy.Array{Shape: []int{n, info.Classes}, Data: logits}); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s (%v): %d image(s) → %s (%d×%d logits)\n", name, asm.Best(), n, *out, n, info.Classes)
	return nil
}
