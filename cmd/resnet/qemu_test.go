package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/engine/enginetest"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/npy"
	"github.com/resnetgen/resnetgen/resnet/pytorch"
)

// qemuImages is how many CIFAR-10 test images the NEON build classifies
// under qemu: about a minute and a half on 2 cores.
const qemuImages = 500

// The published CIFAR-10 ResNet-20 through the NEON kernels, under qemu,
// on the first 500 test images: `resnet run` built for arm64 gives, image
// by image, logits within enginetest.Tolerance of the float64 reference
// (as this machine's best tier does, which is held to the same bound) and
// this machine's predictions. Counting correct images would pass two
// opposite flips; each image's logits cannot.
func TestNEONUnderQEMUMatchesNative(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("compares an arm64 build under qemu with the native amd64 one")
	}
	qemu, err := exec.LookPath("qemu-aarch64-static")
	require.NoError(t, err, "this test needs qemu-user-static (apt-get install -y qemu-user-static; .ci/run installs it)")
	images, err := cifar10.ReadDir(filepath.Join(sharedData, "cifar10-test"))
	require.NoError(t, err)
	x := &npy.Array{Shape: []int{qemuImages, 3, 32, 32}, Data: make([]float32, qemuImages*3072)}
	labels := make([]int, qemuImages)
	for i := range qemuImages {
		images[i].Normalize(x.Data[i*3072 : (i+1)*3072])
		labels[i] = images[i].Label
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "x.npy")
	require.NoError(t, npy.WriteFile(in, x))
	args := func(out string) []string {
		return []string{"run", "-weights", checkpoint(t, "20"), "-in", in, "-out", out}
	}

	code, _, stderr := runCmd(args(filepath.Join(dir, "native.npy"))...)
	require.Equal(t, 0, code, stderr)
	native, err := npy.ReadFile(filepath.Join(dir, "native.npy"))
	require.NoError(t, err)

	bin := filepath.Join(dir, "resnet")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, append([]string{bin}, args(filepath.Join(dir, "neon.npy"))...)...)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "cifar-resnet20 (neon)", "the NEON tier ran")
	t.Logf("%d images under qemu-aarch64 in %v", qemuImages, time.Since(start).Round(time.Second))
	neon, err := npy.ReadFile(filepath.Join(dir, "neon.npy"))
	require.NoError(t, err)
	require.Equal(t, []int{qemuImages, cifar10.Classes}, neon.Shape)

	w, err := pytorch.Load(checkpoint(t, "20"))
	require.NoError(t, err)
	ref, err := resnet.NewReference(resnet.MustBuild("cifar-resnet20"), w)
	require.NoError(t, err)
	want := make([][]float64, qemuImages)
	for i := range want {
		want[i], err = ref.Forward(x.Data[i*3072 : (i+1)*3072])
		require.NoError(t, err)
	}
	for _, problem := range compareLogits(want, native.Data, neon.Data) {
		t.Error(problem)
	}
	correct := func(y []float32) (n int) {
		for i, l := range labels {
			if argmax(y[i*cifar10.Classes:(i+1)*cifar10.Classes]) == l {
				n++
			}
		}
		return n
	}
	t.Logf("native %d/%d correct, NEON %d/%d", correct(native.Data), qemuImages, correct(neon.Data), qemuImages)
}

// compareLogits holds two builds' logits of the same images (rows of
// cifar10.Classes) to the float64 reference's, image by image: each logit
// within enginetest.Tolerance of the image's largest reference logit, and
// the same prediction in both, unless the reference's two best classes
// are closer than the two tolerances together (then either may win). It
// returns a line for each image that fails.
func compareLogits(want [][]float64, native, neon []float32) []string {
	const classes = cifar10.Classes
	var problems []string
	for i, w := range want {
		scale := 0.0
		for _, v := range w {
			scale = math.Max(scale, math.Abs(v))
		}
		bound := enginetest.Tolerance * scale
		a, b := native[i*classes:(i+1)*classes], neon[i*classes:(i+1)*classes]
		for _, side := range []struct {
			name string
			y    []float32
		}{{"native", a}, {"NEON", b}} {
			worst, at := 0.0, 0
			for j, v := range w {
				if d := math.Abs(float64(side.y[j]) - v); d > worst {
					worst, at = d, j
				}
			}
			if worst > bound {
				problems = append(problems, fmt.Sprintf("image %d: %s logit %d is %v, the reference %v (off by %.3g, more than %.3g)",
					i, side.name, at, side.y[at], w[at], worst, bound))
			}
		}
		if pa, pb := argmax(a), argmax(b); pa != pb && !nearTie(w, 2*bound) {
			problems = append(problems, fmt.Sprintf("image %d: native predicts class %d, NEON %d", i, pa, pb))
		}
	}
	return problems
}

// nearTie reports whether the two largest of w are within d.
func nearTie(w []float64, d float64) bool {
	first, second := math.Inf(-1), math.Inf(-1)
	for _, v := range w {
		if v > first {
			first, second = v, first
		} else if v > second {
			second = v
		}
	}
	return first-second <= d
}

func argmax(y []float32) int {
	best := 0
	for i, v := range y {
		if v > y[best] {
			best = i
		}
	}
	return best
}

// Two images whose predictions flip in opposite directions keep the count
// of correct images and fail; so does a logit off by more than the
// tolerance; a near-tie may go either way.
func TestCompareLogits(t *testing.T) {
	want := [][]float64{{0, 5, 1, 0, 0, 0, 0, 0, 0, 0}, {3, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {1, 1 + 1e-5, 0, 0, 0, 0, 0, 0, 0, 0}}
	ref := func() []float32 {
		var y []float32
		for _, w := range want {
			for _, v := range w {
				y = append(y, float32(v))
			}
		}
		return y
	}
	assert.Empty(t, compareLogits(want, ref(), ref()))

	flipped := ref()
	flipped[1], flipped[2] = 1, 5   // image 0: class 1 → 2
	flipped[10], flipped[11] = 0, 3 // image 1: class 0 → 1
	problems := compareLogits(want, ref(), flipped)
	assert.Len(t, problems, 4, "%s", strings.Join(problems, "\n"))
	assert.Contains(t, strings.Join(problems, "\n"), "image 0: native predicts class 1, NEON 2")
	assert.Contains(t, strings.Join(problems, "\n"), "image 1: native predicts class 0, NEON 1")

	drift := ref()
	drift[13] += float32(2 * enginetest.Tolerance * 3)
	assert.Equal(t, []string{"image 1: NEON logit 3 is 0.0006, the reference 0 (off by 0.0006, more than 0.0003)"}, compareLogits(want, ref(), drift))

	tie := ref()
	tie[20], tie[21] = 1+2e-5, 1 // image 2: within the tolerances, class 0 wins instead of 1
	assert.Empty(t, compareLogits(want, ref(), tie))
}
