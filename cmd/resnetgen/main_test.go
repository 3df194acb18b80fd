package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
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
		{"labels: one too few", []string{"-arch", "cifar-resnet20", "-labels", labelsFile(t, "a\nb\nc\nd\ne\nf\ng\nh\ni\n")}, 1,
			"labels.txt: 9 labels, want 10 (the network's classes)"},
		{"labels: a blank line", []string{"-arch", "resnet18", "-classes", "3", "-labels", labelsFile(t, "cat\n\ndog\n")}, 1, "labels.txt:2: empty name"},
		{"labels: a duplicate", []string{"-arch", "resnet18", "-classes", "3", "-labels", labelsFile(t, "cat\ndog\ncat\n")}, 1,
			`labels.txt:3: "cat" again, as on line 1`},
		{"labels: no file", []string{"-arch", "resnet18", "-labels", "nowhere.txt"}, 1, "-labels open nowhere.txt: no such file"},
		{"mean of two numbers", []string{"-arch", "resnet18", "-mean", "0.5,0.5"}, 2,
			`-mean "0.5,0.5": want three numbers separated by commas, one per RGB channel, e.g. 0.485,0.456,0.406 (got 2)`},
		{"std not a number", []string{"-arch", "resnet18", "-std", "0.2,x,0.2"}, 2, `-std "0.2,x,0.2": "x" is not a number`},
		{"std zero", []string{"-arch", "resnet18", "-std", "0.2,0,0.2"}, 2, "std [0.2 0 0.2]: each must be a finite float32 other than 0"},
		{"negative resize", []string{"-arch", "resnet18", "-resize", "-1"}, 2, "resize -1: must be 0 (none) to 65536"},
		{"main outside a module", []string{"-arch", "resnet18", "-main", "cmd"}, 2, "-main needs the package inside a Go module: no go.mod in"},
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

// labelsFile writes a labels file named labels.txt and returns its path.
func labelsFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "labels.txt")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// userModule makes an empty module example.com/user and returns its
// directory.
func emptyModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/user\n\ngo 1.26.0\n"), 0o644))
	return dir
}

// A -main directory holding code of its own, the package's own directory,
// and one outside the package's module are refused before anything is
// written; a command resnetgen wrote is rewritten, and the files beside it
// kept.
func TestMainDirectoryIsRespected(t *testing.T) {
	mod := emptyModule(t)
	pkgDir, mainDir := filepath.Join(mod, "pets"), filepath.Join(mod, "cmd", "pets")
	require.NoError(t, os.MkdirAll(mainDir, 0o755))
	hand := "package main\n\nfunc helper() {}\n"
	require.NoError(t, os.WriteFile(filepath.Join(mainDir, "helper.go"), []byte(hand), 0o644))
	code, stderr := runGen("-arch", "cifar-resnet20", "-pkg", "pets", "-o", pkgDir, "-main", mainDir, "-q")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "-main "+mainDir+" holds other Go code (helper.go): the command is package main and needs a directory of its own")
	assert.NoDirExists(t, pkgDir, "nothing written")
	assert.Equal(t, map[string]string{"helper.go": hand}, listDir(t, mainDir))

	require.NoError(t, os.Remove(filepath.Join(mainDir, "helper.go")))
	require.NoError(t, os.WriteFile(filepath.Join(mainDir, "Dockerfile"), []byte("FROM alpine\n"), 0o644))
	code, stderr = runGen("-arch", "cifar-resnet20", "-pkg", "pets", "-o", pkgDir, "-main", mainDir, "-q")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, filepath.Join(mainDir, "Dockerfile")+" exists and was not written by resnetgen: refusing to overwrite it")
	assert.NoDirExists(t, pkgDir, "nothing written")

	code, stderr = runGen("-arch", "cifar-resnet20", "-pkg", "pets", "-o", pkgDir, "-main", pkgDir, "-q")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "is the package's own directory: the command is package main, so it needs a directory of its own (e.g. -main cmd/pets)")
	code, stderr = runGen("-arch", "cifar-resnet20", "-pkg", "pets", "-o", pkgDir, "-main", t.TempDir(), "-q")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "is outside the package's module ("+mod+")")
	assert.NoDirExists(t, pkgDir, "nothing written")

	require.NoError(t, os.Remove(filepath.Join(mainDir, "Dockerfile")))
	require.NoError(t, os.WriteFile(filepath.Join(mainDir, "README.md"), []byte("mine"), 0o644))
	code, stderr = runGen("-arch", "cifar-resnet20", "-pkg", "pets", "-o", pkgDir, "-main", mainDir)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "wrote the command pets to "+mainDir+": go build ./cmd/pets")
	first := listDir(t, mainDir)
	assert.Equal(t, []string{"Dockerfile", "README.md", "main.go"}, names(first))
	assert.Contains(t, first["main.go"], `pets "example.com/user/pets"`)
	assert.NotContains(t, first["main.go"], "Load:", "no embedded weights")
	assert.NotContains(t, first["main.go"], "Int8:", "no int8 by default")
	assert.Contains(t, first["Dockerfile"], "FROM golang:1.26 AS build")
	assert.Contains(t, first["Dockerfile"], "RUN CGO_ENABLED=0 go build -trimpath -o /pets ./cmd/pets")
	assert.Contains(t, first["Dockerfile"], `CMD ["serve", "-weights=/mnt/models",`)
	code, stderr = runGen("-arch", "cifar-resnet20", "-pkg", "pets", "-o", pkgDir, "-main", mainDir)
	require.Equal(t, 0, code, stderr)
	assert.True(t, reflect.DeepEqual(first, listDir(t, mainDir)), "a second run writes the same, and keeps README.md")
}

