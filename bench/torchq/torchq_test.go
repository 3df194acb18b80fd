package torchq

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/cifar/resnet20"
	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/npy"
)

// The published CIFAR-10 ResNets and their test set (../shared/data from
// the repository root; see README.md, "Test data").
var (
	cifarData    = filepath.Join("..", "..", "..", "shared", "data", "cifar10-test")
	cifarWeights = filepath.Join("..", "..", "..", "shared", "data", "cifar10-resnet")
)

// TestAccuracyResNet20 quantizes the published ResNet-20 with PyTorch's
// int8 on 200 test images spread over the classes and evaluates 500 others:
// int8 must stay near fp32 (PyTorch's int8 on the full split lands within
// 0.1 point), and torch's fp32 logits must be resnetgen's on the same
// tensors — the Python network and the .npy are what ours runs.
func TestAccuracyResNet20(t *testing.T) {
	images, err := cifar10.ReadDir(cifarData)
	require.NoError(t, err, "the CIFAR-10 test set is test data: see README.md")
	weights, err := CIFARWeights(cifarWeights, "cifar-resnet20")
	require.NoError(t, err)
	// Calibrate on every 50th image, evaluate on every 20th from 1 (odd
	// indices: disjoint); the records are sorted by label after the first
	// 100, so both sets span the classes.
	var calib, eval []cifar10.Image
	for i, img := range images {
		switch {
		case i%50 == 0:
			calib = append(calib, img)
		case i%20 == 1:
			eval = append(eval, img)
		}
	}
	require.Len(t, calib, 200)
	require.Len(t, eval, 500)
	dir := t.TempDir()
	_, err = WriteCIFAR(filepath.Join(dir, "calib.npy"), calib)
	require.NoError(t, err)
	labels, err := WriteCIFAR(filepath.Join(dir, "eval.npy"), eval)
	require.NoError(t, err)

	r, err := Accuracy(Net{Arch: "cifar-resnet20", Weights: weights}, filepath.Join(dir, "calib.npy"), filepath.Join(dir, "eval.npy"),
		labels, filepath.Join(dir, "r20"), Options{})
	require.NoError(t, err)
	b, _ := json.Marshal(r)
	t.Logf("%s", b)
	assert.Equal(t, 200, r.Calibration)
	assert.Equal(t, 500, r.Images)
	assert.Greater(t, r.FP32Top1, 88.0, "the published ResNet-20 scores 91.7 %% on the whole test set")
	assert.InDelta(t, r.FP32Top1, r.Int8Top1, 2.0, "int8 top-1 within 2 points of fp32")
	assert.GreaterOrEqual(t, r.Int8VsFP32.AgreeTop1, 480, "int8 and fp32 agree on ≥ 96 %% of the images")
	assert.Greater(t, r.Int8VsFP32.Correlation, 0.99)
	assert.Less(t, r.Int8VsFP32.RMSRel, 0.15)

	// resnetgen's fp32 on the same .npy: torch's CIFAR network is ours.
	m, err := resnet20.LoadFile(weights, engine.WithWorkers(1), engine.WithBatch(len(eval)))
	require.NoError(t, err)
	defer m.Close()
	x, err := npy.ReadFile(filepath.Join(dir, "eval.npy"))
	require.NoError(t, err)
	ours := &npy.Array{Shape: []int{len(eval), resnet20.Classes}, Data: make([]float32, len(eval)*resnet20.Classes)}
	require.NoError(t, m.ForwardBatch(x.Data, ours.Data))
	torch, err := npy.ReadFile(r.FP32Logits)
	require.NoError(t, err)
	d, err := Compare(ours, torch)
	require.NoError(t, err)
	t.Logf("resnetgen fp32 vs torch fp32: %+v", d)
	assert.Equal(t, len(eval), d.AgreeTop1)
	assert.Less(t, d.MaxAbsRel, 1e-4)
	assert.Equal(t, r.FP32Correct, Correct(ours, labels))
}

