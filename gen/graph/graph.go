// Package graph generates, with Jennifer, the Go code of one network's
// package: model.go (constants, Model, New, LoadFile, Load when the weights
// are embedded, build with one statement per layer — each a Builder call
// that makes the layer's engine object — Forward and ForwardBatch, which run
// those layers in order on a worker pool (engine.Schedule), Close) and
// model_test.go (the kernels and the whole network against the float64
// reference, allocations, bad input, a benchmark and an example). The
// buffers are one table built in New from engine.PlanBuffers.
package graph

import (
	"bytes"
	"fmt"
	"strings"

	. "github.com/dave/jennifer/jen"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/gen/kernels"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/labels"
	"github.com/resnetgen/resnetgen/resnet/preprocess"
)

const (
	module         = "github.com/resnetgen/resnetgen"
	asmPath        = module + "/asm"
	enginePath     = module + "/engine"
	engineTestPath = module + "/engine/enginetest"
	resnetPath     = module + "/resnet"
	weightfilePath = module + "/resnet/weightfile"
	preprocessPath = module + "/resnet/preprocess"
	labelsPath     = module + "/resnet/labels"
	requirePath    = "github.com/stretchr/testify/require"
)

// Spec is one package to generate.
type Spec struct {
	Pkg string          // package name
	Net *resnet.Network // the network, at its input size and class count
	// Weights is the name of the embedded weights file next to the code
	// (engine.WriteFolded's format), "" if the weights are not embedded.
	Weights string
	// Command is how the package was generated, for its documentation.
	Command string
	// Calibration, if set, is the int8 activation scales (engine.Calibration
	// as JSON) measured when the package was generated: it is compiled in
	// and the package runs in int8 by default.
	Calibration []byte
	// Transform is the evaluation transform Preprocess applies; its
	// Height and Width must be the network's input.
	Transform preprocess.Transform
	// Labels names the classes (Labels[i] logit i), compiled in as a list;
	// LabelsSource says where they came from (a file's name), for the
	// documentation. Or LabelsFunc names the function of resnet/labels
	// that returns them ("ImageNet", "CIFAR10"). Neither: no names.
	Labels       []string
	LabelsSource string
	LabelsFunc   string
	// KernelsOf is, for this repository's family packages only, the
	// directory (relative to this package's) of a package whose kernels
	// this package's are, one by one: its tests then leave the kernels to
	// that package's TestKernels (enginetest.Package.KernelsOf). "" for
	// every other package, whose tests hold all its kernels to the
	// reference.
	KernelsOf string
}

// LabelsFuncs are the functions of resnet/labels Spec.LabelsFunc may name,
// with the classes each returns.
var LabelsFuncs = map[string]int{"ImageNet": 1000, "CIFAR10": 10}

// Emit returns model.go and model_test.go of the package.
func Emit(s Spec) (map[string][]byte, error) {
	n := len(s.Net.Layers)
	if n < 3 || s.Net.Layers[n-2].Op != resnet.OpGlobalAvgPool || s.Net.Layers[n-1].Op != resnet.OpFC {
		return nil, fmt.Errorf("%s: the network does not end in an average pool and a classifier", s.Net.Arch.Name)
	}
	for _, l := range s.Net.Layers {
		if l.Op == resnet.OpConv && (l.Pad != l.Kernel/2 || l.InShape.C*l.Kernel*l.Kernel == 0) {
			return nil, fmt.Errorf("%s: padding %d for a %dx%d kernel; engine pads K/2", l.Name, l.Pad, l.Kernel, l.Kernel)
		}
	}
	in := s.Net.Input()
	if err := s.Transform.Validate(); err != nil {
		return nil, err
	}
	if s.Transform.Height != in.H || s.Transform.Width != in.W {
		return nil, fmt.Errorf("%s: a transform to %dx%d for a %dx%d input", s.Net.Arch.Name, s.Transform.Height, s.Transform.Width, in.H, in.W)
	}
	switch n, ok := LabelsFuncs[s.LabelsFunc]; {
	case s.LabelsFunc != "" && (!ok || n != s.Net.Arch.Classes || s.Labels != nil):
		return nil, fmt.Errorf("%s: labels.%s() for %d classes (and %d names besides)", s.Net.Arch.Name, s.LabelsFunc, s.Net.Arch.Classes, len(s.Labels))
	case s.Labels != nil:
		if err := labels.Check(s.Labels, s.Net.Arch.Classes); err != nil {
			return nil, fmt.Errorf("%s: labels: %w", s.Net.Arch.Name, err)
		}
	}
	g := &gen{Spec: s, p: engine.PlanBuffers(s.Net)}
	files := map[string][]byte{}
	for name, f := range map[string]*File{"model.go": g.model(), "model_test.go": g.test()} {
		var b bytes.Buffer
		if err := f.Render(&b); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		files[name] = b.Bytes()
	}
	return files, nil
}

type gen struct {
	Spec
	p engine.BufferPlan
}

