// Package gen is resnetgen's generator: from a network of the family (named,
// or read from a checkpoint with its own class count), an input size and a
// package name it writes a self-contained Go package: the network's own
// kernels on every tier, as the kernel plan decides them (gen/plan) and the
// backends render them (gen/kernels: AVX-512 and AVX2 with Avo, NEON with
// our emitter), its model.go and tests (gen/graph, Jennifer) and,
// optionally, its weights with BatchNorm folded, compiled in. cmd/resnetgen is its command line; this repository's
// generated/ packages are written by the same command.
//
// Nothing is written until every input has been checked, and a file the
// generator did not write is never overwritten.
package gen

import (
	"bytes"
	"errors"
	"fmt"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/gen/graph"
	"github.com/resnetgen/resnetgen/gen/kernels"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/weightfile"
)

// Options is what to generate.
type Options struct {
	// Arch is a catalogued architecture (resnet.Names). With Weights it
	// picks among networks the weights fit alike (a v1 network's weights
	// fit its v1.5 twin); without, it is the network.
	Arch string
	// Weights is a checkpoint in any format resnet/weightfile reads; the
	// architecture and the class count are read from it.
	Weights string
	// Classes is the classifier's outputs; 0 means the checkpoint's, or
	// the architecture's.
	Classes int
	// Height and Width are the input size in pixels; 0 means the size an
	// ONNX model declares, or the architecture's (224, or 32 for CIFAR).
	Height, Width int
	// Pkg is the package name; "" means $GOPACKAGE (set by go generate)
	// when writing into the current directory, else the directory's name.
	Pkg string
	// Dir is the output directory, created if needed; "" means ".".
	Dir string
	// Int8 adds int8 kernels (uint8 activations × int8 weights; VNNI and
	// AVX2 on amd64, the portable kernel elsewhere) for every convolution
	// but the stem's: the package then runs in int8 given calibration.
	Int8 bool
	// Calibrate, with Int8 and Weights, names calibration images (an .npy
	// of N×3×H×W float32 tensors, or a directory of images where the
	// network has a preprocessing): their activations' scales are compiled
	// into the package, which then runs in int8 by default. CalibrateN
	// caps the images used (0: all).
	Calibrate  string
	CalibrateN int
	// Embed compiles the weights (BatchNorm folded, float32, checksummed)
	// into the package, which then has Load.
	Embed bool
	// Resize, Mean and Std change the evaluation transform the package's
	// Preprocess applies (DefaultTransform's otherwise; nil keeps the
	// default): torchvision's Resize(Resize) (0: none), CenterCrop to the
	// input, Normalize(Mean, Std).
	Resize    *int
	Mean, Std *[3]float64
	// Labels is a labels file (one name per line; labels.ReadFile) naming
	// the classes. "" means ImageNet's names for a 1000-class network of
	// the ImageNet family, CIFAR-10's for a 10-class CIFAR network, and
	// none otherwise.
	Labels string
	// Main, if set, is a directory to write a command for the package
	// into: main.go (NAME classify, NAME serve; package cli) and a
	// Dockerfile. It must be inside the package's module, and hold no Go
	// code but what resnetgen wrote there.
	Main string
	// Command is how the generator was called, quoted in the package doc.
	Command string
	// Progress receives a line per stage; nil for silence.
	Progress io.Writer
	// KernelsOf is for this repository's family packages only (gen/family):
	// the directory, relative to Dir, of a package whose kernels are, one by
	// one, this package's; the tests then leave them to that package's
	// TestKernels (graph.Spec.KernelsOf). "" tests every kernel here.
	KernelsOf string
}

// ErrUsage marks errors in the options themselves (as opposed to the
// files they name): a command line reports them as usage errors.
var ErrUsage = errors.New("usage")

func usage(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUsage}, args...)...)
}

// WeightsFile is the name of the embedded weights next to the code.
const WeightsFile = "weights.safetensors"

// Result says what Generate wrote.
type Result struct {
	Net     *resnet.Network
	Dir     string
	Files   []string // names written, sorted
	Removed []string // stale generated files removed
	Main    []string // the command's files written to Options.Main
	Bytes   int64
	Shapes  int // distinct convolution shapes (each with one or more kernels per tier: the plan's variants)
}

