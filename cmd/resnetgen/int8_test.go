package main

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/npy"
)

// writeCalibration writes n seeded N(0, 1) images of c×h×w as an .npy (the
// torch models of testdata/user_models.py measured their BatchNorm
// statistics on such inputs, so these are in distribution).
func writeCalibration(t *testing.T, n, c, h, w int) string {
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, n*c*h*w)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	path := filepath.Join(t.TempDir(), "calib.npy")
	require.NoError(t, npy.WriteFile(path, &npy.Array{Shape: []int{n, c, h, w}, Data: x}))
	return path
}

// A user's int8 package, as the README's int8 flow makes it: a torchvision
// ResNet-18 with 10 classes at 192×160 from its ONNX export, calibrated on
// an .npy and embedded; its int8 logits follow torch's float32 ones (within
// 0.1 of the largest: its seeded random weights give logits of 0.8 at
// most, close to one another, so the relative error is larger than on a
// trained network — 0.04–0.05 measured; top-1 equal).
func TestUserModuleInt8(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a user module; run without -short")
	}
	models := torchModels(t)
	calib := writeCalibration(t, 16, 3, 192, 160)
	c := userCase{Pkg: "flowers8", Embed: true,
		Flags: fmt.Sprintf("-weights %s -precision int8 -calibrate %s -embed", filepath.Join(models, "flowers.onnx"), calib)}
	module, program, generated := userModule(t, c)
	assert.Contains(t, generated, "calibrating on 16 images")
	src, err := os.ReadFile(filepath.Join(module, c.Pkg, "model.go"))
	require.NoError(t, err)
	assert.Contains(t, string(src), "func Calibration()")
	out := filepath.Join(t.TempDir(), "logits.npy")
	runProgram(t, program, filepath.Join(models, "flowers_x.npy"), out)
	got, err := npy.ReadFile(out)
	require.NoError(t, err)
	want, err := npy.ReadFile(filepath.Join(models, "flowers_logits.npy"))
	require.NoError(t, err)
	require.Equal(t, want.Shape, got.Shape)
	classes := want.Shape[1]
	for n := 0; n < want.Shape[0]; n++ {
		w, g := want.Data[n*classes:(n+1)*classes], got.Data[n*classes:(n+1)*classes]
		scale, d := 0.0, 0.0
		for i := range w {
			scale = math.Max(scale, math.Abs(float64(w[i])))
			d = math.Max(d, math.Abs(float64(w[i]-g[i])))
		}
		t.Logf("image %d: int8 against torch's float32, max |Δ| %.3g of max |logit| %.3g", n, d, scale)
		assert.LessOrEqual(t, d, 0.1*scale, "image %d", n)
		assert.Equal(t, argmax(w), argmax(g), "image %d: top-1", n)
	}
}

// The published CIFAR-10 ResNet-20 as a user's int8 package, calibrated on
// the test images with index % 10 == 0 (an .npy), embedded: its accuracy
// on all 10,000 within 0.3 points of float32's 91.73 %.
func TestUserModuleInt8CIFAR(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a user module; run without -short")
	}
	ckpt, err := filepath.Glob(filepath.Join(sharedData, "cifar10-resnet", "resnet20-*.th"))
	require.NoError(t, err)
	require.Len(t, ckpt, 1)
	abs, err := filepath.Abs(ckpt[0])
	require.NoError(t, err)
	data, err := filepath.Abs(filepath.Join(sharedData, "cifar10-test"))
	require.NoError(t, err)
	images, err := cifar10.ReadDir(data)
	require.NoError(t, err)
	cal, _ := cifar10.Split(images, 10)
	x := make([]float32, len(cal)*3*32*32)
	for i := range cal {
		cal[i].Normalize(x[i*3*32*32:])
	}
	calib := filepath.Join(t.TempDir(), "cifar-calib.npy")
	require.NoError(t, npy.WriteFile(calib, &npy.Array{Shape: []int{len(cal), 3, 32, 32}, Data: x}))
	c := userCase{Pkg: "cifar8", Embed: true, CIFAR: true,
		Flags: fmt.Sprintf("-arch cifar-resnet20 -weights %s -precision int8 -calibrate %s -calibrate-n 200 -embed", abs, calib)}
	_, program, generated := userModule(t, c)
	assert.Contains(t, generated, "calibrating on 200 images")
	out := strings.TrimSpace(runProgram(t, program, data))
	var correct, total int
	_, err = fmt.Sscanf(out, "%d/%d", &correct, &total)
	require.NoError(t, err, out)
	require.Equal(t, 10000, total)
	t.Logf("int8: %d of 10,000 (float32: 9173)", correct)
	assert.InDelta(t, 9173, correct, 30, "int8 top-1 within 0.3 points of float32's")
}