// Title describes a network in words, as its package documentation does.
func Title(net *resnet.Network) string {
	a := net.Arch
	depth := 2
	for _, b := range a.Blocks {
		depth += b * map[resnet.Block]int{resnet.Basic: 2, resnet.Bottleneck: 3}[a.Block]
	}
	var t string
	switch {
	case a.StemKernel == 3:
		t = fmt.Sprintf("the CIFAR-10 ResNet-%d (option-%v shortcuts)", depth, a.Shortcut)
	case a.Shortcut == resnet.NoShortcut:
		t = fmt.Sprintf("the plain-%d baseline (ResNet-%d without shortcuts)", depth, depth)
	case a.Block == resnet.Bottleneck && a.Variant == resnet.V1:
		t = fmt.Sprintf("ResNet-%d v1 (the paper: stride on the bottleneck's first 1x1)", depth)
	case a.Block == resnet.Bottleneck:
		t = fmt.Sprintf("ResNet-%d v1.5 (torchvision: stride on the bottleneck's 3x3)", depth)
	default:
		t = fmt.Sprintf("ResNet-%d", depth)
	}
	def, err := resnet.Lookup(a.Name)
	if err == nil && (def.Classes != a.Classes || def.InputH != a.InputH || def.InputW != a.InputW) {
		t += fmt.Sprintf(" with %d classes on %dx%d inputs", a.Classes, a.InputH, a.InputW)
	}
	return t
}

// labelsSource says where the class names come from, for the documentation.
func (g *gen) labelsSource() string {
	switch {
	case g.LabelsFunc == "ImageNet":
		return "ImageNet-1k's, in torchvision's order (labels.ImageNet)"
	case g.LabelsFunc == "CIFAR10":
		return "CIFAR-10's (labels.CIFAR10)"
	case g.LabelsSource != "":
		return "from " + g.LabelsSource
	}
	return "none"
}

// images emits what takes an image file to named classes: Transform,
// Preprocess, the class names and Classify.
func (g *gen) images(f *File) {
	t := g.Transform
	floats := func(v [3]float64) Code {
		return Index(Lit(3)).Float64().Values(Lit(v[0]), Lit(v[1]), Lit(v[2]))
	}
	f.Comment("Transform returns the evaluation transform Preprocess applies, torchvision's")
	f.Comment("")
	f.Comment("\t" + t.String())
	f.Comment("")
	f.Comment("(see preprocess.Transform; Resize 0: none).")
	f.Func().Id("Transform").Params().Qual(preprocessPath, "Transform").Block(
		Return(Qual(preprocessPath, "Transform").Values(
			Line().Id("Height").Op(":").Id("InputHeight"),
			Line().Id("Width").Op(":").Id("InputWidth"),
			Line().Id("Resize").Op(":").Lit(t.Resize),
			Line().Id("Mean").Op(":").Add(floats(t.Mean)),
			Line().Id("Std").Op(":").Add(floats(t.Std)),
			Line(),
		)),
	)
	f.Comment("Preprocess decodes a JPEG or PNG file and makes it this network's input: Transform, bit")
	f.Comment("for bit torchvision's for the files package preprocess decodes as Pillow does. A file that")
	f.Comment("is not such an image, is corrupt or too large is an error.")
	f.Func().Id("Preprocess").Params(Id("file").Index().Byte()).Params(Op("*").Index(Id("InputLen")).Float32(), Error()).Block(
		Id("x").Op(":=").New(Index(Id("InputLen")).Float32()),
		If(Err().Op(":=").Id("Transform").Call().Dot("File").Call(Id("x").Index(Op(":")), Id("file")), Err().Op("!=").Nil()).Block(Return(Nil(), Err())),
		Return(Id("x"), Nil()),
	)
	switch {
	case g.LabelsFunc != "":
		f.Comment("classNames names the classes, classNames[i] logit i: " + g.labelsSource() + ".")
		f.Var().Id("classNames").Op("=").Qual(labelsPath, g.LabelsFunc).Call()
	case g.Labels != nil:
		f.Comment("classNames names the classes, classNames[i] logit i: " + g.labelsSource() + ".")
		f.Var().Id("classNames").Op("=").Index().String().ValuesFunc(func(gr *Group) {
			for _, n := range g.Labels {
				gr.Line().Lit(n)
			}
			gr.Line()
		})
	default:
		f.Comment("classNames is nil: no class names were given (resnetgen -labels) and the network is")
		f.Comment("neither ImageNet's nor CIFAR-10's.")
		f.Var().Id("classNames").Index().String()
	}
	f.Comment("Labels returns the class names, Labels()[i] naming logit i (a copy), or nil if the package")
	f.Comment("has none.")
	f.Func().Id("Labels").Params().Index().String().Block(Return(Qual("slices", "Clone").Call(Id("classNames"))))
	f.Comment("Prediction is one of an image's most probable classes: its index, its name (\"\" without")
	f.Comment("Labels) and its probability.")
	f.Type().Id("Prediction").Op("=").Qual(labelsPath, "Prediction")
	f.Comment("Classify runs an image file through Preprocess and Forward and returns its k most probable")
	f.Comment("classes, best first, named by Labels, with their probabilities: the softmax of the logits,")
	f.Comment("computed in float64 (labels.Top). It allocates; a Model runs one Classify or Forward at a time.")
	f.Func().Params(Id("m").Op("*").Id("Model")).Id("Classify").Params(Id("file").Index().Byte(), Id("k").Int()).
		Params(Index().Id("Prediction"), Error()).Block(
		If(Id("k").Op("<").Lit(1).Op("||").Id("k").Op(">").Id("Classes")).Block(
			Return(Nil(), Qual("fmt", "Errorf").Call(Lit(g.Pkg+": the top %d classes of %d: want 1 to %d"), Id("k"), Id("Classes"), Id("Classes"))),
		),
		List(Id("x"), Err()).Op(":=").Id("Preprocess").Call(Id("file")),
		If(Err().Op("!=").Nil()).Block(Return(Nil(), Err())),
		Var().Id("logits").Index(Id("Classes")).Float32(),
		Id("m").Dot("Forward").Call(Id("x"), Op("&").Id("logits")),
		Return(Qual(labelsPath, "Top").Call(Id("logits").Index(Op(":")), Id("k"), Id("classNames"))),
	)
}