// Generate checks the options, generates the package and writes it.
func Generate(o Options) (*Result, error) {
	start := time.Now()
	say := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "resnetgen: "+format+"\n", args...)
		}
	}
	if o.Dir == "" {
		o.Dir = "."
	}
	if o.Arch == "" && o.Weights == "" {
		return nil, usage("name the network with -arch or give its weights with -weights")
	}
	if o.Embed && o.Weights == "" {
		return nil, usage("-embed needs -weights: there are no weights to compile in")
	}
	if o.Calibrate != "" && (!o.Int8 || o.Weights == "") {
		return nil, usage("-calibrate needs -precision int8 and -weights")
	}
	if o.Classes < 0 || o.Height < 0 || o.Width < 0 || (o.Height == 0) != (o.Width == 0) {
		return nil, usage("classes %d and size %dx%d must be positive", o.Classes, o.Height, o.Width)
	}
	pkg, err := packageName(o)
	if err != nil {
		return nil, err
	}
	var cmd *graph.Command
	if o.Main != "" {
		if cmd, err = command(o, pkg); err != nil {
			return nil, err
		}
	}
	if o.Arch != "" {
		if _, err := resnet.Lookup(o.Arch); err != nil {
			return nil, usage("%v", err)
		}
	}

	// The network: named, or read from the weights.
	var a resnet.Arch
	var wf *weightfile.File
	if o.Weights != "" {
		say("reading %s", o.Weights)
		if wf, err = weightfile.Open(o.Weights); err != nil {
			return nil, err
		}
		if o.Arch != "" {
			a, _ = resnet.Lookup(o.Arch)
			if c := wf.Classes(a); c > 0 {
				a.Classes = c
			}
		} else if a, err = wf.DetectArch(); err != nil {
			return nil, err
		}
		if o.Classes > 0 && o.Classes != a.Classes {
			return nil, usage("-classes %d, but %s's classifier has %d outputs", o.Classes, o.Weights, a.Classes)
		}
		if h, w, ok := wf.InputSize(); ok && o.Height == 0 {
			o.Height, o.Width = h, w
			say("input size %dx%d, as the ONNX model declares", h, w)
		}
	} else {
		a, _ = resnet.Lookup(o.Arch)
		if o.Classes > 0 {
			a.Classes = o.Classes
		}
	}
	if o.Height > 0 {
		a.InputH, a.InputW = o.Height, o.Width
	}
	net, err := resnet.Build(a)
	if err != nil {
		return nil, usage("%v", err)
	}
	spec := graph.Spec{Pkg: pkg, Net: net, Command: o.Command, KernelsOf: o.KernelsOf}
	if err := images(o, &spec); err != nil {
		return nil, err
	}
	say("preprocessing: %s; class names: %s", spec.Transform, labelsSaid(spec))
	var folded *engine.Folded
	if wf != nil {
		w, err := wf.Weights(net)
		if err != nil {
			return nil, err
		}
		if folded, err = engine.Fold(net, w); err != nil {
			return nil, err
		}
		say("%s: %s, %d classes (%s)", o.Weights, a.Name, a.Classes, wf.Format)
	}

	// The output directory must hold nothing the generator did not write
	// under the names it writes, and no Go code of another package.
	files := map[string][]byte{}
	shapes := net.ConvShapes()
	say("%s on %dx%d inputs, %d classes: %d layers, %d convolution shapes", a.Name, a.InputH, a.InputW, a.Classes, len(net.Layers), len(shapes))
	ks, err := kernels.Emit(pkg, net, kernels.Options{Int8: o.Int8})
	if err != nil {
		return nil, err
	}
	say("kernels: %s (%v)", kernels.Summary(ks), time.Since(start).Round(time.Millisecond))
	maps(files, ks)
	var cal *engine.Calibration
	if o.Calibrate != "" {
		if cal, spec.Calibration, err = calibrate(o, net, folded, say); err != nil {
			return nil, err
		}
	}
	if o.Embed {
		spec.Weights = WeightsFile
		var b bytes.Buffer
		write := engine.WriteFolded
		if cal != nil {
			// An int8 package embeds its weights quantized (a quarter of
			// the bytes), with the calibration they run with.
			write = func(w io.Writer, f *engine.Folded) error { return engine.WriteQuantized(w, f, cal) }
		}
		if err := write(&b, folded); err != nil {
			return nil, err
		}
		files[WeightsFile] = b.Bytes()
	}
	gs, err := graph.Emit(spec)
	if err != nil {
		return nil, err
	}
	maps(files, gs)
	stale, err := checkDir(o.Dir, pkg, files)
	if err != nil {
		return nil, err
	}
	var mainFiles map[string][]byte
	if cmd != nil {
		cmd.Title, cmd.Transform, cmd.Embedded, cmd.Int8 = graph.Title(net), spec.Transform.String(), o.Embed, spec.Calibration != nil
		if mainFiles, err = graph.EmitCommand(*cmd); err != nil {
			return nil, err
		}
		if err := checkMainDir(o.Main, mainFiles); err != nil {
			return nil, err
		}
	}
	res := &Result{Net: net, Dir: o.Dir, Shapes: len(shapes)}
	if res.Files, err = writeFiles(o.Dir, files, &res.Bytes); err != nil {
		return nil, err
	}
	for _, name := range stale {
		if err := os.Remove(filepath.Join(o.Dir, name)); err != nil {
			return nil, err
		}
		res.Removed = append(res.Removed, name)
	}
	if mainFiles != nil {
		if res.Main, err = writeFiles(o.Main, mainFiles, &res.Bytes); err != nil {
			return nil, err
		}
		say("wrote the command %s to %s: go build ./%s", pkg, o.Main, cmd.Dir)
	}
	say("wrote %d files (%.1f MB) to %s in %v", len(res.Files), float64(res.Bytes)/1e6, o.Dir, time.Since(start).Round(time.Millisecond))
	return res, nil
}

