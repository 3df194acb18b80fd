package resnet

import (
	"fmt"
)

// Op is the kind of a layer.
type Op int

const (
	// OpConv is a convolution (no bias) followed by BatchNorm, an optional
	// residual addition and an optional ReLU:
	// out = relu?(bn(conv(in)) + residual?).
	OpConv Op = iota
	// OpMaxPool is a max pool with implicit -inf padding.
	OpMaxPool
	// OpGlobalAvgPool averages each channel plane to one value.
	OpGlobalAvgPool
	// OpFC is the fully-connected classifier: out = W·in + b.
	OpFC
	// OpShortcutA is the parameter-free option-A shortcut: subsample by
	// Stride, then zero-pad the channel axis by (out-in)/2 on each side.
	OpShortcutA
)

func (o Op) String() string {
	switch o {
	case OpConv:
		return "conv"
	case OpMaxPool:
		return "maxpool"
	case OpGlobalAvgPool:
		return "avgpool"
	case OpFC:
		return "fc"
	case OpShortcutA:
		return "shortcutA"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Shape is a C×H×W activation of one image.
type Shape struct{ C, H, W int }

// Len is C·H·W.
func (s Shape) Len() int { return s.C * s.H * s.W }

func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.C, s.H, s.W) }

// NoValue marks an absent value reference (Layer.Residual).
const NoValue = -1

// Layer is one step of a network. Layers read and write values: numbered
// activations, value 0 being the network input. Every value is written by
// exactly one layer, before any layer reads it.
type Layer struct {
	Name   string // checkpoint module path, e.g. "layer1.0.conv1"
	Op     Op
	Kernel int // square kernel side; 0 for global pooling and fc
	Stride int
	Pad    int

	In, Out           int // value indices
	InShape, OutShape Shape

	// Conv: tensor names of the weight and of the BatchNorm module
	// (BN+".weight", ".bias", ".running_mean", ".running_var").
	Weight, BN string
	Residual   int // value added after BN, or NoValue
	ReLU       bool

	// FC: Weight and Bias tensor names.
	Bias string
}

// MACs is the number of multiply-adds of a convolution or the classifier;
// pooling and shortcuts count zero, as in the paper's Table 1.
func (l *Layer) MACs() int64 {
	switch l.Op {
	case OpConv:
		return int64(l.OutShape.Len()) * int64(l.InShape.C*l.Kernel*l.Kernel)
	case OpFC:
		return int64(l.InShape.C) * int64(l.OutShape.C)
	}
	return 0
}

// TensorSpec is a named parameter tensor a network expects, in PyTorch layout
// (convolutions OIHW, the classifier [out, in]).
type TensorSpec struct {
	Name  string
	Shape []int
	// Trainable is false for BatchNorm's running statistics, which PyTorch
	// stores as buffers rather than parameters.
	Trainable bool
}

// Tensors lists the tensors this layer reads from a checkpoint.
func (l *Layer) Tensors() []TensorSpec {
	switch l.Op {
	case OpConv:
		c := l.OutShape.C
		return []TensorSpec{
			{l.Weight, []int{c, l.InShape.C, l.Kernel, l.Kernel}, true},
			{l.BN + ".weight", []int{c}, true},
			{l.BN + ".bias", []int{c}, true},
			{l.BN + ".running_mean", []int{c}, false},
			{l.BN + ".running_var", []int{c}, false},
		}
	case OpFC:
		return []TensorSpec{
			{l.Weight, []int{l.OutShape.C, l.InShape.C}, true},
			{l.Bias, []int{l.OutShape.C}, true},
		}
	}
	return nil
}

// Network is an architecture unrolled into its layer list.
type Network struct {
	Arch   Arch
	Values []Shape // Values[0] is the input
	Layers []Layer
	Output int // value holding the logits (shape Classes×1×1)
}

// Input is the shape of one input image.
func (n *Network) Input() Shape { return n.Values[0] }

// MACs sums the multiply-adds of every convolution and the classifier.
func (n *Network) MACs() int64 {
	var t int64
	for i := range n.Layers {
		t += n.Layers[i].MACs()
	}
	return t
}

// Tensors lists every tensor the network reads from a checkpoint, in layer order.
func (n *Network) Tensors() []TensorSpec {
	var ts []TensorSpec
	for i := range n.Layers {
		ts = append(ts, n.Layers[i].Tensors()...)
	}
	return ts
}

