package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/safetensors"
)

func runGen(args ...string) (code int, stderr string) {
	var e bytes.Buffer
	code = run(args, &e)
	return code, e.String()
}

// listDir returns the names and contents of the files in dir.
func listDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = string(b)
	}
	return out
}

func names(m map[string]string) []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// writeWeights writes w as safetensors and returns the path.
func writeWeights(t *testing.T, w *resnet.Weights) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "w.safetensors")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, safetensors.Write(f, w))
	require.NoError(t, f.Close())
	return path
}

// Every bad input is a clear error, and nothing is written: the output
// directory keeps exactly what it held.
func TestBadInputWritesNothing(t *testing.T) {
	r18 := resnet.MustBuild("resnet18")
	broken := resnet.RandomWeights(r18, 1)
	delete(broken.Tensors, "layer1.0.bn1.running_var")
	brokenPath := writeWeights(t, broken)
	cifar := writeWeights(t, resnet.RandomWeights(resnet.MustBuild("cifar-resnet20"), 1))

	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no network", []string{}, 2, "name the network with -arch or give its weights with -weights"},
		{"unknown arch", []string{"-arch", "resnet51"}, 2, `unknown architecture "resnet51"; known: cifar-resnet110`},
		{"weights that fit nothing", []string{"-weights", brokenPath}, 1,
			"the tensors fit no catalogued network; the closest: weights do not fit resnet18: 1 missing tensors: layer1.0.bn1.running_var [64]"},
		{"not a weight file", []string{"-weights", "main.go"}, 1, "not a weight file resnet reads"},
		{"missing weight file", []string{"-weights", "nowhere.pth"}, 1, "no such file"},
		{"size too small", []string{"-arch", "resnet50", "-size", "16"}, 2, "input 16x16 is too small: the smallest that works is 32x32"},
		{"size too small on one side", []string{"-arch", "cifar-resnet20", "-size", "32x3"}, 2, "input 32x3 is too small: the smallest that works is 4x4"},
		{"size too large", []string{"-arch", "resnet18", "-size", "5000x224"}, 2, "input 5000x224 is too large: at most 4096 pixels a side"},
		{"size not a size", []string{"-arch", "resnet18", "-size", "224x"}, 2, `-size "224x": want H or HxW in pixels`},
		{"zero classes", []string{"-arch", "resnet18", "-classes", "0"}, 2, "-classes 0: a classifier needs at least 1 output"},
		{"classes against the checkpoint", []string{"-weights", cifar, "-classes", "7"}, 2, "-classes 7, but " + cifar + "'s classifier has 10 outputs"},
		{"embed without weights", []string{"-arch", "resnet18", "-embed"}, 2, "-embed needs -weights"},
		{"package name with a dash", []string{"-arch", "resnet18", "-pkg", "my-pets"}, 2, `-pkg "my-pets" is not a valid package name`},
		{"package main", []string{"-arch", "resnet18", "-pkg", "main"}, 2, `-pkg "main" is not a valid package name`},
		{"stray argument", []string{"-arch", "resnet18", "extra"}, 2, `unexpected argument "extra"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("mine"), 0o644))
			before := listDir(t, dir)
			args := append(c.args, "-o", dir, "-q")
			if !strings.Contains(c.name, "package") {
				args = append(args, "-pkg", "pets") // the temporary directory's name is no package name
			}
			code, stderr := runGen(args...)
			assert.Equal(t, c.code, code, stderr)
			assert.Contains(t, stderr, c.want)
			assert.Equal(t, before, listDir(t, dir), "files written")
		})
	}
}

// Hand-written code in the output directory is never overwritten, and the
// directory's package must be the one generated.
func TestOutputDirectoryIsRespected(t *testing.T) {
	dir := t.TempDir()
	hand := "package pets\n\nfunc Mine() {}\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "model.go"), []byte(hand), 0o644))
	code, stderr := runGen("-arch", "cifar-resnet20", "-pkg", "pets", "-o", dir, "-q")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "model.go exists and was not written by resnetgen: refusing to overwrite it")
	assert.Equal(t, map[string]string{"model.go": hand}, listDir(t, dir))

	other := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(other, "gen.go"), []byte("package flowers\n"), 0o644))
	code, stderr = runGen("-arch", "cifar-resnet20", "-pkg", "pets", "-o", other, "-q")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "gen.go is in package flowers, not pets")
	assert.Len(t, listDir(t, other), 1)

	// A weights file of someone else's is not ours to replace either.
	w := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(w, "weights.safetensors"), []byte("not ours"), 0o644))
	ckpt := writeWeights(t, resnet.RandomWeights(resnet.MustBuild("cifar-resnet20"), 1))
	code, stderr = runGen("-weights", ckpt, "-embed", "-pkg", "pets", "-o", w, "-q")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "weights.safetensors exists and was not written by resnetgen")
}

// The generator is deterministic, keeps the user's files, and a second run
// with other options removes the generated files it no longer writes.
func TestRegenerate(t *testing.T) {
	dir := t.TempDir()
	gen := "package pets\n\n//go:generate go tool resnetgen -arch cifar-resnet20\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "gen.go"), []byte(gen), 0o644))
	ckpt := writeWeights(t, resnet.RandomWeights(resnet.MustBuild("cifar-resnet20"), 1))
	args := []string{"-weights", ckpt, "-embed", "-size", "40x36", "-pkg", "pets", "-o", dir}
	code, stderr := runGen(args...)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "resnetgen: cifar-resnet20 on 40x36 inputs, 10 classes")
	first := listDir(t, dir)
	assert.Equal(t, []string{"gen.go", "kernels_amd64.go", "kernels_arm64.go", "kernels_avx2_amd64.go", "kernels_avx2_amd64.s", "kernels_avx512_amd64.go",
		"kernels_avx512_amd64.s", "kernels_neon_arm64.go", "kernels_neon_arm64.s", "kernels_other.go", "model.go", "model_test.go", "weights.safetensors"}, names(first))
	assert.Contains(t, first["model.go"], "InputHeight   = 40\n\tInputWidth    = 36")
	assert.Contains(t, first["model.go"], "//go:embed weights.safetensors")
	assert.Contains(t, first["kernels_avx512_amd64.go"], "func conv3x3s1_c16k16_h40w36_avx512(")

	code, stderr = runGen(args...)
	require.Equal(t, 0, code, stderr)
	second := listDir(t, dir)
	for name := range first {
		assert.True(t, first[name] == second[name], "%s: a second run writes other bytes", name)
	}

	code, stderr = runGen("-arch", "cifar-resnet20", "-classes", "7", "-pkg", "pets", "-o", dir, "-q")
	require.Equal(t, 0, code, stderr)
	again := listDir(t, dir)
	assert.NotContains(t, again, "weights.safetensors", "the stale embedded weights are removed")
	assert.Equal(t, gen, again["gen.go"])
	assert.Contains(t, again["model.go"], "Classes = 7")
	assert.NotContains(t, again["model.go"], "go:embed")
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string][2]int{"224": {224, 224}, "192x160": {192, 160}, "192X160": {192, 160}} {
		h, w, err := parseSize(in)
		require.NoError(t, err)
		assert.Equal(t, want, [2]int{h, w}, in)
	}
	for _, bad := range []string{"", "x", "0", "-3", "12x0", "axb", "1x2x3"} {
		_, _, err := parseSize(bad)
		assert.Error(t, err, bad)
	}
}