// writeFiles writes files into dir, creating it if needed, and returns
// their names, sorted; it adds their sizes to bytes.
func writeFiles(dir string, files map[string][]byte, bytes *int64) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var written []string
	for _, name := range sortedNames(files) {
		if err := writeFile(filepath.Join(dir, name), files[name]); err != nil {
			return written, err
		}
		written = append(written, name)
		*bytes += int64(len(files[name]))
	}
	return written, nil
}

func maps(dst, src map[string][]byte) {
	for k, v := range src {
		dst[k] = v
	}
}

func sortedNames(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// packageName is o.Pkg, or $GOPACKAGE when go generate writes into the
// directory of the file that asked, or the output directory's name; it
// must be a valid, importable package name.
func packageName(o Options) (string, error) {
	name := o.Pkg
	if name == "" {
		if gp := os.Getenv("GOPACKAGE"); gp != "" && filepath.Clean(o.Dir) == "." {
			name = strings.TrimSuffix(gp, "_test")
		} else {
			abs, err := filepath.Abs(o.Dir)
			if err != nil {
				return "", err
			}
			name = filepath.Base(abs)
			if !token.IsIdentifier(name) {
				return "", usage("the directory name %q is not a Go package name: name the package with -pkg", name)
			}
		}
	}
	if !token.IsIdentifier(name) || name == "main" || name == "_" {
		return "", usage("-pkg %q is not a valid package name for a library (want an identifier such as pets)", name)
	}
	return name, nil
}

var packageClause = regexp.MustCompile(`(?m)^package\s+([A-Za-z_][A-Za-z0-9_]*)`)

// generatedByUs reports whether the file at path was written by resnetgen:
// Go and assembly files by their first line, the weights by their format.
func generatedByUs(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	if filepath.Base(path) == WeightsFile {
		_, err := engine.FoldedInfo(b)
		return err == nil, nil
	}
	if filepath.Base(path) == "Dockerfile" {
		return bytes.HasPrefix(b, []byte(graph.DockerHeader+"\n")), nil
	}
	return bytes.HasPrefix(b, []byte(kernels.Header+"\n")), nil
}

// checkDir refuses to write into dir if a file the generator would write
// exists and was not written by it, or if dir holds Go files of another
// package. It returns the generated files of an earlier run that this run
// does not write (to be removed).
func checkDir(dir, pkg string, files map[string][]byte) (stale []string, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if e.IsDir() {
			continue
		}
		ours, err := generatedByUs(path)
		if err != nil {
			return nil, err
		}
		_, writes := files[name]
		switch {
		case writes && !ours:
			return nil, fmt.Errorf("%s exists and was not written by resnetgen: refusing to overwrite it (move it, or choose another -o)", path)
		case !writes && ours:
			stale = append(stale, name)
		}
		if strings.HasSuffix(name, ".go") && !ours {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			if m := packageClause.FindSubmatch(b); m != nil && string(m[1]) != pkg && string(m[1]) != pkg+"_test" {
				return nil, fmt.Errorf("%s is in package %s, not %s: generate into another directory, or pass -pkg %s", path, m[1], pkg, m[1])
			}
		}
	}
	return stale, nil
}

// writeFile writes data to path through a temporary file in the same
// directory, so that a failure leaves no half-written file.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".resnetgen-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
