package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet/imagenet"
	"github.com/resnetgen/resnetgen/resnet/npy"
	"github.com/resnetgen/resnetgen/resnet/preprocess"
)

// torchPython is the interpreter with Debian's python3-torchvision
// (torch 1.13, torchvision 0.14, Pillow 9.4); .ci/run installs it.
var torchPython = func() string {
	if p := os.Getenv("RESNET_TORCH_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}()

type interopManifest struct {
	Versions        map[string]string                             `json:"versions"`
	ImageNetClasses []string                                      `json:"imagenet_classes"`
	Weights         []struct{ Arch, Format, File, Logits string } `json:"weights"`
	Images          []struct{ File, Pixels, Tensor string }       `json:"images"`
	Wiring          []struct {
		Arch, File, Logits string
		Logits64           string `json:"logits64"`
		ArchFlag           string `json:"arch_flag"`
	} `json:"wiring"`
}

// torchvisionFiles runs testdata/torchvision_interop.py once per test
// binary: real torch writes torchvision ResNets in every format it has,
// their logits, and its preprocessing of images Pillow wrote.
func torchvisionFiles(t *testing.T) (string, *interopManifest) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(torchPython, "testdata/torchvision_interop.py", dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s\nthis test needs torch and torchvision for %s: apt-get install -y python3-torchvision "+
		"(Debian 12; .ci/run installs it), or set RESNET_TORCH_PYTHON", out, torchPython)
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	require.NoError(t, err)
	var m interopManifest
	require.NoError(t, json.Unmarshal(b, &m))
	t.Logf("torch %s, torchvision %s, Pillow %s", m.Versions["torch"], m.Versions["torchvision"], m.Versions["pillow"])
	return dir, &m
}

func readNpy(t *testing.T, path string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(path)
	require.NoError(t, err)
	return a
}

func maxAbs(xs []float32) float64 {
	m := 0.0
	for _, x := range xs {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

// ranking returns the classes of one row of logits, best first.
func ranking(logits []float32) []int {
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	return idx
}

// sameTop5 checks that got (five classes, best first) is torch's top-5 for
// its logits want; two classes may trade places only when want's logits for
// them are within tol (closer than the two implementations can tell apart).
func sameTop5(t *testing.T, what string, want []float32, got []int, tol float64) {
	t.Helper()
	top := ranking(want)[:5]
	for k := range top {
		if top[k] != got[k] && math.Abs(float64(want[top[k]]-want[got[k]])) > tol {
			t.Errorf("%s: top-5 %v, torch's %v", what, got, top)
			return
		}
	}
}

// TestTorchvisionInterop holds resnet to torch itself: torchvision's
// ResNet-18 and ResNet-50 saved by torch.save (zip and legacy), exported by
// torch.onnx.export (BatchNorm as nodes and folded) and as bfloat16
// safetensors must give torch's logits through `resnet run`, with the
// network detected from the tensors; so must every other catalogued
// ImageNet network (ResNet-34/101/152, the v1 variants, plain-18/34), built
// in torch from torchvision's modules; `resnet classify` must preprocess as
// torchvision's eval transform does and rank torch's top-5.
//
// Tolerances: logits within 1e-4 × max|logit| of torch's, as the generated
// networks are held to the float64 reference (both sides are float32 with
// different summation orders; measured 1.4e-6 on ResNet-18, 1.5e-5 on
// ResNet-50, where torch itself is 8e-6 from the float64 reference). The
// preprocessing of Pillow's decoded pixels is bit for bit torchvision's,
// and so is decoding: PNG through Go's decoder, JPEG (baseline 4:2:0,
// 4:4:4, 4:2:2, odd sizes, progressive, grey) through resnet/jpeg, whose
// samples are libjpeg's. So the tensors are torchvision's bit for bit and
// classify's top-5 is torch's.
func TestTorchvisionInterop(t *testing.T) {
	dir, m := torchvisionFiles(t)
	in := func(name string) string { return filepath.Join(dir, name) }

	assert.Equal(t, m.ImageNetClasses, imagenet.Classes, "resnet/imagenet/classes.txt differs from torchvision's list")

	// runMatches runs `resnet run` on a weight file and holds its logits to
	// torch's: within 1e-4 × max|logit|, the same top-5.
	runMatches := func(arch, what, file, x, logits, archFlag string) {
		want := readNpy(t, in(logits))
		out := in(file + ".logits.npy")
		args := []string{"run", "-weights", in(file), "-in", x, "-out", out}
		if archFlag != "" {
			args = append(args, "-arch", archFlag)
		}
		code, _, stderr := runCmd(args...)
		require.Equal(t, 0, code, "%s %s: %s", arch, what, stderr)
		if archFlag == "" {
			assert.Contains(t, stderr, fmt.Sprintf("%s weights", arch), "detected from the tensors")
		}
		got := readNpy(t, out)
		require.Equal(t, want.Shape, got.Shape)
		scale := maxAbs(want.Data)
		worst := 0.0
		for i := range want.Data {
			worst = math.Max(worst, math.Abs(float64(got.Data[i]-want.Data[i])))
		}
		t.Logf("%-11s %-17s max |logit − torch| / max|logit| = %.2e", arch, what, worst/scale)
		assert.LessOrEqual(t, worst, 1e-4*scale, "%s %s", arch, what)
		row := want.Shape[1]
		for i := 0; i < want.Shape[0]; i++ {
			sameTop5(t, fmt.Sprintf("%s %s image %d", arch, what, i), want.Data[i*row:(i+1)*row], ranking(got.Data[i*row : (i+1)*row])[:5], 1e-4*scale)
		}
	}
	for _, f := range m.Weights {
		runMatches(f.Arch, f.Format, f.File, in("x.npy"), f.Logits, "")
	}
	require.Len(t, m.Weights, 10, "5 formats × 2 networks")
	// The deep networks are held to torch's float64 logits instead: through
	// 33–50 residual blocks whose BatchNorm keeps every branch at unit
	// scale, float32 rounding compounds, and torch's own float32 logits are
	// up to 2.9e-4 × max|logit| from its float64 ones (measured). With
	// direct convolutions ours must be as close as torch's float32 (within
	// a factor 2). The default also runs 3x3 stride-1 layers as Winograd
	// F(4,3)/F(2,3), whose transforms (constants up to 8) multiply rounding
	// error: measured 2–4× torch's float32 error on these nets, held to 6×.
	// Both must be within 1e-3 × max|logit| (never tighter than 1e-4): a
	// wiring mistake is O(1).
	for _, f := range m.Wiring {
		want64, want32 := readNpy(t, in(f.Logits64)), readNpy(t, in(f.Logits))
		scale := maxAbs(want64.Data)
		torchErr := 0.0
		for i := range want64.Data {
			torchErr = math.Max(torchErr, math.Abs(float64(want32.Data[i]-want64.Data[i])))
		}
		for _, mode := range []struct {
			conv   string
			factor float64
		}{{"direct", 2}, {"auto", 6}} {
			tol := math.Max(1e-4*scale, math.Min(mode.factor*torchErr, 1e-3*scale))
			out := in(f.File + "." + mode.conv + ".logits.npy")
			args := []string{"run", "-weights", in(f.File), "-in", in("x2.npy"), "-out", out, "-conv", mode.conv}
			if f.ArchFlag != "" {
				args = append(args, "-arch", f.ArchFlag)
			}
			code, _, stderr := runCmd(args...)
			require.Equal(t, 0, code, "%s: %s", f.Arch, stderr)
			got := readNpy(t, out)
			require.Equal(t, want64.Shape, got.Shape)
			worst := 0.0
			for i := range want64.Data {
				worst = math.Max(worst, math.Abs(float64(got.Data[i]-want64.Data[i])))
			}
			t.Logf("%-11s %-6s wiring: max |logit − torch float64| / max|logit| = %.2e (torch float32: %.2e)", f.Arch, mode.conv, worst/scale, torchErr/scale)
			assert.LessOrEqual(t, worst, tol, "%s -conv %s", f.Arch, mode.conv)
			row := want64.Shape[1]
			for i := 0; i < want64.Shape[0]; i++ {
				sameTop5(t, fmt.Sprintf("%s -conv %s image %d", f.Arch, mode.conv, i), want64.Data[i*row:(i+1)*row], ranking(got.Data[i*row : (i+1)*row])[:5], tol)
			}
		}
	}
	require.Len(t, m.Wiring, 8, "resnet34/101/152, the three v1 variants, plain18/34")

	// Preprocessing: resnet/preprocess on Pillow's decoded pixels, then on
	// the files through Go's decoders, against torchvision's tensor.
	var files []string
	for _, img := range m.Images {
		want := readNpy(t, in(img.Tensor))
		px := readNpy(t, in(img.Pixels))
		h, w := px.Shape[0], px.Shape[1]
		rgb := &preprocess.RGB{W: w, H: h, Pix: make([]uint8, len(px.Data))}
		for i, v := range px.Data {
			rgb.Pix[i] = uint8(v)
		}
		c, err := preprocess.CenterCrop(preprocess.ResizeShorter(rgb, 256), 224)
		require.NoError(t, err)
		fromPixels := preprocess.Tensor(c)
		decoded, err := preprocess.DecodeFile(in(img.File))
		require.NoError(t, err)
		fromFile, err := preprocess.ImageNet(decoded)
		require.NoError(t, err)
		dp, df := 0.0, 0.0
		for i := range want.Data {
			dp = math.Max(dp, math.Abs(float64(fromPixels[i]-want.Data[i])))
			df = math.Max(df, math.Abs(float64(fromFile[i]-want.Data[i])))
		}
		// The decoders (image/png; resnet/jpeg with resnet/preprocess's
		// libjpeg upsampling and colour conversion) against Pillow's
		// pixels, in 8-bit levels.
		ours := preprocess.ToRGB(decoded)
		require.Equal(t, len(rgb.Pix), len(ours.Pix))
		worst, differ := 0, 0
		for i, v := range ours.Pix {
			d := int(v) - int(rgb.Pix[i])
			worst = max(worst, d, -d)
			if d != 0 {
				differ++
			}
		}
		t.Logf("%-13s %4dx%-4d decoded pixels: max %d levels apart, %.2f%% of samples differ; tensor vs torchvision: from Pillow's pixels %.1e, from the file %.1e",
			img.File, w, h, worst, 100*float64(differ)/float64(len(rgb.Pix)), dp, df)
		assert.Zero(t, dp, "%s: preprocessing Pillow's pixels is bit for bit torchvision's", img.File)
		assert.Zero(t, worst, "%s: decoded pixels are Pillow's", img.File)
		assert.Zero(t, df, "%s: the tensor from the file is torchvision's", img.File)
		files = append(files, in(img.File))
	}

	// classify: the ImageNet names and torch's top-5 on its own tensors.
	want := readNpy(t, in("images_logits.npy"))
	code, out, stderr := runCmd(append([]string{"classify", "-json", "-weights", in("resnet50.pth")}, files...)...)
	require.Equal(t, 0, code, stderr)
	var res []classified
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res, len(files))
	row := want.Shape[1]
	for i, r := range res {
		logits := want.Data[i*row : (i+1)*row]
		top := ranking(logits)[:5]
		var got []int
		for _, p := range r.Top {
			got = append(got, p.Class)
			assert.Equal(t, imagenet.Classes[p.Class], p.Label)
		}
		t.Logf("%-15s torch top-5 %v, resnet classify %v", filepath.Base(r.Image), top, got)
		// The input tensors are torchvision's bit for bit; only the
		// network's float32 summation order differs from torch's.
		sameTop5(t, filepath.Base(r.Image), logits, got, 1e-4*maxAbs(logits))
	}
}