// imagesTest emits the tests of Transform, Preprocess, Labels and Classify.
func (g *gen) imagesTest(f *File) {
	req := func(name string, args ...Code) *Statement {
		return Qual(requirePath, name).Call(append([]Code{Id("t")}, args...)...)
	}
	f.Comment("testImage is a 301×203 PNG of a pattern: odd sizes, so that Resize and CenterCrop both work.")
	f.Func().Id("testImage").Params(Id("t").Op("*").Qual("testing", "T")).Index().Byte().Block(
		Id("img").Op(":=").Qual("image", "NewNRGBA").Call(Qual("image", "Rect").Call(Lit(0), Lit(0), Lit(301), Lit(203))),
		For(Id("i").Op(":=").Range().Id("img").Dot("Pix")).Block(
			Id("img").Dot("Pix").Index(Id("i")).Op("=").Uint8().Call(Id("i").Op("*").Lit(7).Op("+").Id("i").Op("/").Lit(1013)),
		),
		Var().Id("b").Qual("bytes", "Buffer"),
		req("NoError", Qual("image/png", "Encode").Call(Op("&").Id("b"), Id("img"))),
		Return(Id("b").Dot("Bytes").Call()),
	)
	f.Comment("Transform fits the input and is valid, Preprocess applies it, and a file that is not an")
	f.Comment("image is an error; the class names keep the rules of a labels file, and Labels is a copy.")
	f.Func().Id("TestPreprocess").Params(Id("t").Op("*").Qual("testing", "T")).Block(
		Id("tf").Op(":=").Id("Transform").Call(),
		req("NoError", Id("tf").Dot("Validate").Call()),
		req("Equal", Id("InputLen"), Id("tf").Dot("Len").Call()),
		Id("file").Op(":=").Id("testImage").Call(Id("t")),
		List(Id("x"), Err()).Op(":=").Id("Preprocess").Call(Id("file")),
		req("NoError", Err()),
		Id("want").Op(":=").Make(Index().Float32(), Id("InputLen")),
		req("NoError", Id("tf").Dot("File").Call(Id("want"), Id("file"))),
		req("Equal", Id("want"), Id("x").Index(Op(":"))),
		List(Id("_"), Err()).Op("=").Id("Preprocess").Call(Index().Byte().Parens(Lit("GIF89a"))),
		req("ErrorContains", Err(), Lit("not a JPEG or PNG image")),
		If(Id("names").Op(":=").Id("Labels").Call(), Id("names").Op("!=").Nil()).Block(
			req("NoError", Qual(labelsPath, "Check").Call(Id("names"), Id("Classes"))),
			Id("names").Index(Lit(0)).Op("=").Lit("changed"),
			req("NotEqual", Lit("changed"), Id("Labels").Call().Index(Lit(0)), Lit("Labels returns a copy")),
		),
	)
	var model []Code
	switch {
	case g.Weights != "":
		model = append(model, List(Id("m"), Err()).Op(":=").Id("Load").Call())
	default:
		opts := []Code{Qual(resnetPath, "RandomWeights").Call(Id("net"), Lit(1))}
		if g.Calibration != nil { // the calibration is the real weights': run random ones in float32
			opts = append(opts, Qual(enginePath, "WithPrecision").Call(Qual(enginePath, "FP32")))
		}
		model = append(model,
			List(Id("net"), Err()).Op(":=").Id("Network").Call(),
			req("NoError", Err()),
			List(Id("m"), Err()).Op(":=").Id("New").Call(opts...),
		)
	}
	f.Comment("Classify is Preprocess, Forward and labels.Top; a bad file or k is an error.")
	f.Func().Id("TestClassify").Params(Id("t").Op("*").Qual("testing", "T")).Block(append(model,
		req("NoError", Err()),
		Defer().Id("m").Dot("Close").Call(),
		Id("file").Op(":=").Id("testImage").Call(Id("t")),
		Const().Id("k").Op("=").Id("min").Call(Lit(3), Id("Classes")),
		List(Id("got"), Err()).Op(":=").Id("m").Dot("Classify").Call(Id("file"), Id("k")),
		req("NoError", Err()),
		List(Id("x"), Err()).Op(":=").Id("Preprocess").Call(Id("file")),
		req("NoError", Err()),
		Var().Id("logits").Index(Id("Classes")).Float32(),
		Id("m").Dot("Forward").Call(Id("x"), Op("&").Id("logits")),
		List(Id("want"), Err()).Op(":=").Qual(labelsPath, "Top").Call(Id("logits").Index(Op(":")), Id("k"), Id("Labels").Call()),
		req("NoError", Err()),
		req("Equal", Id("want"), Id("got")),
		List(Id("_"), Err()).Op("=").Id("m").Dot("Classify").Call(Index().Byte().Parens(Lit("not an image")), Lit(1)),
		req("ErrorContains", Err(), Lit("not a JPEG or PNG image")),
		For(List(Id("_"), Id("bad")).Op(":=").Range().Index().Int().Values(Lit(0), Id("Classes").Op("+").Lit(1))).Block(
			List(Id("_"), Err()).Op("=").Id("m").Dot("Classify").Call(Id("file"), Id("bad")),
			req("ErrorContains", Err(), Lit("want 1 to")),
		),
	)...)
}

// slot is the buffer-table entry of value v: its buffers, one per image.
func (g *gen) slot(v int) *Statement { return Id("b").Index(Lit(g.p.Slot[v])) }

