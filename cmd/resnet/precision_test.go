package main

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/npy"
)

// resnet run -precision int8 runs the built-in CIFAR ResNet-20 in int8,
// calibrated at New on an .npy of test images: its logits on other test
// images follow the float32 ones (the mean over images of max|Δ| within
// 0.05 of the largest logit, the same top-1 on all but two); int8 without
// calibration images, with unreadable ones or on a package without int8
// kernels is a clear error.
func TestRunInt8(t *testing.T) {
	images, err := cifar10.ReadDir(filepath.Join(sharedData, "cifar10-test"))
	require.NoError(t, err)
	cal, ev := cifar10.Split(images, 10)
	cal = cal[:200]
	write := func(name string, imgs []cifar10.Image) string {
		x := make([]float32, len(imgs)*3*32*32)
		for i := range imgs {
			imgs[i].Normalize(x[i*3*32*32:])
		}
		path := filepath.Join(t.TempDir(), name)
		require.NoError(t, npy.WriteFile(path, &npy.Array{Shape: []int{len(imgs), 3, 32, 32}, Data: x}))
		return path
	}
	calPath, evPath := write("cal.npy", cal), write("ev.npy", ev[:64])
	out8, out32 := filepath.Join(t.TempDir(), "int8.npy"), filepath.Join(t.TempDir(), "fp32.npy")
	code, _, stderr := runCmd("run", "-weights", checkpoint(t, "20"), "-in", evPath, "-out", out8, "-precision", "int8", "-calibrate", calPath)
	require.Zero(t, code, stderr)
	assert.Contains(t, stderr, "int8, calibrating on 100 images") // -calibrate-n's default
	code, _, stderr = runCmd("run", "-weights", checkpoint(t, "20"), "-in", evPath, "-out", out32)
	require.Zero(t, code, stderr)
	a, err := npy.ReadFile(out8)
	require.NoError(t, err)
	b, err := npy.ReadFile(out32)
	require.NoError(t, err)
	require.Equal(t, b.Shape, a.Shape)
	differ, sum := 0, 0.0
	for n := 0; n < a.Shape[0]; n++ {
		x, y := a.Data[n*10:(n+1)*10], b.Data[n*10:(n+1)*10]
		scale, d := 0.0, 0.0
		for i := range x {
			scale = math.Max(scale, math.Abs(float64(y[i])))
			d = math.Max(d, math.Abs(float64(x[i]-y[i])))
		}
		sum += d / scale
		if argmax(x) != argmax(y) {
			differ++
		}
	}
	// On all 9,000 evaluation images the mean was 0.021 (README's table).
	t.Logf("int8 against fp32 on 64 images: mean max|Δ|/max|logit| %.3f, top-1 differs on %d", sum/64, differ)
	assert.LessOrEqual(t, sum/64, 0.05)
	assert.LessOrEqual(t, differ, 2, "top-1 differs on %d of 64 images", differ)

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-precision", "int8"}, 2, "-precision int8 needs -calibrate"},
		{[]string{"-precision", "int4", "-calibrate", calPath}, 2, `unknown precision "int4"`},
		{[]string{"-calibrate", calPath}, 2, "-calibrate is for -precision int8"},
		{[]string{"-precision", "int8", "-calibrate", evPath + ".missing"}, 1, "no such file"},
		{[]string{"-precision", "int8", "-calibrate", write("wrong.npy", nil)}, 1, "no images"},
	} {
		code, _, stderr := runCmd(append([]string{"run", "-weights", checkpoint(t, "20"), "-in", evPath, "-out", out8}, c.args...)...)
		assert.Equal(t, c.code, code, "%v: %s", c.args, stderr)
		assert.Contains(t, stderr, c.want, "%v", c.args)
	}
}