// The transform and the class names compiled into the package: the
// defaults of each family, and the flags' values.
func TestPreprocessingAndLabels(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"ImageNet", []string{"-arch", "resnet50"}, []string{"Resize: 256,", "Mean:   [3]float64{0.485, 0.456, 0.406},", "Std:    [3]float64{0.229, 0.224, 0.225},",
			"var classNames = labels.ImageNet()", "Labels names the classes: ImageNet-1k's"}},
		{"ImageNet family at 200x300", []string{"-arch", "resnet18", "-size", "200x300"}, []string{"Resize: 343,", "var classNames = labels.ImageNet()"}},
		{"CIFAR", []string{"-arch", "cifar-resnet20"}, []string{"Resize: 0,", "var classNames = labels.CIFAR10()"}},
		{"CIFAR-sized ImageNet-family net without names", []string{"-arch", "resnet18", "-classes", "10", "-size", "32"},
			[]string{"Resize: 37,", "var classNames []string", "The package has no class names (Labels returns nil"}},
		{"CIFAR net of 100 classes", []string{"-arch", "cifar-resnet20", "-classes", "100"}, []string{"var classNames []string"}},
		{"flags", []string{"-arch", "resnet18", "-classes", "3", "-resize", "0", "-mean", "0.5,0.5,0.5", "-std", " 0.25, 0.5 ,1", "-labels", labelsFile(t, "\uFEFFcat\r\n\"dog\"\r\nbird\r\n")},
			[]string{"Resize: 0,", "Mean:   [3]float64{0.5, 0.5, 0.5},", "Std:    [3]float64{0.25, 0.5, 1.0},",
				"var classNames = []string{\n\t\"cat\",\n\t\"\\\"dog\\\"\",\n\t\"bird\",\n}", "Labels names the classes: from labels.txt."}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			code, stderr := runGen(append(c.args, "-pkg", "pets", "-o", dir, "-q")...)
			require.Equal(t, 0, code, stderr)
			model, err := os.ReadFile(filepath.Join(dir, "model.go"))
			require.NoError(t, err)
			for _, w := range c.want {
				assert.Contains(t, string(model), w)
			}
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