func describe(l resnet.Layer) string {
	switch l.Op {
	case resnet.OpConv:
		s := fmt.Sprintf("%s: conv %dx%d/%d %d→%d, %dx%d→%dx%d", l.Name, l.Kernel, l.Kernel, l.Stride, l.InShape.C, l.OutShape.C,
			l.InShape.H, l.InShape.W, l.OutShape.H, l.OutShape.W)
		if l.Residual != resnet.NoValue {
			s += ", + shortcut"
		}
		if l.ReLU {
			s += ", ReLU"
		}
		return s
	case resnet.OpMaxPool:
		return fmt.Sprintf("%s: max pool 3x3/2, %dx%d→%dx%d", l.Name, l.InShape.H, l.InShape.W, l.OutShape.H, l.OutShape.W)
	case resnet.OpShortcutA:
		return fmt.Sprintf("%s: option-A shortcut /%d, %d→%d channels", l.Name, l.Stride, l.InShape.C, l.OutShape.C)
	case resnet.OpGlobalAvgPool:
		return fmt.Sprintf("%s: global average pool, %dx%dx%d→%d", l.Name, l.InShape.H, l.InShape.W, l.InShape.C, l.OutShape.C)
	case resnet.OpFC:
		return fmt.Sprintf("%s: classifier %d→%d", l.Name, l.InShape.C, l.OutShape.C)
	}
	return l.Name
}

// layerField is the Model field of the layer with index i among those of
// its kind: conv[i], shortcut[i], maxpool[i].
type layerField struct {
	field string
	index int
}