// TestSessionRuns starts the long-lived process on ResNet-20 and times a
// few runs of each precision; it checks the protocol, not the speed.
func TestSessionRuns(t *testing.T) {
	images, err := cifar10.ReadDir(cifarData)
	require.NoError(t, err, "the CIFAR-10 test set is test data: see README.md")
	weights, err := CIFARWeights(cifarWeights, "cifar-resnet20")
	require.NoError(t, err)
	calib, _ := cifar10.Split(images, 100)
	path := filepath.Join(t.TempDir(), "calib.npy")
	_, err = WriteCIFAR(path, calib)
	require.NoError(t, err)
	s, err := Start(Net{Arch: "cifar-resnet20", Weights: weights}, path, 1, Options{ISA: VNNI})
	require.NoError(t, err)
	defer s.Close()
	rd := s.Ready()
	t.Logf("%+v", rd)
	assert.Equal(t, "cifar-resnet20", rd.Arch)
	assert.Equal(t, 1, rd.Threads)
	assert.Equal(t, [2]int{32, 32}, [2]int{rd.Height, rd.Width})
	// oneDNN runs the int8 convolutions (19 in ResNet-20) in one of its
	// implementations, whatever the CPU.
	assert.Equal(t, 19, rd.Int8ConvCount)
	assert.NotEmpty(t, rd.Int8Conv)
	for _, p := range []Precision{Int8, FP32, Int8} {
		ts, err := s.Run(p, 3)
		require.NoError(t, err)
		require.Len(t, ts, 3)
		for _, v := range ts {
			assert.Greater(t, v, 0.0)
			assert.Less(t, v, 5.0)
		}
	}
	// Logits between timings: the int8 network near the float32 one, and
	// the timed input left alone (Run checks it still times batch 1).
	q, f, err := s.Logits(path)
	require.NoError(t, err)
	assert.Equal(t, []int{100, 10}, q.Shape)
	d, err := Compare(q, f)
	require.NoError(t, err)
	assert.Greater(t, d.AgreeTop1, 90)
	_, err = s.Run(Int8, 2)
	require.NoError(t, err)
	_, err = s.Run("bf16", 1)
	assert.ErrorContains(t, err, `precision "bf16"`)
	require.NoError(t, s.Close())
}

func TestMissingPython(t *testing.T) {
	_, err := Accuracy(Net{Arch: "cifar-resnet20"}, "c.npy", "e.npy", nil, filepath.Join(t.TempDir(), "x"),
		Options{Python: "/nonexistent/python3"})
	assert.ErrorContains(t, err, "/nonexistent/python3 not found")
	assert.ErrorContains(t, err, "python3-torchvision")
	_, err = Start(Net{Arch: "resnet18"}, "c.npy", 1, Options{Python: "/nonexistent/python3"})
	assert.ErrorContains(t, err, "python3-torchvision")
}

// A Python without torch is reported with what to install.
func TestPythonWithoutTorch(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "python3")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n"), 0o755))
	_, err := Accuracy(Net{Arch: "cifar-resnet20"}, "c.npy", "e.npy", nil, filepath.Join(dir, "x"), Options{Python: fake})
	assert.ErrorContains(t, err, "No module named 'torch'")
	assert.ErrorContains(t, err, "apt-get install python3-torchvision")
	_, err = Start(Net{Arch: "cifar-resnet20"}, "c.npy", 1, Options{Python: fake})
	assert.ErrorContains(t, err, "apt-get install python3-torchvision")
}

func TestCompare(t *testing.T) {
	a := &npy.Array{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 3, 2, 1}}
	b := &npy.Array{Shape: []int{2, 3}, Data: []float32{1, 2, 3.5, 2, 3, 1}}
	d, err := Compare(a, b)
	require.NoError(t, err)
	assert.Equal(t, 2, d.Images)
	assert.Equal(t, 1, d.AgreeTop1)
	assert.InDelta(t, 1.0, d.MaxAbs, 1e-12)
	assert.InDelta(t, 1/3.5, d.MaxAbsRel, 1e-12)
	assert.Greater(t, d.Correlation, 0.0)
	assert.Less(t, d.Correlation, 1.0)
	assert.Equal(t, []int{2, 0}, Argmax(a))
	assert.Equal(t, 1, Correct(a, []int{2, 1}))
	_, err = Compare(a, &npy.Array{Shape: []int{3, 2}, Data: a.Data})
	assert.ErrorContains(t, err, "shapes")
}
