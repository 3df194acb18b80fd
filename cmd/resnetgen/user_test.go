package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet/npy"

	_ "github.com/resnetgen/resnetgen/engine/enginetest" // New ignores this machine's tuning cache, here and in the processes the tests start
)

// The tests here do what a user does, outside this repository: a fresh
// module in a temporary directory (go.mod with a replace to this checkout),
// a //go:generate line, go generate, go mod tidy, go vet (amd64, arm64,
// purego), the generated package's own tests, go build, and the program run
// from another directory; its logits are held to torch's.

// torchPython is the interpreter with Debian's python3-torchvision
// (torch 1.13, torchvision 0.14); .ci/run installs it.
var torchPython = func() string {
	if p := os.Getenv("RESNET_TORCH_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}()

const sharedData = "../../../shared/data"

// repoRoot is the checkout the user's module replaces resnetgen with.
func repoRoot(t *testing.T) string {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	return root
}

// torchModels runs testdata/user_models.py once: torch writes the
// checkpoints a user brings, inputs and its logits on them.
func torchModels(t *testing.T) string {
	dir := t.TempDir()
	out, err := exec.Command(torchPython, "testdata/user_models.py", dir).CombinedOutput()
	require.NoError(t, err, "%s\nthis test needs torch and torchvision for %s: apt-get install -y python3-torchvision "+
		"(Debian 12; .ci/run installs it), or set RESNET_TORCH_PYTHON", out, torchPython)
	return dir
}

// userCase is one package a user generates and the program that uses it.
type userCase struct {
	Pkg   string // package and directory name
	Embed bool   // the program calls Load (weights compiled in), not LoadFile
	Tool  bool   // the Go 1.24 tool form: go tool resnetgen
	Flags string // resnetgen's flags
	CIFAR bool   // the program evaluates the CIFAR-10 test set instead of .npy in/out
}

var programTemplate = template.Must(template.New("main").Parse(`package main

import (
	"fmt"
	"os"
{{if .CIFAR}}
	"github.com/resnetgen/resnetgen/resnet/cifar10"
{{else}}
	"github.com/resnetgen/resnetgen/resnet/npy"
{{end}}
	model "example.com/user/{{.Pkg}}"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
{{if .Embed}}	m, err := model.Load()
{{else}}	m, err := model.LoadFile(os.Args[3])
{{end}}	if err != nil {
		return err
	}
	defer m.Close()
{{if .CIFAR}}	images, err := cifar10.ReadDir(os.Args[1])
	if err != nil {
		return err
	}
	var x [model.InputLen]float32
	var y [model.Classes]float32
	correct := 0
	for _, img := range images {
		img.Normalize(x[:])
		m.Forward(&x, &y)
		best := 0
		for i := range y {
			if y[i] > y[best] {
				best = i
			}
		}
		if best == img.Label {
			correct++
		}
	}
	fmt.Printf("%d/%d\n", correct, len(images))
	return nil
{{else}}	x, err := npy.ReadFile(os.Args[1])
	if err != nil {
		return err
	}
	n := len(x.Data) / model.InputLen
	if n*model.InputLen != len(x.Data) {
		return fmt.Errorf("%s: %v is not N×%d", os.Args[1], x.Shape, model.InputLen)
	}
	out := make([]float32, n*model.Classes)
	for i := 0; i < n; i++ {
		m.Forward((*[model.InputLen]float32)(x.Data[i*model.InputLen:]), (*[model.Classes]float32)(out[i*model.Classes:]))
	}
	return npy.WriteFile(os.Args[2], &npy.Array{Shape: []int{n, model.Classes}, Data: out})
{{end}}}
`))

// goCmd runs the go command in dir and returns its combined output.
func goCmd(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s in %s:\n%s", strings.Join(args, " "), dir, out)
	t.Logf("go %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return string(out)
}

// userModule makes the module, generates the package and builds the
// program; it returns the program's path, outside the module.
func userModule(t *testing.T, c userCase) (module, program, generated string) {
	module = t.TempDir()
	gomod := fmt.Sprintf("module example.com/user\n\ngo 1.26\n\nrequire github.com/resnetgen/resnetgen v0.0.0\n\nreplace github.com/resnetgen/resnetgen => %s\n", repoRoot(t))
	require.NoError(t, os.WriteFile(filepath.Join(module, "go.mod"), []byte(gomod), 0o644))
	pkgDir := filepath.Join(module, c.Pkg)
	require.NoError(t, os.MkdirAll(pkgDir, 0o755))
	line := "go run github.com/resnetgen/resnetgen/cmd/resnetgen " + c.Flags
	if c.Tool {
		// go get -tool would ask the module proxy for the unpublished module;
		// go mod edit -tool writes the same directive.
		goCmd(t, module, nil, "mod", "edit", "-tool=github.com/resnetgen/resnetgen/cmd/resnetgen")
		line = "go tool resnetgen " + c.Flags
	}
	hand := fmt.Sprintf("package %s\n\n//go:generate %s\n", c.Pkg, line)
	require.NoError(t, os.WriteFile(filepath.Join(pkgDir, "gen.go"), []byte(hand), 0o644))
	var prog bytes.Buffer
	require.NoError(t, programTemplate.Execute(&prog, c))
	require.NoError(t, os.MkdirAll(filepath.Join(module, "cmd", "predict"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(module, "cmd", "predict", "main.go"), prog.Bytes(), 0o644))

	// The go run form needs resnetgen's own dependencies in go.sum, which
	// go mod tidy does not keep for a command the module does not import:
	// go mod download all records them (README says so).
	goCmd(t, module, nil, "mod", "tidy")
	if !c.Tool {
		goCmd(t, module, nil, "mod", "download", "all")
	}
	start := time.Now()
	generated = goCmd(t, module, nil, "generate", "./...")
	t.Logf("go generate (%v):\n%s", time.Since(start).Round(time.Millisecond), generated)
	goCmd(t, module, nil, "mod", "tidy")
	goCmd(t, module, nil, "vet", "./...")
	goCmd(t, module, []string{"GOARCH=arm64"}, "vet", "./...")
	goCmd(t, module, nil, "vet", "-tags", "purego", "./...")
	program = filepath.Join(t.TempDir(), "predict")
	goCmd(t, module, nil, "build", "-o", program, "./cmd/predict")
	deps := goCmd(t, module, nil, "list", "-deps", "./cmd/predict")
	for _, gen := range []string{"github.com/mmcloughlin/avo", "github.com/dave/jennifer", "resnetgen/gen"} {
		assert.NotContains(t, deps, gen, "the user's binary links its generator")
	}
	st, err := os.Stat(program)
	require.NoError(t, err)
	t.Logf("%s: %.1f MB binary", c.Pkg, float64(st.Size())/1e6)
	return module, program, generated
}

// runProgram runs the program from an empty directory (no weight file
// next to it) and returns its output.
func runProgram(t *testing.T, program string, args ...string) string {
	t.Helper()
	cmd := exec.Command(program, args...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %v:\n%s", program, args, out)
	return string(out)
}

// sameAsTorch holds logits (N×classes) to torch's: within 1e-4 × max|logit|
// and the same top-5 classes for every image.
func sameAsTorch(t *testing.T, gotPath, wantPath string) {
	t.Helper()
	got, err := npy.ReadFile(gotPath)
	require.NoError(t, err)
	want, err := npy.ReadFile(wantPath)
	require.NoError(t, err)
	require.Equal(t, want.Shape, got.Shape)
	classes := want.Shape[1]
	scale, worst := 0.0, 0.0
	for i := range want.Data {
		scale = math.Max(scale, math.Abs(float64(want.Data[i])))
		worst = math.Max(worst, math.Abs(float64(got.Data[i]-want.Data[i])))
	}
	t.Logf("max |ours − torch| / max |torch| = %.2g", worst/scale)
	require.LessOrEqual(t, worst, 1e-4*scale)
	for n := 0; n < want.Shape[0]; n++ {
		row := func(d []float32) []int {
			idx := make([]int, classes)
			for i := range idx {
				idx[i] = i
			}
			r := d[n*classes : (n+1)*classes]
			sort.SliceStable(idx, func(a, b int) bool { return r[idx[a]] > r[idx[b]] })
			return idx[:5]
		}
		require.Equal(t, row(want.Data), row(got.Data), "image %d: top-5", n)
	}
}

func TestUserModuleTorchvisionCheckpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two user modules (minutes); run without -short")
	}
	models := torchModels(t)
	t.Run("resnet50 37 classes 256x256 embedded", func(t *testing.T) {
		c := userCase{Pkg: "pets", Embed: true, Flags: fmt.Sprintf("-weights %s -size 256 -embed -pkg pets -o .", filepath.Join(models, "pets.pth"))}
		module, program, _ := userModule(t, c)
		goCmd(t, module, nil, "test", "./pets")
		// No weight file anywhere near the program: move the checkpoint away.
		require.NoError(t, os.Rename(filepath.Join(models, "pets.pth"), filepath.Join(models, "moved.pth")))
		out := filepath.Join(t.TempDir(), "logits.npy")
		runProgram(t, program, filepath.Join(models, "pets_x.npy"), out)
		sameAsTorch(t, out, filepath.Join(models, "pets_logits.npy"))
	})
	t.Run("resnet18 10 classes 192x160 from ONNX", func(t *testing.T) {
		// No -size, no -pkg: the ONNX model declares its 1x3x192x160 input,
		// and go generate names the package.
		c := userCase{Pkg: "flowers", Tool: true, Flags: "-weights " + filepath.Join(models, "flowers.onnx")}
		module, program, generated := userModule(t, c)
		assert.Contains(t, generated, "input size 192x160, as the ONNX model declares")
		goCmd(t, module, nil, "test", "./flowers")
		out := filepath.Join(t.TempDir(), "logits.npy")
		runProgram(t, program, filepath.Join(models, "flowers_x.npy"), out, filepath.Join(models, "flowers.onnx"))
		sameAsTorch(t, out, filepath.Join(models, "flowers_logits.npy"))
	})
}

// The published CIFAR-10 ResNet-20, embedded into a user's package, gives
// the published accuracy on the test set: 9173 of 10000 (8.27 % error).
func TestUserModuleEmbeddedCIFAR(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a user module; run without -short")
	}
	ckpt, err := filepath.Glob(filepath.Join(sharedData, "cifar10-resnet", "resnet20-*.th"))
	require.NoError(t, err)
	require.Len(t, ckpt, 1, "the published ResNet-20 in %s/cifar10-resnet", sharedData)
	abs, err := filepath.Abs(ckpt[0])
	require.NoError(t, err)
	data, err := filepath.Abs(filepath.Join(sharedData, "cifar10-test"))
	require.NoError(t, err)
	c := userCase{Pkg: "cifarnet", Embed: true, CIFAR: true, Flags: "-arch cifar-resnet20 -weights " + abs + " -embed"}
	_, program, _ := userModule(t, c)
	start := time.Now()
	out := runProgram(t, program, data)
	t.Logf("10,000 images in %v on %d cores", time.Since(start).Round(time.Millisecond), runtime.NumCPU())
	assert.Equal(t, "9173/10000\n", out)
}
