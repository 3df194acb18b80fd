package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/npy"
	"github.com/resnetgen/resnetgen/serve/inferpb"

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

// toolModule makes a fresh module (go.mod replacing resnetgen with this
// checkout, resnetgen as a tool) with package pkg, whose one file asks go
// generate for `go tool resnetgen FLAGS`, runs go generate and go mod tidy,
// and returns the module's directory and what resnetgen said.
func toolModule(t *testing.T, pkg, flags string) (module, generated string) {
	t.Helper()
	module = t.TempDir()
	gomod := fmt.Sprintf("module example.com/user\n\ngo 1.26\n\nrequire github.com/resnetgen/resnetgen v0.0.0\n\nreplace github.com/resnetgen/resnetgen => %s\n", repoRoot(t))
	require.NoError(t, os.WriteFile(filepath.Join(module, "go.mod"), []byte(gomod), 0o644))
	goCmd(t, module, nil, "mod", "edit", "-tool=github.com/resnetgen/resnetgen/cmd/resnetgen")
	require.NoError(t, os.MkdirAll(filepath.Join(module, pkg), 0o755))
	hand := fmt.Sprintf("package %s\n\n//go:generate go tool resnetgen %s\n", pkg, flags)
	require.NoError(t, os.WriteFile(filepath.Join(module, pkg, "gen.go"), []byte(hand), 0o644))
	goCmd(t, module, nil, "mod", "tidy")
	generated = goCmd(t, module, nil, "generate", "./...")
	goCmd(t, module, nil, "mod", "tidy")
	return module, generated
}

// userNames are the class names the command test compiles in.
var userNames = []string{"daisy", "dandelion", "rose", "sunflower", "tulip"}

// sameRanking holds classes, our ranking of an image, to torch's
// probabilities p: the same classes in the same order, ties aside (at rank
// i a class whose torch probability is within 1e-4 of the i-th largest).
func sameRanking(t *testing.T, what string, classes []int, p []float64) {
	t.Helper()
	want := make([]int, len(p))
	for i := range want {
		want[i] = i
	}
	sort.SliceStable(want, func(a, b int) bool { return p[want[a]] > p[want[b]] })
	require.Len(t, classes, len(p), what)
	seen := map[int]bool{}
	for i, c := range classes {
		require.True(t, c >= 0 && c < len(p) && !seen[c], "%s: class %d at rank %d", what, c, i)
		seen[c] = true
		assert.InDelta(t, p[want[i]], p[c], 1e-4, "%s: rank %d is class %d, torch's is %d", what, i, c, want[i])
	}
}

// requireStatic fails unless the ELF file at path is statically linked: no
// interpreter, no shared libraries.
func requireStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "%s asks for a dynamic loader", path)
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs, "%s links shared libraries", path)
}

// served is a running `NAME serve`.
type served struct {
	cmd        *exec.Cmd
	http, grpc string
	stderr     *bytes.Buffer // read once exited is closed
	exited     chan struct{}
	err        error // Wait's, once exited is closed
}

// startServed starts `bin serve` on ports the system picks and waits for
// the line that ends its start, "gRPC on ADDR".
func startServed(t *testing.T, bin string, args ...string) *served {
	t.Helper()
	s := &served{stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"serve", "-addr", "127.0.0.1:0", "-grpc-addr", "127.0.0.1:0"}, args...)...)
	s.cmd.Dir = t.TempDir()
	pipe, err := s.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
	restLine, grpcLine := regexp.MustCompile(`REST on http://([^/\s]+)/`), regexp.MustCompile(`gRPC on (\S+)`)
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		var http string
		for sc.Scan() {
			line := sc.Text()
			s.stderr.WriteString(line + "\n")
			if m := restLine.FindStringSubmatch(line); m != nil {
				http = m[1]
			}
			if m := grpcLine.FindStringSubmatch(line); m != nil {
				ready <- [2]string{http, m[1]}
			}
		}
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	select {
	case addrs := <-ready:
		s.http, s.grpc = addrs[0], addrs[1]
	case <-s.exited:
		t.Fatalf("%s serve exited: %v\n%s", bin, s.err, s.stderr)
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s serve did not start", bin)
	}
	return s
}

