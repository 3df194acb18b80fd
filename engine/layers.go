package engine

import (
	"fmt"

	"github.com/resnetgen/resnetgen/asm"
)

// Layer is one step of a network: Check validates its buffers and weights
// once, when the network is built; RunPart then computes a part of it with
// no checks and no allocation (see Step).
type Layer interface {
	Step
	Check() error
}

// Conv is a convolution with its BatchNorm folded in, an optional residual
// added, and an optional ReLU: Out = relu?(conv(In) + Bias + Res?).
type Conv struct {
	Name         string
	K            *asm.ConvKernel
	In, Out      asm.Buffer
	Res          *asm.Buffer // nil: no residual
	Packed, Bias []float32
	ReLU         bool
}

// Check reports whether the kernel accepts the buffers and weights.
func (c *Conv) Check() error { return c.K.Check(c.In, c.Out, c.Res, c.Packed, c.Bias) }

// RunPart computes part of parts of the output (see asm.ConvKernel.RunPart).
func (c *Conv) RunPart(part, parts int) {
	c.K.RunPart(c.In, c.Out, c.Res, c.Packed, c.Bias, c.ReLU, part, parts)
}

// MaxPool is the 3x3/2 max pool after the ImageNet stem.
type MaxPool struct {
	K       *asm.MaxPoolKernel
	In, Out asm.Buffer
}

// Check reports whether the kernel accepts the buffers.
func (m *MaxPool) Check() error { return m.K.Check(m.In, m.Out) }

// RunPart pools part of parts of the output rows.
func (m *MaxPool) RunPart(part, parts int) { m.K.RunPart(m.In, m.Out, part, parts) }

// Shortcut is the parameter-free option-A shortcut (asm.SubsamplePad).
type Shortcut struct{ asm.SubsamplePad }

// AvgPool is the global average pool into a vector of channel means.
type AvgPool struct {
	K   *asm.AvgPoolKernel
	In  asm.Buffer
	Out []float32
}

// Check reports whether the kernel accepts the buffer.
func (a *AvgPool) Check() error { return a.K.Check(a.In, a.Out) }

// RunPart: part 0 pools the whole (small) map; the other parts idle.
func (a *AvgPool) RunPart(part, _ int) {
	if part == 0 {
		if err := a.K.Run(a.In, a.Out); err != nil {
			panic(err) // shapes are fixed and checked at build time
		}
	}
}

// FC is the classifier; Out holds the padded logits, the first Classes of
// which are the network's output.
type FC struct {
	K       *asm.FCKernel
	In      []float32
	W, B    []float32 // packed
	Out     []float32
	Classes int
}

// Check reports whether the kernel accepts the slices.
func (f *FC) Check() error { return f.K.Check(f.In, f.W, f.B, f.Out) }

// RunPart computes part of parts of the output blocks.
func (f *FC) RunPart(part, parts int) { f.K.RunPart(f.In, f.W, f.B, f.Out, part, parts) }

// Logits copies the classifier's output, without its padding, to dst.
func (f *FC) Logits(dst []float32) { copy(dst, f.Out[:f.Classes]) }

// Input copies a CHW image (PyTorch's layout) into the interior of an NHWC
// buffer, leaving its halo zero. Set the image before running the step.
type Input struct {
	Dst   asm.Buffer
	image []float32
}

// Check reports whether the buffer can hold an image.
func (in *Input) Check() error {
	if in.Dst.Len() != len(in.Dst.Data) || in.Dst.H < 1 || in.Dst.W < 1 || in.Dst.C < 1 {
		return fmt.Errorf("input buffer %v holds %d floats", in.Dst, len(in.Dst.Data))
	}
	return nil
}

// Set names the image the next run loads; it must hold C·H·W floats.
func (in *Input) Set(image []float32) { in.image = image }

// RunPart copies part of parts of the rows.
func (in *Input) RunPart(part, parts int) {
	dst, src := in.Dst, in.image
	plane := dst.H * dst.W
	for y := part * dst.H / parts; y < (part+1)*dst.H/parts; y++ {
		for x := 0; x < dst.W; x++ {
			d := dst.Data[dst.Index(y, x, 0):][:dst.C]
			for c := range d {
				d[c] = src[c*plane+y*dst.W+x]
			}
		}
	}
}