func (g *gen) model() *File {
	net, p := g.Net, g.p
	a := net.Arch
	f := NewFile(g.Pkg)
	f.HeaderComment(kernels.Header)
	in := net.Input()
	title := Title(net)
	// The example's lines, their comments in one column.
	ex := func(code, comment string) string { return fmt.Sprintf("%-40s // %s", code, comment) }
	load := ex(fmt.Sprintf("m, err := %s.LoadFile(\"weights.pth\")", g.Pkg), ".pth, .onnx or .safetensors, validated for this network")
	if g.Weights != "" {
		load = ex(fmt.Sprintf("m, err := %s.Load()", g.Pkg), "the weights compiled into this package")
	}
	named := "Labels names the classes: " + g.labelsSource() + "."
	if g.Labels == nil && g.LabelsFunc == "" {
		named = "The package has no class names (Labels returns nil; Classify's predictions carry the class index only)."
	}
	f.PackageComment(fmt.Sprintf(`Package %s is %s, generated by resnetgen (%s).

Classify takes an image file (JPEG or PNG) to its most probable classes. Preprocess makes the
file this network's input as torchvision's evaluation transform does, bit for bit for the files
package preprocess decodes as Pillow does (Transform: %s).
Forward runs one %dx%dx%d image (CHW, normalised as the network was trained) through
%d layers to %d logits, allocating nothing; each layer is split across the workers of a
pool made by New. %s

	%s
	defer m.Close()
	%s
	fmt.Println(top[0].Label, top[0].Probability)

	%s
	var logits [%s.Classes]float32
	m.Forward(x, &logits)

The package imports no serving code: resnetgen -main DIR writes a command that classifies image
files and serves the network over the Open Inference Protocol.

Activation memory: %d buffers, %d bytes. Kernels, generated for this network's shapes:
AVX-512 and AVX2 on amd64, NEON on arm64; the portable Go kernels everywhere else (and with
-tags purego).`,
		g.Pkg, title, g.Command, g.Transform, in.C, in.H, in.W, len(net.Layers), a.Classes, named, load,
		ex(fmt.Sprintf("top, err := m.Classify(file, %d)", min(5, a.Classes)), "file: a JPEG or PNG, as bytes"),
		ex(fmt.Sprintf("x, err := %s.Preprocess(file)", g.Pkg), fmt.Sprintf("*[%s.InputLen]float32", g.Pkg)),
		g.Pkg, len(p.Slots), 4*p.Floats()))

	f.Const().Defs(
		Comment("Arch is the resnet architecture this package was generated from."),
		Id("Arch").Op("=").Lit(a.Name),
		Comment("InputChannels, InputHeight, InputWidth: one CHW image is InputLen floats."),
		Id("InputChannels").Op("=").Lit(in.C),
		Id("InputHeight").Op("=").Lit(in.H),
		Id("InputWidth").Op("=").Lit(in.W),
		Id("InputLen").Op("=").Id("InputChannels").Op("*").Id("InputHeight").Op("*").Id("InputWidth"),
		Comment("Classes is the number of logits."),
		Id("Classes").Op("=").Lit(a.Classes),
		Comment("MACs is the multiply-adds of one image (convolutions and classifier)."),
		Id("MACs").Op("=").Lit(net.MACs()),
		Comment("ActivationBytes is the memory of the activation buffers, halos included."),
		Id("ActivationBytes").Op("=").Lit(4*p.Floats()),
		Comment("layers is the length of the layer list this package was generated from."),
		Id("layers").Op("=").Lit(len(net.Layers)),
	)

	// Fields: one array per layer kind.
	count := map[resnet.Op]int{}
	fieldOf := map[int]layerField{}
	names := map[resnet.Op]string{resnet.OpConv: "conv", resnet.OpMaxPool: "maxpool", resnet.OpShortcutA: "shortcut"}
	for i, l := range p.Body {
		fieldOf[i] = layerField{names[l.Op], count[l.Op]}
		count[l.Op]++
	}
	fields := []Code{
		Id("pool").Op("*").Qual(enginePath, "Pool"),
		Id("buf").Index().Index().Qual(asmPath, "Buffer").Comment("every activation, one table: [slot][image]"),
		Id("batch").Qual(enginePath, "Batch").Comment("images the layers run on next"),
		Id("capacity").Int().Comment("images ForwardBatch takes at most"),
		Id("input").Qual(enginePath, "Input"),
		Id("conv").Index(Lit(count[resnet.OpConv])).Qual(enginePath, "Conv"),
	}
	if count[resnet.OpMaxPool] > 0 {
		fields = append(fields, Id("maxpool").Index(Lit(count[resnet.OpMaxPool])).Qual(enginePath, "MaxPool"))
	}
	if count[resnet.OpShortcutA] > 0 {
		fields = append(fields, Id("shortcut").Index(Lit(count[resnet.OpShortcutA])).Qual(enginePath, "Shortcut"))
	}
	fields = append(fields,
		Id("avgpool").Qual(enginePath, "AvgPool"),
		Id("fc").Qual(enginePath, "FC"),
		Id("layers").Index().Qual(enginePath, "Named"),
		Id("sched").Op("*").Qual(enginePath, "Schedule").Comment("runs the layers in order (a batch's first stages a group of images at a time)"),
	)
	f.Comment("Model is " + title + " with its weights packed for one tier, its buffers and its workers.")
	f.Comment("A Model runs one Forward at a time; use one Model per goroutine.")
	f.Type().Id("Model").Struct(fields...)

	f.Comment("Network returns the layer list this package was generated from (an error if package resnet")
	f.Comment("now builds another one: then generate the package again).")
	f.Func().Id("Network").Params().Params(Op("*").Qual(resnetPath, "Network"), Error()).Block(
		Return(Qual(enginePath, "Network").Call(Id("Arch"), Id("InputHeight"), Id("InputWidth"), Id("Classes"), Id("layers"), Id("MACs"))),
	)

	f.Comment("New validates w against the network (every tensor's name, shape and finite values), folds")
	f.Comment("BatchNorm into the convolutions, packs the weights for the tier, allocates every buffer and")
	f.Comment("starts the workers.")
	f.Func().Id("New").Params(Id("w").Op("*").Qual(resnetPath, "Weights"), Id("opts").Op("...").Qual(enginePath, "Option")).
		Params(Op("*").Id("Model"), Error()).Block(
		List(Id("net"), Err()).Op(":=").Id("Network").Call(),
		If(Err().Op("!=").Nil()).Block(Return(Nil(), Err())),
		List(Id("f"), Err()).Op(":=").Qual(enginePath, "Fold").Call(Id("net"), Id("w")),
		If(Err().Op("!=").Nil()).Block(Return(Nil(), Err())),
		Return(Id("build").Call(Id("f"), Id("opts"))),
	)

	f.Comment("LoadFile reads the weights at path (a PyTorch checkpoint, safetensors or an ONNX model,")
	f.Comment("recognised by content) for this network and returns the Model (see New).")
	f.Func().Id("LoadFile").Params(Id("path").String(), Id("opts").Op("...").Qual(enginePath, "Option")).
		Params(Op("*").Id("Model"), Error()).Block(
		List(Id("net"), Err()).Op(":=").Id("Network").Call(),
		If(Err().Op("!=").Nil()).Block(Return(Nil(), Err())),
		List(Id("w"), Err()).Op(":=").Qual(weightfilePath, "Load").Call(Id("path"), Id("net")),
		If(Err().Op("!=").Nil()).Block(Return(Nil(), Err())),
		Return(Id("New").Call(Id("w"), Id("opts").Op("..."))),
	)

	if g.Weights != "" {
		f.Anon("embed")
		f.Comment("//go:embed " + g.Weights)
		f.Var().Id("weights").String()
		f.Comment("Load returns the Model with the weights compiled into this package (BatchNorm already")
		f.Comment("folded, checksummed): no file is needed at run time.")
		f.Func().Id("Load").Params(Id("opts").Op("...").Qual(enginePath, "Option")).Params(Op("*").Id("Model"), Error()).Block(
			List(Id("net"), Err()).Op(":=").Id("Network").Call(),
			If(Err().Op("!=").Nil()).Block(Return(Nil(), Err())),
			List(Id("f"), Err()).Op(":=").Qual(enginePath, "ReadFolded").Call(Id("weights"), Id("net")),
			If(Err().Op("!=").Nil()).Block(Return(Nil(), Err())),
			Return(Id("build").Call(Id("f"), Id("opts"))),
		)
	}

	g.images(f)

	// build: the buffer table, then one builder call per layer.
	var body []Code
	if g.Calibration != nil {
		f.Comment("calibrationJSON is the int8 activation scales measured when this package was generated.")
		f.Const().Id("calibrationJSON").Op("=").Lit(string(g.Calibration))
		f.Comment("Calibration returns the int8 activation scales compiled into this package (resnetgen -calibrate),")
		f.Comment("measured on the weights whose SHA-256 it records: New runs in int8 with them unless told")
		f.Comment("engine.WithPrecision(engine.FP32), and refuses other weights in int8.")
		f.Func().Id("Calibration").Params().Params(Op("*").Qual(enginePath, "Calibration"), Error()).Block(
			Return(Qual(enginePath, "ParseCalibration").Call(Index().Byte().Parens(Id("calibrationJSON")))),
		)
		body = append(body,
			List(Id("c"), Err()).Op(":=").Id("Calibration").Call(),
			If(Err().Op("!=").Nil()).Block(Return(Nil(), Err())),
			Id("opts").Op("=").Append(Index().Qual(enginePath, "Option").Values(Qual(enginePath, "WithInt8").Call(Id("c"))), Id("opts").Op("...")),
		)
	}
	body = append(body,
		List(Id("cfg"), Err()).Op(":=").Qual(enginePath, "NewConfig").Call(Id("opts").Op("...")),
		If(Err().Op("!=").Nil()).Block(Return(Nil(), Err())),
		Id("m").Op(":=").Op("&").Id("Model").Values(Dict{Id("capacity"): Id("cfg").Dot("Batch")}),
	)
	var geoms []Code
	for _, ge := range p.Slots {
		geoms = append(geoms, Line().Values(Lit(ge[0]), Lit(ge[1]), Lit(ge[2]), Lit(ge[3])))
	}
	body = append(body,
		Comment("H, W, C, halo of each slot"),
		Id("m").Dot("buf").Op("=").Qual(enginePath, "NewBuffers").Call(Id("cfg").Dot("Batch"), Index().Qual(enginePath, "Geometry").Values(append(geoms, Line())...)),
		Id("b").Op(":=").Id("m").Dot("buf"),
		Id("l").Op(":=").Qual(enginePath, "NewBuilder").Call(Op("&").Id("kernels"), Id("f"), Id("cfg"), Op("&").Id("m").Dot("batch")),
		Id("l").Dot("Input").Call(Op("&").Id("m").Dot("input"), g.slot(0)),
	)
	for i, l := range p.Body {
		lf := fieldOf[i]
		dst := Op("&").Id("m").Dot(lf.field).Index(Lit(lf.index))
		switch l.Op {
		case resnet.OpConv:
			res := Code(Nil())
			if l.Residual != resnet.NoValue {
				res = g.slot(l.Residual)
			}
			body = append(body, Id("l").Dot("Conv").Call(dst, Lit(l.Name), Lit(l.Stride), g.slot(l.In), g.slot(l.Out), res, Lit(l.ReLU)).Comment(describe(l)))
		case resnet.OpMaxPool:
			body = append(body, Id("l").Dot("MaxPool").Call(dst, Lit(l.Name), g.slot(l.In), g.slot(l.Out)).Comment(describe(l)))
		case resnet.OpShortcutA:
			body = append(body, Id("l").Dot("Shortcut").Call(dst, Lit(l.Name), Lit(l.Stride), g.slot(l.In), g.slot(l.Out)).Comment(describe(l)))
		default:
			panic(fmt.Sprintf("%s: no builder call for %v", l.Name, l.Op))
		}
	}
	body = append(body,
		Id("l").Dot("Head").Call(Op("&").Id("m").Dot("avgpool"), Op("&").Id("m").Dot("fc"), Lit(p.FC.Name), g.slot(p.Head.In), Id("Classes")).Comment(describe(p.Head)+"; "+describe(p.FC)),
		If(Err().Op(":=").Id("l").Dot("Err").Call(), Err().Op("!=").Nil()).Block(Return(Nil(), Err())),
		Id("m").Dot("layers").Op("=").Id("l").Dot("Layers").Call(),
		Id("m").Dot("pool").Op("=").Qual(enginePath, "NewPool").Call(Id("cfg").Dot("Workers")),
		Id("m").Dot("sched").Op("=").Qual(enginePath, "NewSchedule").Call(Id("m").Dot("pool"), Id("m").Dot("layers"), Op("&").Id("m").Dot("batch")),
		Return(Id("m"), Nil()),
	)
	f.Comment("build makes the Model from folded weights: the buffer table (NHWC, zero halos as wide as")
	f.Comment("their readers' padding, shared by values of one geometry whose lives do not overlap; a layer")
	f.Comment("that is the last to read its residual writes its output in place of it), then every layer")
	f.Comment("in the order Forward runs them, each checked once.")
	f.Func().Id("build").Params(Id("f").Op("*").Qual(enginePath, "Folded"), Id("opts").Index().Qual(enginePath, "Option")).
		Params(Op("*").Id("Model"), Error()).Block(body...)

	f.Comment("Forward computes the logits of one CHW image. It allocates nothing. A Model runs one")
	f.Comment("Forward at a time.")
	f.Func().Params(Id("m").Op("*").Id("Model")).Id("Forward").Params(Id("in").Op("*").Index(Id("InputLen")).Float32(), Id("out").Op("*").Index(Id("Classes")).Float32()).Block(
		Id("m").Dot("input").Dot("Set").Call(Id("in").Index(Op(":"))),
		Id("m").Dot("sched").Dot("Run").Call(Lit(1)),
		Id("m").Dot("fc").Dot("Logits").Call(Id("out").Index(Op(":"))),
		Id("m").Dot("input").Dot("Set").Call(Nil()),
	)

	f.Comment("ForwardBatch computes the logits of n = len(in)/InputLen images (CHW, one after the other),")
	f.Comment("n at most the batch set at New; out holds n·Classes logits. The first stages, whose activations")
	f.Comment("outweigh their weights, run a group of images at a time (one per worker) so that their maps")
	f.Comment("stay in cache; every later layer runs on the whole batch before the next, so the deep layers")
	f.Comment("read their weights once per batch (engine.Schedule). The logits are those Forward gives for")
	f.Comment("each image alone. It allocates nothing.")
	f.Func().Params(Id("m").Op("*").Id("Model")).Id("ForwardBatch").Params(Id("in"), Id("out").Index().Float32()).Error().Block(
		Id("n").Op(":=").Len(Id("in")).Op("/").Id("InputLen"),
		If(Len(Id("in")).Op("!=").Id("n").Op("*").Id("InputLen").Op("||").Len(Id("out")).Op("!=").Id("n").Op("*").Id("Classes").Op("||").Id("n").Op(">").Id("m").Dot("capacity")).Block(
			Return(Qual("fmt", "Errorf").Call(Lit(g.Pkg+": batch of %d input and %d output floats; want n·%d and n·%d with n ≤ %d"),
				Len(Id("in")), Len(Id("out")), Id("InputLen"), Id("Classes"), Id("m").Dot("capacity"))),
		),
		If(Id("n").Op("==").Lit(0)).Block(Return(Nil())),
		Id("m").Dot("input").Dot("Set").Call(Id("in")),
		Id("m").Dot("sched").Dot("Run").Call(Id("n")),
		Id("m").Dot("fc").Dot("Logits").Call(Id("out")),
		Id("m").Dot("input").Dot("Set").Call(Nil()),
		Return(Nil()),
	)
	f.Comment("Layers lists the layers in the order Forward runs them, with their kernels and MACs.")
	f.Func().Params(Id("m").Op("*").Id("Model")).Id("Layers").Params().Index().Qual(enginePath, "Named").Block(Return(Id("m").Dot("layers")))
	f.Comment("Trace makes Forward report each layer's wall time to f, by its index in Layers (nil: off);")
	f.Comment("ForwardBatch reports a layer it runs a group of images at a time once per group. For")
	f.Comment("profiling; call it between Forwards.")
	f.Func().Params(Id("m").Op("*").Id("Model")).Id("Trace").Params(Id("f").Func().Params(Id("layer").Int(), Id("d").Qual("time", "Duration"))).Block(
		Id("m").Dot("pool").Dot("SetTrace").Call(Id("f")))
	f.Comment("Workers is the number of goroutines each layer is split across.")
	f.Func().Params(Id("m").Op("*").Id("Model")).Id("Workers").Params().Int().Block(Return(Id("m").Dot("pool").Dot("Workers").Call()))
	f.Comment("Close stops the workers; the Model must not be used afterwards.")
	f.Func().Params(Id("m").Op("*").Id("Model")).Id("Close").Params().Block(Id("m").Dot("pool").Dot("Close").Call())
	f.Comment("Kernels is the table of this package's specialised kernels (empty in builds without SIMD).")
	f.Func().Id("Kernels").Params().Op("*").Qual(asmPath, "KernelSet").Block(Return(Op("&").Id("kernels")))
	return f
}