// The whole flow, as a user meets it: a torchvision ResNet-18 fine-tuned
// to 5 classes at 200×300 (torch writes it, two images and its answers),
// generated into a fresh module with -labels -embed -main, the command
// built with CGO_ENABLED=0 (one static binary), run away from the
// checkpoint: `flowers classify -json` gives torch's ranking and
// probabilities, `flowers serve` answers an image file with the same
// ranking over REST and gRPC, refuses a corrupt one (400,
// INVALID_ARGUMENT) and goes on serving, and exits 0 on SIGTERM.
func TestUserModuleCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a user module and its command; run without -short")
	}
	start := time.Now()
	data := t.TempDir()
	out, err := exec.Command(torchPython, "testdata/user_images.py", data).CombinedOutput()
	require.NoError(t, err, "%s\nthis test needs torch and torchvision for %s: apt-get install -y python3-torchvision "+
		"(Debian 12; .ci/run installs it), or set RESNET_TORCH_PYTHON", out, torchPython)
	t.Logf("torch: %v", time.Since(start).Round(time.Millisecond))
	var want map[string]struct{ Probabilities []float64 }
	b, err := os.ReadFile(filepath.Join(data, "want.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &want))
	labelsPath := filepath.Join(data, "flowers.txt")
	require.NoError(t, os.WriteFile(labelsPath, []byte(strings.Join(userNames, "\n")+"\n"), 0o644))

	module, generated := toolModule(t, "flowers", fmt.Sprintf("-weights %s -size 200x300 -labels %s -embed -main ../cmd/flowers",
		filepath.Join(data, "flowers.pth"), labelsPath))
	assert.Contains(t, generated, "preprocessing: Resize(343), CenterCrop((200, 300)), ToTensor(), Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]); class names: 5 from flowers.txt")
	assert.Contains(t, generated, "wrote the command flowers to ../cmd/flowers: go build ./cmd/flowers")
	goCmd(t, module, nil, "vet", "./...")
	deps := goCmd(t, module, nil, "list", "-deps", "./flowers")
	for _, serving := range []string{"google.golang.org/grpc", "github.com/prometheus", "resnetgen/serve", "resnetgen/cli"} {
		assert.NotContains(t, deps, serving, "the package imports serving code")
	}
	bin := filepath.Join(t.TempDir(), "flowers")
	goCmd(t, module, []string{"CGO_ENABLED=0"}, "build", "-o", bin, "./cmd/flowers")
	requireStatic(t, bin)
	dockerfile, err := os.ReadFile(filepath.Join(module, "cmd", "flowers", "Dockerfile"))
	require.NoError(t, err)
	assert.Contains(t, string(dockerfile), "RUN CGO_ENABLED=0 go build -trimpath -o /flowers ./cmd/flowers")
	assert.Contains(t, string(dockerfile), `CMD ["serve", "-addr=0.0.0.0:8080", "-grpc-addr=0.0.0.0:8081"]`, "no -weights: they are compiled in")
	// No checkpoint anywhere near the command: the weights are in it.
	require.NoError(t, os.Rename(filepath.Join(data, "flowers.pth"), filepath.Join(data, "moved.pth")))
	built := time.Since(start)

	images := []string{filepath.Join(data, "a.jpg"), filepath.Join(data, "b.png")}
	var got []struct {
		Image string
		Top   []struct {
			Class       int
			Label       string
			Probability float64
		}
	}
	require.NoError(t, json.Unmarshal([]byte(runProgram(t, bin, append([]string{"classify", "-json"}, images...)...)), &got))
	require.Len(t, got, 2)
	worst := 0.0
	for i, r := range got {
		assert.Equal(t, images[i], r.Image)
		p := want[filepath.Base(r.Image)].Probabilities
		var classes []int
		for _, c := range r.Top {
			classes = append(classes, c.Class)
			assert.Equal(t, userNames[c.Class], c.Label)
			assert.InDelta(t, p[c.Class], c.Probability, 1e-4, "%s: class %d", r.Image, c.Class)
		}
		sameRanking(t, "classify "+r.Image, classes, p)
		for _, c := range r.Top {
			worst = max(worst, math.Abs(c.Probability-p[c.Class]))
		}
	}
	t.Logf("classify: max |probability − torch's| = %.2g", worst)
	assert.NotEqual(t, got[0].Top[1].Class, got[1].Top[1].Class, "the images rank the classes differently: the order is tested")

	// A file that is not an image among good ones: reported, the other classified, exit status 1.
	notes := filepath.Join(data, "notes.txt")
	require.NoError(t, os.WriteFile(notes, []byte("not an image"), 0o644))
	cmd := exec.Command(bin, "classify", notes, images[0])
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var exit *exec.ExitError
	require.ErrorAs(t, cmd.Run(), &exit)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, stderr.String(), "flowers classify: "+notes+": not a JPEG or PNG image")
	assert.Contains(t, stderr.String(), "flowers classify: 1 of 2 images could not be classified")
	assert.Contains(t, stdout.String(), images[0]+"\n")

	// serve: the JPEG as BYTES, top 5 by the classification extension.
	s := startServed(t, bin, "-workers", "2")
	assert.Contains(t, s.stderr.String(), "flowers serve: flowers (resnet18, 5 classes, 200x300 input, tensors or image files) ready in")
	jpegFile, err := os.ReadFile(images[0])
	require.NoError(t, err)
	p := want["a.jpg"].Probabilities
	classes := func(what string, strs []string) []int {
		var cs []int
		for _, s := range strs {
			f := strings.SplitN(s, ":", 3) // score:index:label
			require.Len(t, f, 3, "%s: %q", what, s)
			c, err := strconv.Atoi(f[1])
			require.NoError(t, err)
			assert.Equal(t, userNames[c], f[2], what)
			cs = append(cs, c)
		}
		return cs
	}
	rest := func(file []byte) (int, []string, string) {
		body, err := json.Marshal(map[string]any{
			"inputs":  []any{map[string]any{"name": "input", "shape": []int{1}, "datatype": "BYTES", "data": []string{base64.StdEncoding.EncodeToString(file)}}},
			"outputs": []any{map[string]any{"name": "logits", "parameters": map[string]any{"classification": 5}}},
		})
		require.NoError(t, err)
		resp, err := http.Post("http://"+s.http+"/v2/models/flowers/infer", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var answer struct{ Outputs []struct{ Data []string } }
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.Unmarshal(raw, &answer))
			return resp.StatusCode, answer.Outputs[0].Data, string(raw)
		}
		return resp.StatusCode, nil, string(raw)
	}
	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := inferpb.NewGRPCInferenceServiceClient(conn)
	gRPC := func(file []byte) ([]string, error) {
		r, err := client.ModelInfer(context.Background(), &inferpb.ModelInferRequest{ModelName: "flowers",
			Inputs: []*inferpb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "BYTES", Shape: []int64{1},
				Contents: &inferpb.InferTensorContents{BytesContents: [][]byte{file}}}},
			Outputs: []*inferpb.ModelInferRequest_InferRequestedOutputTensor{{Name: "logits",
				Parameters: map[string]*inferpb.InferParameter{"classification": {ParameterChoice: &inferpb.InferParameter_Int64Param{Int64Param: 5}}}}}})
		if err != nil {
			return nil, err
		}
		var strs []string
		for _, b := range r.Outputs[0].Contents.BytesContents {
			strs = append(strs, string(b))
		}
		return strs, nil
	}
	code, strs, raw := rest(jpegFile)
	require.Equal(t, http.StatusOK, code, raw)
	sameRanking(t, "REST", classes("REST", strs), p)
	strs, err = gRPC(jpegFile)
	require.NoError(t, err)
	sameRanking(t, "gRPC", classes("gRPC", strs), p)
	corrupt := append([]byte(nil), jpegFile[:len(jpegFile)/3]...)
	for _, bad := range [][]byte{corrupt, []byte("not an image")} {
		code, _, raw = rest(bad)
		assert.Equal(t, http.StatusBadRequest, code, raw)
		assert.Contains(t, raw, "inputs[0].data[0]: ")
		_, err = gRPC(bad)
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	}
	code, strs, raw = rest(jpegFile)
	require.Equal(t, http.StatusOK, code, "still serving after bad input: %s", raw)
	sameRanking(t, "REST after bad input", classes("REST", strs), p)

	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		t.Fatal("flowers serve did not stop within a minute of SIGTERM")
	}
	require.NoError(t, s.err, "exit status 0 on SIGTERM\n%s", s.stderr)
	assert.Contains(t, s.stderr.String(), "flowers serve: terminated: finishing the requests already accepted")
	assert.Contains(t, s.stderr.String(), "answered 2 inference requests over REST and 1 over gRPC")
	t.Logf("built in %v, all in %v", built.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// cifarPNG writes image i of the CIFAR-10 test batch as a PNG in dir.
func cifarPNG(t *testing.T, dir string, images []cifar10.Image, i int) string {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, cifar10.Side, cifar10.Side))
	const plane = cifar10.Side * cifar10.Side
	for p := range plane {
		for c := range 3 {
			img.Pix[4*p+c] = images[i].Pixels[c*plane+p]
		}
		img.Pix[4*p+3] = 255
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	path := filepath.Join(dir, fmt.Sprintf("%05d.png", i))
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
	return path
}

