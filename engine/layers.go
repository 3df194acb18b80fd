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

// Batch is which images a Model's layers run on next: N images from
// image First. Schedule sets it: {0, 1} for Forward; for ForwardBatch of n
// images {0, n}, or {i, g} for the layers it runs a group of g images at a
// time. Every layer holds one buffer per image the Model was made for.
type Batch struct{ First, N int }

// images is the range [i0, i1) of the images the layers run on next.
func (b *Batch) images() (i0, i1 int) { return b.First, b.First + b.N }

// split gives part its share [i0, i1) of n items.
func split(n, part, parts int) (i0, i1 int) { return part * n / parts, (part + 1) * n / parts }

// Conv is a convolution with its BatchNorm folded in, an optional residual
// added, and an optional ReLU: Out = relu?(conv(In) + Bias + Res?), per image.
type Conv struct {
	Name         string
	K            *asm.ConvKernel
	In, Out      []asm.Buffer // per image
	Res          []asm.Buffer // per image; nil: no residual
	Packed, Bias []float32
	ReLU         bool
	Batch        *Batch
	// WeightsFirst: the layer's weights outweigh one image's activations,
	// so a batch runs one channel block (weight panel) over every image
	// before the next, reading each panel from memory once per batch.
	WeightsFirst bool
	// W, when set, computes the layer by Winograd instead of K (then nil),
	// from WPacked (the transformed weights) with one scratch per worker.
	W       *asm.WinogradKernel
	WPacked []float32
	Scratch []*asm.WinogradScratch
	// Q, when set, is the int8 convolution the layer runs instead (an int8
	// Model: see QConv).
	Q *QConv
}

func (c *Conv) res(i int) *asm.Buffer {
	if c.Res == nil {
		return nil
	}
	return &c.Res[i]
}