// Params counts trainable parameters, as torchvision's
// sum(p.numel() for p in model.parameters()) does.
func (n *Network) Params() int64 {
	var t int64
	for _, s := range n.Tensors() {
		if s.Trainable {
			t += int64(numel(s.Shape))
		}
	}
	return t
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// builder accumulates layers while Build walks an Arch.
type builder struct{ n *Network }

func (b *builder) value(s Shape) int {
	b.n.Values = append(b.n.Values, s)
	return len(b.n.Values) - 1
}

func convOut(size, k, stride, pad int) int { return (size+2*pad-k)/stride + 1 }

// conv appends conv+BN(+residual)(+ReLU) reading value in and returns the
// value it writes.
func (b *builder) conv(name, bn string, in, outC, k, stride int, residual int, relu bool) int {
	is := b.n.Values[in]
	pad := k / 2
	os := Shape{outC, convOut(is.H, k, stride, pad), convOut(is.W, k, stride, pad)}
	out := b.value(os)
	b.n.Layers = append(b.n.Layers, Layer{
		Name: name, Op: OpConv, Kernel: k, Stride: stride, Pad: pad,
		In: in, Out: out, InShape: is, OutShape: os,
		Weight: name + ".weight", BN: bn, Residual: residual, ReLU: relu,
	})
	return out
}

// shortcut returns the value a block adds to its last conv, or NoValue.
func (b *builder) shortcut(a Arch, prefix string, in, outC, stride int) int {
	is := b.n.Values[in]
	change := stride != 1 || is.C != outC
	switch {
	case a.Shortcut == NoShortcut:
		return NoValue
	case a.Shortcut == ShortcutC, a.Shortcut == ShortcutB && change:
		return b.conv(prefix+".downsample.0", prefix+".downsample.1", in, outC, 1, stride, NoValue, false)
	case a.Shortcut == ShortcutA && change:
		os := Shape{outC, convOut(is.H, 1, stride, 0), convOut(is.W, 1, stride, 0)}
		out := b.value(os)
		b.n.Layers = append(b.n.Layers, Layer{
			Name: prefix + ".shortcut", Op: OpShortcutA, Kernel: 1, Stride: stride,
			In: in, Out: out, InShape: is, OutShape: os, Residual: NoValue,
		})
		return out
	}
	return in
}

// Build unrolls an architecture into its layer list.
func Build(a Arch) (*Network, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	b := &builder{n: &Network{Arch: a}}
	x := b.value(Shape{3, a.InputH, a.InputW})
	if a.StemKernel == 7 {
		x = b.conv("conv1", "bn1", x, a.StemChannels, 7, 2, NoValue, true)
		is := b.n.Values[x]
		os := Shape{is.C, convOut(is.H, 3, 2, 1), convOut(is.W, 3, 2, 1)}
		out := b.value(os)
		b.n.Layers = append(b.n.Layers, Layer{
			Name: "maxpool", Op: OpMaxPool, Kernel: 3, Stride: 2, Pad: 1,
			In: x, Out: out, InShape: is, OutShape: os, Residual: NoValue,
		})
		x = out
	} else {
		x = b.conv("conv1", "bn1", x, a.StemChannels, a.StemKernel, 1, NoValue, true)
	}
	for s, nblocks := range a.Blocks {
		w := a.Widths[s]
		for i := 0; i < nblocks; i++ {
			stride := 1
			if i == 0 && s > 0 {
				stride = 2
			}
			p := fmt.Sprintf("layer%d.%d", s+1, i)
			if a.Block == Basic {
				sc := b.shortcut(a, p, x, w, stride)
				h := b.conv(p+".conv1", p+".bn1", x, w, 3, stride, NoValue, true)
				x = b.conv(p+".conv2", p+".bn2", h, w, 3, 1, sc, true)
				continue
			}
			s1, s3 := 1, stride // v1.5: stride on the 3x3
			if a.Variant == V1 {
				s1, s3 = stride, 1
			}
			sc := b.shortcut(a, p, x, 4*w, stride)
			h := b.conv(p+".conv1", p+".bn1", x, w, 1, s1, NoValue, true)
			h = b.conv(p+".conv2", p+".bn2", h, w, 3, s3, NoValue, true)
			x = b.conv(p+".conv3", p+".bn3", h, 4*w, 1, 1, sc, true)
		}
	}
	is := b.n.Values[x]
	pooled := b.value(Shape{is.C, 1, 1})
	b.n.Layers = append(b.n.Layers, Layer{
		Name: "avgpool", Op: OpGlobalAvgPool, In: x, Out: pooled,
		InShape: is, OutShape: Shape{is.C, 1, 1}, Residual: NoValue,
	})
	logits := b.value(Shape{a.Classes, 1, 1})
	b.n.Layers = append(b.n.Layers, Layer{
		Name: a.FCName, Op: OpFC, In: pooled, Out: logits,
		InShape: Shape{is.C, 1, 1}, OutShape: Shape{a.Classes, 1, 1},
		Weight: a.FCName + ".weight", Bias: a.FCName + ".bias", Residual: NoValue,
	})
	b.n.Output = logits
	return b.n, nil
}

func (a Arch) check() error {
	switch {
	case len(a.Blocks) == 0 || len(a.Blocks) != len(a.Widths):
		return fmt.Errorf("arch %q: %d stage block counts for %d widths", a.Name, len(a.Blocks), len(a.Widths))
	case a.StemKernel != 7 && a.StemKernel != 3:
		return fmt.Errorf("arch %q: stem kernel %d, want 7 (ImageNet) or 3 (CIFAR)", a.Name, a.StemKernel)
	case a.Classes < 1 || a.StemChannels < 1:
		return fmt.Errorf("arch %q: classes %d and stem channels %d must be positive", a.Name, a.Classes, a.StemChannels)
	case a.Classes > MaxClasses:
		return fmt.Errorf("arch %q: %d classes; at most %d", a.Name, a.Classes, MaxClasses)
	case a.FCName == "":
		return fmt.Errorf("arch %q: no classifier name", a.Name)
	}
	if err := a.checkInput(); err != nil {
		return err
	}
	prev := a.StemChannels
	for s, n := range a.Blocks {
		if n < 1 || a.Widths[s] < 1 {
			return fmt.Errorf("arch %q: stage %d has %d blocks of width %d", a.Name, s+1, n, a.Widths[s])
		}
		out := a.Widths[s]
		if a.Block == Bottleneck {
			out *= 4
		}
		if a.Shortcut == ShortcutA && out != prev && (out-prev)%2 != 0 {
			return fmt.Errorf("arch %q: option-A shortcut from %d to %d channels cannot pad evenly", a.Name, prev, out)
		}
		if a.Shortcut == ShortcutA && out < prev {
			return fmt.Errorf("arch %q: option-A shortcut cannot shrink %d to %d channels", a.Name, prev, out)
		}
		prev = out
	}
	return nil
}
