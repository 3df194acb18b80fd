package cli

import (
	"flag"
	"fmt"
	"io"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/weightfile"
	"github.com/resnetgen/resnetgen/serve"
)

// Model is what the commands need of a generated package's Model.
type Model = serve.Network

// A Package is a generated package as its command (resnetgen -main) uses
// it: the generated main fills one from the package's constants and
// functions and calls Main.
type Package struct {
	// Name is the package's name: the command's, and by default the served
	// model's.
	Name                    string
	Arch                    string
	InputH, InputW, Classes int
	Labels                  []string // the package's Labels(); nil: none
	// Transform describes the package's preprocessing (its Transform's
	// String), for the usage text.
	Transform string
	// Preprocess is the package's Preprocess, as a slice.
	Preprocess func(file []byte) ([]float32, error)
	// Network and New are the package's: New makes a Model of weights
	// read from a file (-weights).
	Network func() (*resnet.Network, error)
	New     func(w *resnet.Weights, opts ...engine.Option) (Model, error)
	// Load makes a Model of the weights compiled into the package; nil
	// when there are none (then -weights is required).
	Load func(opts ...engine.Option) (Model, error)
	// Int8 says the package runs in int8 by default (int8 kernels and a
	// calibration compiled in): its commands take -precision fp32|int8.
	Int8 bool
}

// Main runs a generated package's command with args (os.Args[1:]) and
// returns the exit status:
//
//	NAME classify [-weights W] [-precision P] [-top 5] [-json] IMAGE…
//	NAME serve [-weights W] [-precision P] [resnet serve's flags]
func Main(p Package, args []string, stdout, stderr io.Writer) int {
	return Run(p.Name, []Command{
		{"classify", fmt.Sprintf("the most probable of the %d classes of JPEG/PNG images (%s)", p.Classes, p.Transform), p.classify},
		{"serve", "serve the network over the Open Inference Protocol (KServe v2): REST and gRPC, dynamic batching, image files as BYTES", p.serve},
	}, args, stdout, stderr)
}

// netFlags are the flags that choose the weights and the precision.
type netFlags struct {
	weights   *string
	precision *string
}

func (p Package) addNetFlags(fs *flag.FlagSet) netFlags {
	var f netFlags
	if p.Load != nil {
		f.weights = fs.String("weights", "", "weights: PyTorch checkpoint, safetensors or ONNX, or a directory holding one (default: the weights compiled in)")
	} else {
		f.weights = fs.String("weights", "", "weights: PyTorch checkpoint, safetensors or ONNX, or a directory holding one (required)")
	}
	if p.Int8 {
		f.precision = fs.String("precision", "int8", "fp32, or int8 with the activation scales compiled in")
	}
	return f
}

// check refuses bad flags before anything is read.
func (p Package) check(f netFlags) error {
	if *f.weights == "" && p.Load == nil {
		return Usage("-weights is required: %s has no weights compiled in", p.Name)
	}
	if f.precision != nil {
		if _, err := engine.ParsePrecision(*f.precision); err != nil {
			return Usage("-precision: %v", err)
		}
	}
	return nil
}

// open reads the weights the flags name, or takes the embedded ones.
func (p Package) open(f netFlags) (Net, error) {
	n := Net{Name: p.Name, Arch: p.Arch, InputH: p.InputH, InputW: p.InputW, Classes: p.Classes, Labels: p.Labels, Images: p.Preprocess}
	var base []engine.Option
	if f.precision != nil && *f.precision == "fp32" {
		base = append(base, engine.WithPrecision(engine.FP32))
	}
	with := func(opts []engine.Option) []engine.Option {
		return append(append([]engine.Option(nil), base...), opts...)
	}
	if *f.weights == "" {
		n.New = func(opts ...engine.Option) (serve.Network, error) { return p.Load(with(opts)...) }
		return n, nil
	}
	path, err := WeightsInDir(*f.weights)
	if err != nil {
		return Net{}, err
	}
	net, err := p.Network()
	if err != nil {
		return Net{}, err
	}
	w, err := weightfile.Load(path, net)
	if err != nil {
		return Net{}, err
	}
	n.New = func(opts ...engine.Option) (serve.Network, error) { return p.New(w, with(opts)...) }
	return n, nil
}

func (p Package) classify(args []string, stdout, stderr io.Writer) error {
	fs := NewFlags(p.Name+" classify", stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s classify [flags] IMAGE…\n\n", p.Name)
		fs.PrintDefaults()
	}
	nf := p.addNetFlags(fs)
	cf := AddClassifyFlags(fs)
	if err := ParseArgs(fs, args); err != nil {
		return err
	}
	images := fs.Args()
	if len(images) == 0 {
		return Usage("usage: %s classify [flags] image.jpg [more…]", p.Name)
	}
	if err := p.check(nf); err != nil {
		return err
	}
	if err := cf.Check(); err != nil {
		return err
	}
	net, err := p.open(nf)
	if err != nil {
		return err
	}
	return Classify(p.Name+" classify", net, images, cf, stdout, stderr)
}

func (p Package) serve(args []string, stdout, stderr io.Writer) error {
	fs := NewFlags(p.Name+" serve", stderr)
	nf := p.addNetFlags(fs)
	sf := AddServeFlags(fs, p.Name)
	if err := Parse(fs, args); err != nil {
		return err
	}
	if err := p.check(nf); err != nil {
		return err
	}
	return Serve(p.Name+" serve", sf, func() (Net, error) { return p.open(nf) }, stderr)
}
