package asm

import "fmt"

// MaxPoolKernel is the 3x3 stride-2 max pool (padding 1) after the
// ImageNet stem, for C channels on a map of any size.
//
// Precondition: the input follows a ReLU (every value ≥ 0) and its halo of
// at least 1 is zero. Then the zero halo gives the same result as PyTorch's
// −inf padding, since every window holds at least one real pixel ≥ 0.
type MaxPoolKernel struct {
	Name string
	Tier Tier
	C    int
	// F pools n output pixels of one row: in at the window origin of the
	// first (inside the halo), rows inRow bytes apart; out at the first
	// output pixel. Nil for the portable kernel.
	F func(in, out *float32, inRow, n uintptr)
}

// PortableMaxPool returns the portable max-pool kernel for c channels.
func PortableMaxPool(c int) (*MaxPoolKernel, error) {
	if c < 1 {
		return nil, fmt.Errorf("max pool of %d channels", c)
	}
	return &MaxPoolKernel{Name: fmt.Sprintf("maxpool3x3s2_c%d_purego", c), Tier: Purego, C: c}, nil
}

// PooledSide is the output side of the 3x3/2 max pool with padding 1.
func PooledSide(in int) int { return (in-1)/2 + 1 }

// Run pools in (halo ≥ 1) into the interior of out.
func (k *MaxPoolKernel) Run(in, out Buffer) error {
	if err := k.Check(in, out); err != nil {
		return err
	}
	k.RunPart(in, out, 0, 1)
	return nil
}

// Check reports whether Run and RunPart accept these buffers.
func (k *MaxPoolKernel) Check(in, out Buffer) error {
	if err := in.check(k.Name, "input", in.H, in.W, k.C, 1); err != nil {
		return err
	}
	return out.check(k.Name, "output", PooledSide(in.H), PooledSide(in.W), k.C, 0)
}

// RunPart pools part of parts of the output rows; the buffers must have
// passed Check.
func (k *MaxPoolKernel) RunPart(in, out Buffer, part, parts int) {
	y0, y1 := SplitRows(out.H, 1, part, parts)
	for oy := y0; oy < y1; oy++ {
		if k.F != nil {
			k.F(&in.Data[in.Index(2*oy-1, -1, 0)], &out.Data[out.Index(oy, 0, 0)], uintptr(in.RowStride()*4), uintptr(out.W))
			continue
		}
		for ox := 0; ox < out.W; ox++ {
			o := out.Data[out.Index(oy, ox, 0):][:k.C]
			copy(o, in.Data[in.Index(2*oy-1, 2*ox-1, 0):][:k.C])
			for ky := 0; ky < 3; ky++ {
				for kx := 0; kx < 3; kx++ {
					for c, v := range in.Data[in.Index(2*oy-1+ky, 2*ox-1+kx, 0):][:k.C] {
						o[c] = max(o[c], v)
					}
				}
			}
		}
	}
}

// SubsamplePad is the option-A shortcut: out = in[::s, ::s] with its
// channels placed at (out.C − in.C)/2, the other channels zero.
type SubsamplePad struct {
	In, Out Buffer
	Stride  int
}

// Check reports whether the buffers and stride describe an option-A shortcut.
func (s *SubsamplePad) Check() error {
	in, out := s.In, s.Out
	if s.Stride < 1 || out.H != (in.H-1)/s.Stride+1 || out.W != (in.W-1)/s.Stride+1 || out.C < in.C || (out.C-in.C)%2 != 0 {
		return fmt.Errorf("option-A shortcut from %dx%dx%d to %dx%dx%d with stride %d", in.H, in.W, in.C, out.H, out.W, out.C, s.Stride)
	}
	if err := in.check("shortcut", "input", in.H, in.W, in.C, 0); err != nil {
		return err
	}
	return out.check("shortcut", "output", out.H, out.W, out.C, 0)
}

// RunPart writes part of parts of out's interior rows; Check must have
// passed.
func (s *SubsamplePad) RunPart(part, parts int) {
	in, out := s.In, s.Out
	before := (out.C - in.C) / 2
	y0, y1 := SplitRows(out.H, 1, part, parts)
	for y := y0; y < y1; y++ {
		for x := 0; x < out.W; x++ {
			o := out.Data[out.Index(y, x, 0):][:out.C]
			clear(o)
			copy(o[before:], in.Data[in.Index(y*s.Stride, x*s.Stride, 0):][:in.C])
		}
	}
}

// AvgPoolKernel is the global average pool before the classifier, for C
// channels on a map of any size.
type AvgPoolKernel struct {
	Name string
	Tier Tier
	C    int
	// F writes the means of every channel over an h×w interior starting at
	// in, rows inRow bytes apart, scaled by scale = 1/(h·w), to out[0:C].
	// Nil for the portable kernel.
	F func(in, out *float32, inRow, h, w uintptr, scale float32)
}

// PortableAvgPool returns the portable global average pool of c channels.
func PortableAvgPool(c int) (*AvgPoolKernel, error) {
	if c < 1 {
		return nil, fmt.Errorf("average pool of %d channels", c)
	}
	return &AvgPoolKernel{Name: fmt.Sprintf("avgpool_c%d_purego", c), Tier: Purego, C: c}, nil
}

