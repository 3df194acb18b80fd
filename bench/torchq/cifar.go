package torchq

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/npy"
)

// CIFARArchs are the published CIFAR-10 ResNets in ../shared/data.
var CIFARArchs = []string{"cifar-resnet20", "cifar-resnet32", "cifar-resnet44", "cifar-resnet56"}

// WriteCIFAR writes images, normalised as resnetgen feeds its CIFAR
// networks (cifar10.Image.Normalize: (pixel/255 − mean[c]) / std[c] in
// float64, rounded to float32), to path as float32 N×3×32×32, and returns
// their labels.
func WriteCIFAR(path string, images []cifar10.Image) ([]int, error) {
	const n = 3 * cifar10.Side * cifar10.Side
	a := &npy.Array{Shape: []int{len(images), 3, cifar10.Side, cifar10.Side}, Data: make([]float32, len(images)*n)}
	labels := make([]int, len(images))
	for i := range images {
		images[i].Normalize(a.Data[i*n : (i+1)*n])
		labels[i] = images[i].Label
	}
	return labels, npy.WriteFile(path, a)
}

// CIFARWeights finds arch's published checkpoint in dir
// (cifar-resnet20 → resnet20-*.th).
func CIFARWeights(dir, arch string) (string, error) {
	name := strings.TrimPrefix(arch, "cifar-")
	m, err := filepath.Glob(filepath.Join(dir, name+"-*.th"))
	if err != nil {
		return "", err
	}
	if len(m) != 1 {
		return "", fmt.Errorf("%s: want one %s-*.th in %s, found %d", arch, name, dir, len(m))
	}
	return m[0], nil
}

// CIFAROptions sets up CIFARTable.
type CIFAROptions struct {
	Data    string // the CIFAR-10 test batches (../shared/data/cifar10-test)
	Weights string // the published checkpoints (../shared/data/cifar10-resnet)
	Archs   []string
	Every   int // calibrate on index % Every == 0 (0: 10)
	// Dir receives calib.npy, eval.npy and each network's ARCH_int8.npy and
	// ARCH_fp32.npy logits.
	Dir string
	Options
}

// CIFARTable quantizes each published CIFAR ResNet with PyTorch's int8,
// calibrated on the test images with index % Every == 0, and reports int8
// and fp32 top-1 on the others — the same tensors resnetgen's CIFAR
// evaluation computes.
func CIFARTable(o CIFAROptions) ([]AccuracyResult, error) {
	if o.Every == 0 {
		o.Every = 10
	}
	images, err := cifar10.ReadDir(o.Data)
	if err != nil {
		return nil, err
	}
	calib, eval := cifar10.Split(images, o.Every)
	calibPath, evalPath := filepath.Join(o.Dir, "calib.npy"), filepath.Join(o.Dir, "eval.npy")
	if _, err := WriteCIFAR(calibPath, calib); err != nil {
		return nil, err
	}
	labels, err := WriteCIFAR(evalPath, eval)
	if err != nil {
		return nil, err
	}
	var rs []AccuracyResult
	for _, arch := range o.Archs {
		w, err := CIFARWeights(o.Weights, arch)
		if err != nil {
			return nil, err
		}
		r, err := Accuracy(Net{Arch: arch, Weights: w}, calibPath, evalPath, labels, filepath.Join(o.Dir, arch), o.Options)
		if err != nil {
			return nil, err
		}
		o.logf("%s: fp32 %.2f%%, int8 %.2f%% (%+.2f points) on %d images, calibrated on %d\n",
			arch, r.FP32Top1, r.Int8Top1, r.Int8Top1-r.FP32Top1, r.Images, r.Calibration)
		rs = append(rs, *r)
	}
	return rs, nil
}

// WriteRandom writes n seeded standard-normal images of h×w to path: a
// calibration set for latency runs, where the scales do not matter.
func WriteRandom(path string, n, h, w int, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 0))
	a := &npy.Array{Shape: []int{n, 3, h, w}, Data: make([]float32, n*3*h*w)}
	for i := range a.Data {
		a.Data[i] = float32(r.NormFloat64())
	}
	return npy.WriteFile(path, a)
}