func (g *gen) test() *File {
	f := NewFile(g.Pkg)
	f.HeaderComment(kernels.Header)
	fields := Dict{
		Id("Network"): Id("Network"),
		Id("New"): Func().Params(Id("w").Op("*").Qual(resnetPath, "Weights"), Id("opts").Op("...").Qual(enginePath, "Option")).
			Params(Qual(engineTestPath, "Model"), Error()).Block(Return(Id("New").Call(Id("w"), Id("opts").Op("...")))),
		Id("Forward"): Func().Params(Id("m").Qual(engineTestPath, "Model"), List(Id("in"), Id("out")).Index().Float32()).Block(
			Id("m").Assert(Op("*").Id("Model")).Dot("Forward").Call(
				Parens(Op("*").Index(Id("InputLen")).Float32()).Call(Id("in")),
				Parens(Op("*").Index(Id("Classes")).Float32()).Call(Id("out")))),
		Id("Kernels"): Op("&").Id("kernels"),
	}
	if g.KernelsOf != "" {
		fields[Id("KernelsOf")] = Lit(g.KernelsOf)
	}
	pkgFn := Func().Id("pkg").Params().Qual(engineTestPath, "Package").Block(
		Return(Qual(engineTestPath, "Package").Values(fields)),
	)
	f.Comment("pkg describes this package to enginetest, which holds it to the float64 reference.")
	f.Add(pkgFn)
	if g.KernelsOf != "" {
		f.Comment(fmt.Sprintf("Each kernel of this package is %s's, whose TestKernels holds them to the float64", g.KernelsOf))
		f.Comment("reference on every tier: this test proves they are the same.")
	} else {
		f.Comment("Every kernel of this package, on every tier this machine has, against the float64")
		f.Comment("reference; buffers ending at unmapped pages; RunPart splits.")
	}
	f.Func().Id("TestKernels").Params(Id("t").Op("*").Qual("testing", "T")).Block(Qual(engineTestPath, "Kernels").Call(Id("t"), Id("pkg").Call()))
	if g.KernelsOf != "" {
		f.Comment("The whole network against the float64 reference on the best tier, a second input through")
		f.Comment("the same buffers, 1 and 2 workers, ForwardBatch, and no allocation.")
	} else {
		f.Comment("The whole network against the float64 reference on every tier, a second input through the")
		f.Comment("same buffers, 1 and 2 workers, ForwardBatch, and no allocation.")
	}
	f.Func().Id("TestForward").Params(Id("t").Op("*").Qual("testing", "T")).Block(Qual(engineTestPath, "Forward").Call(Id("t"), Id("pkg").Call()))
	f.Comment("Wrong weights, options and batches are errors that say what is wrong.")
	f.Func().Id("TestBadInput").Params(Id("t").Op("*").Qual("testing", "T")).Block(Qual(engineTestPath, "BadInput").Call(Id("t"), Id("pkg").Call()))
	if g.Weights != "" {
		f.Comment("The embedded weights load and give the same logits as the weights they were made from.")
		f.Func().Id("TestLoadEmbedded").Params(Id("t").Op("*").Qual("testing", "T")).Block(
			List(Id("m"), Err()).Op(":=").Id("Load").Call(),
			If(Err().Op("!=").Nil()).Block(Id("t").Dot("Fatal").Call(Err())),
			Defer().Id("m").Dot("Close").Call(),
			Qual(engineTestPath, "Runs").Call(Id("t"), Id("pkg").Call(), Id("m")),
		)
	}
	g.imagesTest(f)
	f.Comment("BenchmarkForward reports the latency of one image and the fraction of the machine's FMA")
	f.Comment("peak it reaches: go test -bench Forward -run '^$'.")
	f.Func().Id("BenchmarkForward").Params(Id("b").Op("*").Qual("testing", "B")).Block(Qual(engineTestPath, "Benchmark").Call(Id("b"), Id("pkg").Call()))

	ex := []Code{}
	if g.Weights != "" {
		ex = append(ex, List(Id("m"), Err()).Op(":=").Id("Load").Call())
	} else {
		ex = append(ex,
			List(Id("net"), Err()).Op(":=").Id("Network").Call(),
			If(Err().Op("!=").Nil()).Block(Panic(Err())),
			Id("w").Op(":=").Qual(resnetPath, "RandomWeights").Call(Id("net"), Lit(1)).Comment(fmt.Sprintf("or %s.LoadFile(\"weights.pth\")", g.Pkg)),
			List(Id("m"), Err()).Op(":=").Id("New").Call(Id("w")),
		)
	}
	ex = append(ex,
		If(Err().Op("!=").Nil()).Block(Panic(Err())),
		Defer().Id("m").Dot("Close").Call(),
		Var().Id("image").Index(Id("InputLen")).Float32().Comment("a normalised CHW image"),
		Var().Id("logits").Index(Id("Classes")).Float32(),
		Id("m").Dot("Forward").Call(Op("&").Id("image"), Op("&").Id("logits")),
		Qual("fmt", "Println").Call(Len(Id("logits")), Lit("logits")),
		Comment(fmt.Sprintf("Output: %d logits", g.Net.Arch.Classes)),
	)
	f.Func().Id("Example").Params().Block(ex...)
	return f
}