// Bad input to -precision int8: a clear error, exit status 2 for usage,
// and nothing written.
func TestInt8BadInput(t *testing.T) {
	ckpt, err := filepath.Glob(filepath.Join(sharedData, "cifar10-resnet", "resnet20-*.th"))
	require.NoError(t, err)
	require.Len(t, ckpt, 1)
	dir := t.TempDir()
	emptyDir := filepath.Join(dir, "empty")
	require.NoError(t, os.Mkdir(emptyDir, 0o755))
	zero := filepath.Join(dir, "zero.npy")
	require.NoError(t, npy.WriteFile(zero, &npy.Array{Shape: []int{0, 3, 32, 32}}))
	wrong := filepath.Join(dir, "wrong.npy")
	require.NoError(t, npy.WriteFile(wrong, &npy.Array{Shape: []int{2, 3, 16, 16}, Data: make([]float32, 2*3*16*16)}))
	corrupt := filepath.Join(dir, "corrupt.npy")
	require.NoError(t, os.WriteFile(corrupt, []byte("\x93NUMPY\x01\x00garbage"), 0o644))
	notImage := filepath.Join(dir, "notimages")
	require.NoError(t, os.Mkdir(notImage, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(notImage, "a.png"), []byte("not a png"), 0o644))
	nan := filepath.Join(dir, "nan.npy")
	require.NoError(t, npy.WriteFile(nan, &npy.Array{Shape: []int{1, 3, 32, 32}, Data: append([]float32{float32(math.NaN())}, make([]float32, 3*32*32-1)...)}))
	w := "-weights " + ckpt[0]
	for _, c := range []struct {
		args   string
		status int
		want   string
	}{
		{"-arch cifar-resnet20 -precision int8 -calibrate " + zero, 2, "-precision int8 needs -weights"},
		{w + " -precision int8", 2, "-precision int8 needs -calibrate"},
		{w + " -precision int4 -calibrate " + zero, 2, `unknown -precision "int4"`},
		{w + " -calibrate " + zero, 2, "-calibrate and -calibrate-n are for -precision int8"},
		{w + " -precision int8 -calibrate " + zero + " -calibrate-n -1", 2, "-calibrate-n -1"},
		{w + " -precision int8 -calibrate " + filepath.Join(dir, "missing.npy"), 1, "no such file"},
		{w + " -precision int8 -calibrate " + zero, 1, "no images"},
		{w + " -precision int8 -calibrate " + emptyDir, 1, "no .jpg, .jpeg or .png files"},
		{w + " -precision int8 -calibrate " + wrong, 1, "tensors of shape [2 3 16 16]; cifar-resnet20 takes N×3×32×32"},
		{w + " -precision int8 -calibrate " + corrupt, 1, corrupt},
		{w + " -precision int8 -calibrate " + notImage, 1, "a.png"},
		{w + " -precision int8 -calibrate " + nan, 1, "non-finite"},
	} {
		out := t.TempDir()
		var stderr bytes.Buffer
		status := run(append(strings.Fields(c.args), "-pkg", "p", "-o", out, "-q"), &stderr)
		assert.Equal(t, c.status, status, "%s: %s", c.args, stderr.String())
		assert.Contains(t, stderr.String(), c.want, c.args)
		entries, err := os.ReadDir(out)
		require.NoError(t, err)
		assert.Empty(t, entries, "%s wrote files", c.args)
	}
}

func argmax(x []float32) int {
	best := 0
	for i := range x {
		if x[i] > x[best] {
			best = i
		}
	}
	return best
}