// Check reports whether Run accepts these arguments.
func (k *AvgPoolKernel) Check(in Buffer, out []float32) error {
	if err := in.check(k.Name, "input", in.H, in.W, k.C, 0); err != nil {
		return err
	}
	if in.H < 1 || in.W < 1 {
		return fmt.Errorf("%s: empty %dx%d input", k.Name, in.H, in.W)
	}
	if len(out) != k.C {
		return fmt.Errorf("%s: output has %d values, want %d", k.Name, len(out), k.C)
	}
	return nil
}

// Run writes the per-channel means of in's interior to out[0:C].
func (k *AvgPoolKernel) Run(in Buffer, out []float32) error {
	if err := k.Check(in, out); err != nil {
		return err
	}
	k.run(in, out)
	return nil
}

func (k *AvgPoolKernel) run(in Buffer, out []float32) {
	scale := 1 / float32(in.H*in.W)
	if k.F != nil {
		k.F(&in.Data[in.Index(0, 0, 0)], &out[0], uintptr(in.RowStride()*4), uintptr(in.H), uintptr(in.W), scale)
		return
	}
	clear(out)
	for y := 0; y < in.H; y++ {
		for x := 0; x < in.W; x++ {
			for c, v := range in.Data[in.Index(y, x, 0):][:k.C] {
				out[c] += v
			}
		}
	}
	for c := range out {
		out[c] *= scale
	}
}

// FCKernel is the classifier, out = W·in + b. Outputs are computed in
// blocks of Block, so the packed weights, the packed bias and the output
// have Padded() entries per input; the first Out outputs are the logits.
type FCKernel struct {
	Name    string
	Tier    Tier
	In, Out int
	Block   int
	// F computes blocks blocks of Block outputs. Nil for the portable kernel.
	F func(in, w, bias, out *float32, blocks uintptr)
}

// PortableFC returns the portable classifier kernel for in inputs and out
// outputs.
func PortableFC(in, out int) (*FCKernel, error) {
	if in < 1 || out < 1 {
		return nil, fmt.Errorf("fully-connected layer %d→%d", in, out)
	}
	return &FCKernel{Name: fmt.Sprintf("fc_c%dk%d_purego", in, out), Tier: Purego, In: in, Out: out, Block: 1}, nil
}

// Padded is Out rounded up to a whole block.
func (k *FCKernel) Padded() int { return (k.Out + k.Block - 1) / k.Block * k.Block }

// Pack lays out W ([Out][In], PyTorch's order) as [block][in][Block] and
// pads W and the bias with zeros to Padded() outputs.
func (k *FCKernel) Pack(w, bias []float32) (packedW, packedBias []float32, err error) {
	if len(w) != k.Out*k.In || len(bias) != k.Out {
		return nil, nil, fmt.Errorf("%s: %d weights and %d biases, want %d×%d and %d", k.Name, len(w), len(bias), k.Out, k.In, k.Out)
	}
	p := k.Padded()
	packedW = make([]float32, p*k.In)
	for o := 0; o < k.Out; o++ {
		b, j := o/k.Block, o%k.Block
		for i := 0; i < k.In; i++ {
			packedW[(b*k.In+i)*k.Block+j] = w[o*k.In+i]
		}
	}
	packedBias = make([]float32, p)
	copy(packedBias, bias)
	return packedW, packedBias, nil
}

// Run computes out[0:Padded()]; out[Out:] hold zeros (padding rows).
func (k *FCKernel) Run(in, packedW, packedBias, out []float32) error {
	if err := k.Check(in, packedW, packedBias, out); err != nil {
		return err
	}
	k.RunPart(in, packedW, packedBias, out, 0, 1)
	return nil
}

// Check reports whether Run and RunPart accept these slices.
func (k *FCKernel) Check(in, packedW, packedBias, out []float32) error {
	p := k.Padded()
	if len(in) != k.In || len(packedW) != p*k.In || len(packedBias) != p || len(out) != p {
		return fmt.Errorf("%s: input %d, weights %d, bias %d, output %d; want %d, %d, %d, %d",
			k.Name, len(in), len(packedW), len(packedBias), len(out), k.In, p*k.In, p, p)
	}
	return nil
}

// RunPart computes part of parts of the output blocks (each part streams
// its share of the weights); the slices must have passed Check.
func (k *FCKernel) RunPart(in, packedW, packedBias, out []float32, part, parts int) {
	nb := k.Padded() / k.Block
	k.RunBlocks(in, packedW, packedBias, out, part*nb/parts, (part+1)*nb/parts)
}

// RunBlocks computes output blocks [b0, b1); the slices must have passed
// Check.
func (k *FCKernel) RunBlocks(in, packedW, packedBias, out []float32, b0, b1 int) {
	if k.F != nil {
		if b1 > b0 {
			k.F(&in[0], &packedW[b0*k.In*k.Block], &packedBias[b0*k.Block], &out[b0*k.Block], uintptr(b1-b0))
		}
		return
	}
	for b := b0; b < b1; b++ {
		o := out[b*k.Block : (b+1)*k.Block]
		copy(o, packedBias[b*k.Block:])
		for i, x := range in {
			for j, wv := range packedW[(b*k.In+i)*k.Block:][:k.Block] {
				o[j] += x * wv
			}
		}
	}
}