// Entry is one package of a registry.
type Entry struct {
	Path string // import path
	Arch string
}

// Registry returns the source of a package that lists generated packages by
// architecture name, for commands and benchmarks that pick one at run time.
func Registry(importPath string, entries []Entry) ([]byte, error) {
	name := importPath[strings.LastIndex(importPath, "/")+1:]
	f := NewFilePathName(importPath, name)
	f.HeaderComment(kernels.Header)
	f.PackageComment(fmt.Sprintf("Package %s lists generated networks by their resnet architecture name, for\ncommands and benchmarks that choose a network at run time.", name))
	f.Comment("Net is what every generated Model provides besides its typed Forward.")
	f.Type().Id("Net").Interface(
		Id("ForwardBatch").Params(Id("in"), Id("out").Index().Float32()).Error(),
		Id("Layers").Params().Index().Qual(enginePath, "Named"),
		Id("Trace").Params(Func().Params(Int(), Qual("time", "Duration"))),
		Id("Workers").Params().Int(),
		Id("Close").Params(),
	)
	f.Comment("Info describes a generated network.")
	f.Type().Id("Info").Struct(
		Id("Arch").String(),
		List(Id("InputHeight"), Id("InputWidth"), Id("InputLen")).Int(),
		Id("Classes").Int(),
		Id("MACs").Int64(),
		Id("ActivationBytes").Int(),
		Id("Network").Func().Params().Params(Op("*").Qual(resnetPath, "Network"), Error()),
		Id("New").Func().Params(Op("*").Qual(resnetPath, "Weights"), Op("...").Qual(enginePath, "Option")).Params(Id("Net"), Error()),
		Id("Kernels").Op("*").Qual(asmPath, "KernelSet"),
	)
	var items []Code
	var archs []string
	for _, e := range entries {
		archs = append(archs, e.Arch)
		items = append(items, Values(Dict{
			Id("Arch"):            Qual(e.Path, "Arch"),
			Id("InputHeight"):     Qual(e.Path, "InputHeight"),
			Id("InputWidth"):      Qual(e.Path, "InputWidth"),
			Id("InputLen"):        Qual(e.Path, "InputLen"),
			Id("Classes"):         Qual(e.Path, "Classes"),
			Id("MACs"):            Qual(e.Path, "MACs"),
			Id("ActivationBytes"): Qual(e.Path, "ActivationBytes"),
			Id("Network"):         Qual(e.Path, "Network"),
			Id("New"): Func().Params(Id("w").Op("*").Qual(resnetPath, "Weights"), Id("opts").Op("...").Qual(enginePath, "Option")).Params(Id("Net"), Error()).Block(
				List(Id("m"), Err()).Op(":=").Qual(e.Path, "New").Call(Id("w"), Id("opts").Op("...")),
				If(Err().Op("!=").Nil()).Block(Return(Nil(), Err())),
				Return(Id("m"), Nil()),
			),
			Id("Kernels"): Qual(e.Path, "Kernels").Call(),
		}))
	}
	f.Comment("Networks lists every generated network.")
	f.Var().Id("Networks").Op("=").Index().Id("Info").Values(items...)
	f.Comment("Lookup returns the generated network of an architecture name (see resnet.Names).")
	f.Func().Id("Lookup").Params(Id("arch").String()).Params(Id("Info"), Error()).Block(
		For(List(Id("_"), Id("n")).Op(":=").Range().Id("Networks")).Block(
			If(Id("n").Dot("Arch").Op("==").Id("arch")).Block(Return(Id("n"), Nil())),
		),
		Return(Id("Info").Values(), Qual("fmt", "Errorf").Call(Lit("no generated network for %q (generated: "+strings.Join(archs, ", ")+"; generate your own with resnetgen)"), Id("arch"))),
	)
	var b bytes.Buffer
	if err := f.Render(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
