package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/npy"
	"github.com/resnetgen/resnetgen/resnet/preprocess"
)

// ReadCalibrationImages reads the images of path for net, at most n of them (0:
// all): an .npy of N×C×H×W float32 tensors whose C, H and W are the
// network's input, or a directory of image files (see DefaultTransform), for Calibrate or WithInt8Calibrating.
func ReadCalibrationImages(path string, net *resnet.Network, n int) ([]float32, int, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, fmt.Errorf("calibration images: %w", err)
	}
	if st.IsDir() {
		return calibrationDir(path, net, n)
	}
	a, err := npy.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("calibration images %s: %w", path, err)
	}
	in := net.Values[0]
	if len(a.Shape) != 4 || a.Shape[1] != in.C || a.Shape[2] != in.H || a.Shape[3] != in.W {
		return nil, 0, fmt.Errorf("calibration images %s: tensors of shape %v; %s takes N×%d×%d×%d", path, a.Shape, net.Arch.Name, in.C, in.H, in.W)
	}
	count := a.Shape[0]
	if count == 0 {
		return nil, 0, fmt.Errorf("calibration images %s: no images", path)
	}
	if n > 0 && n < count {
		count = n
	}
	return a.Data[:count*in.Len()], count, nil
}

// calibrationDir reads the image files (JPEG or PNG, by name order) of a
// directory for net, at most n of them (0: all), each through the network's
// evaluation transform (DefaultTransform).
func calibrationDir(dir string, net *resnet.Network, n int) ([]float32, int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("calibration images: %w", err)
	}
	var files []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".jpg", ".jpeg", ".png":
			if !e.IsDir() {
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
	}
	if len(files) == 0 {
		return nil, 0, fmt.Errorf("calibration images %s: no .jpg, .jpeg or .png files", dir)
	}
	if n > 0 && n < len(files) {
		files = files[:n]
	}
	t := DefaultTransform(net)
	x := make([]float32, len(files)*t.Len())
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, 0, fmt.Errorf("calibration images: %w", err)
		}
		if err := t.File(x[i*t.Len():(i+1)*t.Len()], b); err != nil {
			return nil, 0, fmt.Errorf("calibration images %s: %w", f, err)
		}
	}
	return x, len(files), nil
}

// DefaultTransform is the evaluation transform a network of the family was
// trained for at its input size: torchvision's Resize(round(max(H, W) /
// 0.875)), CenterCrop and ImageNet's normalisation, except for the CIFAR
// networks, evaluated on their 32×32 images as they are (no resize; the
// published ones normalise with ImageNet's mean and std, as resnet/cifar10
// does).
func DefaultTransform(net *resnet.Network) preprocess.Transform {
	in := net.Values[0]
	t := preprocess.Default(in.H, in.W)
	if strings.HasPrefix(net.Arch.Name, "cifar-") {
		t.Resize = 0
	}
	return t
}