// The command of an int8 package: the published CIFAR-10 ResNet-20,
// calibrated on 50 test images, embedded, -main. It runs in int8 unless
// told -precision fp32, and the two agree on the images fp32 is sure of.
func TestUserModuleInt8Command(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a user module and its command; run without -short")
	}
	start := time.Now()
	ckpt, err := filepath.Glob(filepath.Join(sharedData, "cifar10-resnet", "resnet20-*.th"))
	require.NoError(t, err)
	require.Len(t, ckpt, 1, "the published ResNet-20 in %s/cifar10-resnet", sharedData)
	weights, err := filepath.Abs(ckpt[0])
	require.NoError(t, err)
	images, err := cifar10.ReadFile(filepath.Join(sharedData, "cifar10-test", "test_batch_00.bin"))
	require.NoError(t, err)
	calib, pics := t.TempDir(), t.TempDir()
	for i := range 50 {
		cifarPNG(t, calib, images, 10*i)
	}
	var files []string
	for i := range 8 {
		files = append(files, cifarPNG(t, pics, images, 501+i))
	}

	module, _ := toolModule(t, "cifarnet", fmt.Sprintf("-arch cifar-resnet20 -weights %s -precision int8 -calibrate %s -embed -main ../cmd/cifarnet", weights, calib))
	bin := filepath.Join(t.TempDir(), "cifarnet")
	goCmd(t, module, []string{"CGO_ENABLED=0"}, "build", "-o", bin, "./cmd/cifarnet")

	classify := func(args ...string) [][]struct {
		Class       int
		Label       string
		Probability float64
	} {
		var res []struct {
			Top []struct {
				Class       int
				Label       string
				Probability float64
			}
		}
		require.NoError(t, json.Unmarshal([]byte(runProgram(t, bin, append(append([]string{"classify", "-json"}, args...), files...)...)), &res))
		require.Len(t, res, len(files))
		var tops [][]struct {
			Class       int
			Label       string
			Probability float64
		}
		for _, r := range res {
			require.Len(t, r.Top, 5)
			assert.Equal(t, cifar10.ClassNames[r.Top[0].Class], r.Top[0].Label)
			tops = append(tops, r.Top)
		}
		return tops
	}
	// The embedded weights are int8 only (a quarter of fp32's size): fp32
	// needs the checkpoint, and without it the command says so.
	int8, explicit, fp32 := classify(), classify("-precision", "int8"), classify("-precision", "fp32", "-weights", weights)
	assert.Equal(t, int8, explicit, "int8 is the default")
	assert.NotEqual(t, int8, fp32, "-precision fp32 runs another arithmetic")
	out, err := exec.Command(bin, "classify", "-precision", "fp32", files[0]).CombinedOutput()
	assert.Error(t, err, "fp32 from int8 weights")
	assert.Contains(t, string(out), "the weights are int8 (a package generated with -precision int8 -embed): the Model runs in int8 only, not fp32")
	sure := 0
	for i := range files {
		if fp32[i][0].Probability > 0.9 {
			sure++
			assert.Equal(t, fp32[i][0].Class, int8[i][0].Class, "%s: top-1", files[i])
		}
	}
	assert.Positive(t, sure)
	cmd := exec.Command(bin, "serve", "-precision", "int4")
	out, err = cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 2, exit.ExitCode())
	assert.Contains(t, string(out), `cifarnet serve: usage: -precision: unknown precision "int4" (want fp32 or int8)`)
	t.Logf("%d of %d images fp32 is sure of; all in %v", sure, len(files), time.Since(start).Round(time.Millisecond))
}
