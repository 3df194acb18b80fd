package asm

import "fmt"

// MaxPoolKernel is the 3x3 stride-2 max pool after the ImageNet stem.
//
// Precondition: the input follows a ReLU (every value ≥ 0) and its halo of
// at least 1 is zero. Then the zero halo gives the same result as PyTorch's
// −inf padding, since every window holds at least one real pixel ≥ 0.
type MaxPoolKernel struct {
	Name   string
	Tier   Tier
	C, InH int
	OutH   int
	f      func(in, out *float32, inRow uintptr)
}

// MaxPool returns the 3x3/2 max-pool kernel for c channels on an inH map.
func MaxPool(c, inH int, t Tier) (*MaxPoolKernel, error) {
	if !Has(t) {
		return nil, fmt.Errorf("tier %v is not available on this machine/build", t)
	}
	if c < 1 || inH < 1 {
		return nil, fmt.Errorf("max pool of %d channels on %dx%d", c, inH, inH)
	}
	if t == Purego {
		return &MaxPoolKernel{Name: fmt.Sprintf("maxpool3x3s2_c%d_h%d_purego", c, inH), Tier: t, C: c, InH: inH, OutH: (inH-1)/2 + 1}, nil
	}
	for _, k := range maxPools(t) {
		if k.C == c && k.InH == inH {
			return &k, nil
		}
	}
	return nil, fmt.Errorf("no %v max-pool kernel for %d channels on %dx%d", t, c, inH, inH)
}

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
	if err := in.check(k.Name, "input", k.InH, k.InH, k.C, 1); err != nil {
		return err
	}
	return out.check(k.Name, "output", k.OutH, k.OutH, k.C, 0)
}

// RunPart pools part of parts of the output rows; the buffers must have
// passed Check.
func (k *MaxPoolKernel) RunPart(in, out Buffer, part, parts int) {
	y0, y1 := splitRows(k.OutH, 1, part, parts)
	for oy := y0; oy < y1; oy++ {
		if k.f != nil {
			k.f(&in.Data[in.Index(2*oy-1, -1, 0)], &out.Data[out.Index(oy, 0, 0)], uintptr(in.RowStride()*4))
			continue
		}
		for ox := 0; ox < k.OutH; ox++ {
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
// channels placed at (out.C − in.C)/2, the other channels zero. It writes
// out's interior only.
func SubsamplePad(in, out Buffer, stride int) error {
	if stride < 1 || out.H != (in.H-1)/stride+1 || out.W != (in.W-1)/stride+1 || out.C < in.C || (out.C-in.C)%2 != 0 {
		return fmt.Errorf("option-A shortcut from %dx%dx%d to %dx%dx%d with stride %d", in.H, in.W, in.C, out.H, out.W, out.C, stride)
	}
	if err := in.check("shortcut", "input", in.H, in.W, in.C, 0); err != nil {
		return err
	}
	if err := out.check("shortcut", "output", out.H, out.W, out.C, 0); err != nil {
		return err
	}
	before := (out.C - in.C) / 2
	for y := 0; y < out.H; y++ {
		for x := 0; x < out.W; x++ {
			o := out.Data[out.Index(y, x, 0):][:out.C]
			clear(o)
			copy(o[before:], in.Data[in.Index(y*stride, x*stride, 0):][:in.C])
		}
	}
	return nil
}

// AvgPoolKernel is the global average pool before the classifier.
type AvgPoolKernel struct {
	Name   string
	Tier   Tier
	C, InH int
	f      func(in, out *float32, inRow uintptr)
}

// AvgPool returns the global average pool of c channels over an inH map.
func AvgPool(c, inH int, t Tier) (*AvgPoolKernel, error) {
	if !Has(t) {
		return nil, fmt.Errorf("tier %v is not available on this machine/build", t)
	}
	if c < 1 || inH < 1 {
		return nil, fmt.Errorf("average pool of %d channels on %dx%d", c, inH, inH)
	}
	if t == Purego {
		return &AvgPoolKernel{Name: fmt.Sprintf("avgpool_c%d_h%d_purego", c, inH), Tier: t, C: c, InH: inH}, nil
	}
	for _, k := range avgPools(t) {
		if k.C == c && k.InH == inH {
			return &k, nil
		}
	}
	return nil, fmt.Errorf("no %v average-pool kernel for %d channels on %dx%d", t, c, inH, inH)
}

// Run writes the per-channel means of in's interior to out[0:C].
func (k *AvgPoolKernel) Run(in Buffer, out []float32) error {
	if err := in.check(k.Name, "input", k.InH, k.InH, k.C, 0); err != nil {
		return err
	}
	if len(out) != k.C {
		return fmt.Errorf("%s: output has %d values, want %d", k.Name, len(out), k.C)
	}
	if k.f != nil {
		k.f(&in.Data[in.Index(0, 0, 0)], &out[0], uintptr(in.RowStride()*4))
		return nil
	}
	clear(out)
	for y := 0; y < k.InH; y++ {
		for x := 0; x < k.InH; x++ {
			for c, v := range in.Data[in.Index(y, x, 0):][:k.C] {
				out[c] += v
			}
		}
	}
	scale := 1 / float32(k.InH*k.InH)
	for c := range out {
		out[c] *= scale
	}
	return nil
}

// FCKernel is the classifier, out = W·in + b. Outputs are computed in
// blocks of Block, so the packed weights, the packed bias and the output
// have Padded() entries per input; the first Out outputs are the logits.
type FCKernel struct {
	Name    string
	Tier    Tier
	In, Out int
	Block   int
	f       func(in, w, bias, out *float32, blocks uintptr)
}

// FC returns the classifier kernel for in inputs and out outputs.
func FC(in, out int, t Tier) (*FCKernel, error) {
	if !Has(t) {
		return nil, fmt.Errorf("tier %v is not available on this machine/build", t)
	}
	if in < 1 || out < 1 {
		return nil, fmt.Errorf("fully-connected layer %d→%d", in, out)
	}
	if t == Purego {
		return &FCKernel{Name: fmt.Sprintf("fc_c%dk%d_purego", in, out), Tier: t, In: in, Out: out, Block: 1}, nil
	}
	for _, k := range fcs(t) {
		if k.In == in && k.Out == out {
			return &k, nil
		}
	}
	return nil, fmt.Errorf("no %v classifier kernel for %d→%d", t, in, out)
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
	b0, b1 := part*nb/parts, (part+1)*nb/parts
	if k.f != nil {
		for b := b0; b < b1; b++ {
			k.f(&in[0], &packedW[b*k.In*k.Block], &packedBias[b*k.Block], &out[b*k.Block], 1)
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