// Check reports whether the kernel accepts every image's buffers.
func (c *Conv) Check() error {
	if c.Q != nil {
		return c.Q.Check()
	}
	if len(c.In) == 0 || len(c.Out) != len(c.In) || c.Res != nil && len(c.Res) != len(c.In) {
		return fmt.Errorf("%s: %d input, %d output and %d residual buffers", c.Name, len(c.In), len(c.Out), len(c.Res))
	}
	for i := range c.In {
		var err error
		if c.W != nil {
			err = c.W.Check(c.In[i], c.Out[i], c.res(i), c.WPacked, c.Bias)
		} else {
			err = c.K.Check(c.In[i], c.Out[i], c.res(i), c.Packed, c.Bias)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// RunPart computes part of parts of the layer over Batch.N images. One
// image splits as asm.ConvKernel.RunPart does. A batch splits by image when
// the images divide evenly among the parts; otherwise, when the weights
// come first, by channel blocks, each part running its blocks over every
// image; otherwise every image is split across the parts in turn.
func (c *Conv) RunPart(part, parts int) {
	if c.Q != nil {
		c.Q.RunPart(part, parts)
		return
	}
	first, n := c.Batch.First, c.Batch.N
	if c.W != nil {
		c.runWinograd(first, n, part, parts)
		return
	}
	if n == 1 {
		c.K.RunPart(c.In[first], c.Out[first], c.res(first), c.Packed, c.Bias, c.ReLU, part, parts)
		return
	}
	nb := c.K.Blocks()
	switch {
	case c.WeightsFirst && nb >= parts:
		b0, b1 := split(nb, part, parts)
		for b := b0; b < b1; b++ {
			for i := first; i < first+n; i++ {
				c.K.RunBlocks(c.In[i], c.Out[i], c.res(i), c.Packed, c.Bias, c.ReLU, b, b+1)
			}
		}
	case n%parts == 0:
		i0, i1 := split(n, part, parts)
		for i := first + i0; i < first+i1; i++ {
			c.K.RunPart(c.In[i], c.Out[i], c.res(i), c.Packed, c.Bias, c.ReLU, 0, 1)
		}
	default:
		for i := first; i < first+n; i++ {
			c.K.RunPart(c.In[i], c.Out[i], c.res(i), c.Packed, c.Bias, c.ReLU, part, parts)
		}
	}
}

// runWinograd runs a Winograd layer on the batch (asm.WinogradKernel.RunBatch).
func (c *Conv) runWinograd(first, n, part, parts int) {
	var res []asm.Buffer
	if c.Res != nil {
		res = c.Res[first:]
	}
	c.W.RunBatch(c.In[first:], c.Out[first:], res, n, c.WPacked, c.Bias, c.ReLU, c.Scratch[part], part, parts)
}

// MaxPool is the 3x3/2 max pool after the ImageNet stem.
type MaxPool struct {
	K       *asm.MaxPoolKernel
	In, Out []asm.Buffer
	Batch   *Batch
	// Q, when set, is the pool on an int8 Model's bytes instead.
	Q *QMaxPool
}

// Check reports whether the kernel accepts every image's buffers.
func (m *MaxPool) Check() error {
	if m.Q != nil {
		return m.Q.Check()
	}
	if len(m.In) == 0 || len(m.Out) != len(m.In) {
		return fmt.Errorf("max pool: %d input and %d output buffers", len(m.In), len(m.Out))
	}
	for i := range m.In {
		if err := m.K.Check(m.In[i], m.Out[i]); err != nil {
			return err
		}
	}
	return nil
}

// RunPart pools part of parts of every image's output rows.
func (m *MaxPool) RunPart(part, parts int) {
	if m.Q != nil {
		m.Q.RunPart(part, parts)
		return
	}
	i0, i1 := m.Batch.images()
	for i := i0; i < i1; i++ {
		m.K.RunPart(m.In[i], m.Out[i], part, parts)
	}
}

// Shortcut is the parameter-free option-A shortcut (asm.SubsamplePad), per
// image.
type Shortcut struct {
	S     []asm.SubsamplePad
	Batch *Batch
	// Q, when set, is the shortcut on an int8 Model's bytes instead.
	Q *QShortcut
}

// Check reports whether every image's buffers describe the shortcut.
func (s *Shortcut) Check() error {
	if s.Q != nil {
		return s.Q.Check()
	}
	if len(s.S) == 0 {
		return fmt.Errorf("shortcut: no buffers")
	}
	for i := range s.S {
		if err := s.S[i].Check(); err != nil {
			return err
		}
	}
	return nil
}

// RunPart writes part of parts of every image's output rows.
func (s *Shortcut) RunPart(part, parts int) {
	if s.Q != nil {
		s.Q.RunPart(part, parts)
		return
	}
	i0, i1 := s.Batch.images()
	for i := i0; i < i1; i++ {
		s.S[i].RunPart(part, parts)
	}
}

// AvgPool is the global average pool into a vector of channel means, per
// image.
type AvgPool struct {
	K     *asm.AvgPoolKernel
	In    []asm.Buffer
	Out   [][]float32
	Batch *Batch
	// QIn, when set, are an int8 Model's bytes the pool reads instead of
	// In, with their scale QScale: the mean dequantized.
	QIn    []asm.QBuffer
	QScale float32
}

// Check reports whether the kernel accepts every image's buffer.
func (a *AvgPool) Check() error {
	if len(a.In) == 0 || len(a.Out) != len(a.In) {
		return fmt.Errorf("average pool: %d input and %d output buffers", len(a.In), len(a.Out))
	}
	for i := range a.In {
		if err := a.K.Check(a.In[i], a.Out[i]); err != nil {
			return err
		}
	}
	return nil
}

// RunPart pools part of parts of the images (one image: part 0 does it;
// the map is small).
func (a *AvgPool) RunPart(part, parts int) {
	i0, i1 := split(a.Batch.N, part, parts)
	for i := a.Batch.First + i0; i < a.Batch.First+i1; i++ {
		if a.QIn != nil {
			avgPoolBytes(a.QIn[i], a.Out[i], a.QScale)
			continue
		}
		if err := a.K.Run(a.In[i], a.Out[i]); err != nil {
			panic(err) // shapes are fixed and checked at build time
		}
	}
}

// FC is the classifier; Out holds each image's padded logits, the first
// Classes of which are the network's output.
type FC struct {
	K       *asm.FCKernel
	In      [][]float32 // per image: the pooled features
	W, B    []float32   // packed
	Out     [][]float32 // per image
	Classes int
	Batch   *Batch
}

// Check reports whether the kernel accepts every image's slices.
func (f *FC) Check() error {
	if len(f.In) == 0 || len(f.Out) != len(f.In) {
		return fmt.Errorf("classifier: %d input and %d output buffers", len(f.In), len(f.Out))
	}
	for i := range f.In {
		if err := f.K.Check(f.In[i], f.W, f.B, f.Out[i]); err != nil {
			return err
		}
	}
	return nil
}

// RunPart computes part of parts of the output blocks of every image: a
// block's weights are read once and applied to the whole batch (a GEMM).
func (f *FC) RunPart(part, parts int) {
	nb := f.K.Padded() / f.K.Block
	b0, b1 := split(nb, part, parts)
	for b := b0; b < b1; b++ {
		i0, i1 := f.Batch.images()
		for i := i0; i < i1; i++ {
			f.K.RunBlocks(f.In[i], f.W, f.B, f.Out[i], b, b+1)
		}
	}
}

// Logits copies each image's classifier output, without its padding, to
// dst (Batch.N × Classes).
func (f *FC) Logits(dst []float32) {
	for i := 0; i < f.Batch.N; i++ {
		copy(dst[i*f.Classes:(i+1)*f.Classes], f.Out[i][:f.Classes])
	}
}

// Input copies CHW images (PyTorch's layout) into the interiors of NHWC
// buffers, leaving their halos zero. Set the images before running it.
type Input struct {
	Dst    []asm.Buffer
	images []float32
	Batch  *Batch
	// Q, when set, quantizes the images into an int8 Model's stem input
	// instead of copying them into Dst.
	Q *QInput
}

// Check reports whether the buffers can hold images.
func (in *Input) Check() error {
	if len(in.Dst) == 0 {
		return fmt.Errorf("input: no buffers")
	}
	for _, d := range in.Dst {
		if d.Len() != len(d.Data) || d.H < 1 || d.W < 1 || d.C < 1 {
			return fmt.Errorf("input buffer %v holds %d floats", d, len(d.Data))
		}
	}
	return nil
}

// Set names the images the next run loads: Batch.N images of C·H·W floats,
// one after the other.
func (in *Input) Set(images []float32) { in.images = images }

// RunPart copies part of parts of the rows of every image. It goes plane
// by plane along each row, so that it reads the source in order and writes
// the row's pixels from one cache line to the next; the RGB input of the
// ImageNet networks has its own loop (a per-pixel, per-channel copy with
// index arithmetic cost ~0.3 ms of a ~20 ms ResNet-18 on one thread).
func (in *Input) RunPart(part, parts int) {
	i0, i1 := in.Batch.images()
	if in.Q != nil {
		for i := i0; i < i1; i++ {
			out := in.Q.Out[i]
			n := 3 * out.H * out.W
			y0, y1 := split(out.H, part, parts)
			in.Q.K.Run(in.images[i*n:(i+1)*n], out, in.Q.Inv, in.Q.ZP, y0, y1)
		}
		return
	}
	for i := i0; i < i1; i++ {
		dst := in.Dst[i]
		w, c := dst.W, dst.C
		plane := dst.H * w
		src := in.images[i*plane*c : (i+1)*plane*c]
		y0, y1 := split(dst.H, part, parts)
		for y := y0; y < y1; y++ {
			row := dst.Data[dst.Index(y, 0, 0):][:w*c]
			if c == 3 {
				r, g, b := src[y*w:][:w], src[plane+y*w:][:w], src[2*plane+y*w:][:w]
				for x := range r {
					d := row[3*x : 3*x+3 : 3*x+3]
					d[0], d[1], d[2] = r[x], g[x], b[x]
				}
				continue
			}
			for ch := 0; ch < c; ch++ {
				for x, v := range src[ch*plane+y*w:][:w] {
					row[x*c+ch] = v
				}
			}
		}
	}
}

// avgPoolBytes is the global average pool of uint8 values of scale s:
// out[c] = s · Σ in[y][x][c] / (H·W), summed exactly in int32.
func avgPoolBytes(in asm.QBuffer, out []float32, s float32) {
	var sum [4096]int32
	acc := sum[:in.C]
	clear(acc)
	for y := 0; y < in.H; y++ {
		row := in.Data[in.Index(y, 0, 0):][:in.W*in.C]
		for x := 0; x < in.W; x++ {
			for c, v := range row[x*in.C : (x+1)*in.C] {
				acc[c] += int32(v)
			}
		}
	}
	k := s / float32(in.H*in.W)
	for c, v := range acc {
		out[c] = float32(v) * k
	}
}
