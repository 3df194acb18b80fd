package asm

import (
	"fmt"
)

// Buffer is one image's activation in NHWC order (channels innermost) with a
// zero halo of Halo pixels around the H×W interior. Kernels read the halo
// as padding and write only the interior.
type Buffer struct {
	Data    []float32
	H, W, C int
	Halo    int
}

// NewBuffer allocates a zeroed buffer.
func NewBuffer(h, w, c, halo int) Buffer {
	b := Buffer{H: h, W: w, C: c, Halo: halo}
	b.Data = make([]float32, b.Len())
	return b
}

// Len is the number of floats the buffer spans, halo included.
func (b Buffer) Len() int { return (b.H + 2*b.Halo) * (b.W + 2*b.Halo) * b.C }

// RowStride is the distance in floats between vertically adjacent pixels.
func (b Buffer) RowStride() int { return (b.W + 2*b.Halo) * b.C }

// Index is the position of channel c of interior pixel (y, x); y and x may
// be negative down to −Halo.
func (b Buffer) Index(y, x, c int) int {
	return (y+b.Halo)*b.RowStride() + (x+b.Halo)*b.C + c
}

// check validates b as the role ("input", …) of kernel name. It is on
// Forward's path, so it builds no string unless it fails.
func (b Buffer) check(name, role string, h, w, c, minHalo int) error {
	if b.H != h || b.W != w || b.C != c || b.Halo < minHalo || b.Halo < 0 {
		return fmt.Errorf("%s %s is %dx%dx%d with halo %d, want %dx%dx%d with halo ≥ %d", name, role, b.H, b.W, b.C, b.Halo, h, w, c, minHalo)
	}
	if len(b.Data) != b.Len() {
		return fmt.Errorf("%s %s holds %d floats, its shape needs %d", name, role, len(b.Data), b.Len())
	}
	return nil
}

// ConvShape is what a convolution kernel is specialised on: a K×K kernel,
// stride and padding, channels, and the (square) input and output sides.
type ConvShape struct {
	K, Stride, Pad int
	InC, OutC      int
	InH, OutH      int
}

// MACs is the number of multiply-adds of one image.
func (s ConvShape) MACs() int64 { return int64(s.OutH*s.OutH*s.OutC) * int64(s.InC*s.K*s.K) }

func (s ConvShape) name() string {
	return fmt.Sprintf("conv%dx%ds%d_c%dk%d_h%d", s.K, s.K, s.Stride, s.InC, s.OutC, s.InH)
}

// microKernel is the signature of every generated convolution kernel; see
// gen/kernels/conv.go for the meaning of each argument.
type microKernel func(in, w, bias, res, out *float32, inRow, outRow, resRow, flags, n uintptr)

const (
	flagReLU     = 1
	flagResidual = 2
)

// ConvKernel is a convolution specialised for one shape and tier. Output
// channels come in blocks of BlockC(); each call of the micro-kernel fills
// a TH×TW-pixel tile of one block, and the last tile row has RemTH rows when
// TH does not divide OutH.
type ConvKernel struct {
	Name  string
	Tier  Tier
	Shape ConvShape

	TH, TW, V, Lanes int
	// RemTH, RemTW: rows of the last tile row and columns of the last tile
	// of each row where TH or TW does not divide the output (0 if it does).
	RemTH, RemTW                 int
	main, rem, remCol, remCorner microKernel // nil for Purego
}

// BlockC is the number of output channels one block (one packed weight
// panel) covers.
func (k *ConvKernel) BlockC() int { return k.V * k.Lanes }

// ConvKernels lists the specialised kernels of a tier (none for Purego,
// whose kernel takes any shape).
func ConvKernels(t Tier) []ConvKernel { return specialised(t) }

// Conv returns the kernel for shape s on tier t: the generated one for the
// SIMD tiers, the portable one for Purego.
func Conv(s ConvShape, t Tier) (*ConvKernel, error) {
	if !Has(t) {
		return nil, fmt.Errorf("tier %v is not available on this machine/build (have %v)", t, available)
	}
	if s.K < 1 || s.Stride < 1 || s.Pad < 0 || s.InC < 1 || s.OutC < 1 || s.InH < 1 ||
		s.OutH != (s.InH+2*s.Pad-s.K)/s.Stride+1 {
		return nil, fmt.Errorf("invalid convolution shape %+v", s)
	}
	if t == Purego {
		lanes := 16
		for s.OutC%lanes != 0 {
			lanes /= 2
		}
		return &ConvKernel{Name: s.name() + "_purego", Tier: Purego, Shape: s, TH: 1, TW: 1, V: 1, Lanes: lanes}, nil
	}
	ks := specialised(t)
	for i := range ks {
		if ks[i].Shape == s {
			return &ks[i], nil
		}
	}
	return nil, fmt.Errorf("no %v kernel for %s: the generator emits one per shape of the resnet family", t, s.name())
}

// PackWeights reorders OIHW weights (PyTorch's layout, BN already folded)
// into the kernel's order: per block of BlockC output channels,
// [ky][kx][ic][BlockC], one linear stream in the order the loops read it.
func (k *ConvKernel) PackWeights(oihw []float32) ([]float32, error) {
	s := k.Shape
	if len(oihw) != s.OutC*s.InC*s.K*s.K {
		return nil, fmt.Errorf("%s: %d weights, want %d×%d×%d×%d", k.Name, len(oihw), s.OutC, s.InC, s.K, s.K)
	}
	bc := k.BlockC()
	p := make([]float32, len(oihw))
	i := 0
	for b := 0; b < s.OutC/bc; b++ {
		for ky := 0; ky < s.K; ky++ {
			for kx := 0; kx < s.K; kx++ {
				for ic := 0; ic < s.InC; ic++ {
					for j := 0; j < bc; j++ {
						oc := b*bc + j
						p[i] = oihw[((oc*s.InC+ic)*s.K+ky)*s.K+kx]
						i++
					}
				}
			}
		}
	}
	return p, nil
}

// Run computes out = relu?(conv(in, w) + bias + res?) over the whole image.
// packed comes from PackWeights; res may be nil. in must have a halo of at
// least Pad; the halos of out and res may be anything.
func (k *ConvKernel) Run(in, out Buffer, res *Buffer, packed, bias []float32, relu bool) error {
	if err := k.Check(in, out, res, packed, bias); err != nil {
		return err
	}
	k.run(in, out, res, packed, bias, relu, 0, k.Shape.OutH, 0, k.Shape.OutC/k.BlockC())
	return nil
}

// Check reports whether Run and RunPart accept these arguments.
func (k *ConvKernel) Check(in, out Buffer, res *Buffer, packed, bias []float32) error {
	s := k.Shape
	if err := in.check(k.Name, "input", s.InH, s.InH, s.InC, s.Pad); err != nil {
		return err
	}
	if err := out.check(k.Name, "output", s.OutH, s.OutH, s.OutC, 0); err != nil {
		return err
	}
	if res != nil {
		if err := res.check(k.Name, "residual", s.OutH, s.OutH, s.OutC, 0); err != nil {
			return err
		}
	}
	if len(packed) != s.OutC*s.InC*s.K*s.K || len(bias) != s.OutC {
		return fmt.Errorf("%s: %d packed weights and %d biases, want %d and %d", k.Name, len(packed), len(bias), s.OutC*s.InC*s.K*s.K, s.OutC)
	}
	return nil
}

// RunPart computes part part of parts (0 ≤ part < parts) of Run, so that
// parts goroutines together compute the whole layer. The arguments must
// have passed Check. Work splits by output-channel block where the blocks
// divide evenly (each worker then streams only its share of the weights),
// otherwise by tile rows.
func (k *ConvKernel) RunPart(in, out Buffer, res *Buffer, packed, bias []float32, relu bool, part, parts int) {
	nb := k.Shape.OutC / k.BlockC()
	if nb%parts == 0 {
		k.run(in, out, res, packed, bias, relu, 0, k.Shape.OutH, part*nb/parts, (part+1)*nb/parts)
		return
	}
	y0, y1 := splitRows(k.Shape.OutH, k.TH, part, parts)
	k.run(in, out, res, packed, bias, relu, y0, y1, 0, nb)
}

// splitRows gives part its share of n rows in whole tiles of th rows.
func splitRows(n, th, part, parts int) (y0, y1 int) {
	tiles := (n + th - 1) / th
	y0 = part * tiles / parts * th
	y1 = min(n, (part+1)*tiles/parts*th)
	return y0, max(y0, y1)
}

// run computes output rows [y0, y1) of channel blocks [b0, b1); y0 and y1
// are multiples of TH (or y1 = OutH). The arguments are already checked.
func (k *ConvKernel) run(in, out Buffer, res *Buffer, packed, bias []float32, relu bool, y0, y1, b0, b1 int) {
	if k.main == nil {
		convGeneric(k, in, out, res, packed, bias, relu, y0, y1, b0, b1)
		return
	}
	var flags uintptr
	if relu {
		flags |= flagReLU
	}
	var resRow uintptr
	if res != nil {
		flags |= flagResidual
		resRow = uintptr(res.RowStride() * 4)
	}
	inRow, outRow := uintptr(in.RowStride()*4), uintptr(out.RowStride()*4)
	band := k.bandRows()
	for by := y0; by < y1; by += band {
		k.runBand(in, out, res, packed, bias, flags, inRow, outRow, resRow, by, min(by+band, y1), b0, b1)
	}
}

// bandBytes is how much input and output one band of rows may touch: half
// of a 1 MiB L2, so a band stays cached while every channel block reads it.
const bandBytes = 512 << 10

// bandRows is the number of output rows (a multiple of TH) computed for all
// channel blocks before moving down. A band keeps its input and output in
// L2 while the blocks' weights stream past; big maps get thin bands, and
// small ones a single band, so large weights are read once.
func (k *ConvKernel) bandRows() int {
	s := k.Shape
	perRow := 4 * (s.OutH*s.OutC + s.Stride*s.InH*s.InC)
	rows := max(1, bandBytes/perRow) / k.TH * k.TH
	return max(rows, k.TH)
}

func (k *ConvKernel) runBand(in, out Buffer, res *Buffer, packed, bias []float32, flags, inRow, outRow, resRow uintptr, y0, y1, b0, b1 int) {
	s := k.Shape
	bc := k.BlockC()
	panel := s.K * s.K * s.InC * bc
	for b := b0; b < b1; b++ {
		w, bp := &packed[b*panel], &bias[b*bc]
		for ty := y0; ty < y1; ty += k.TH {
			f, g := k.main, k.remCol
			if ty+k.TH > s.OutH {
				f, g = k.rem, k.remCorner
			}
			full := s.OutH / k.TW
			ip := &in.Data[in.Index(ty*s.Stride-s.Pad, -s.Pad, 0)]
			op := &out.Data[out.Index(ty, 0, b*bc)]
			var rp *float32
			if res != nil {
				rp = &res.Data[res.Index(ty, 0, b*bc)]
			}
			f(ip, w, bp, rp, op, inRow, outRow, resRow, flags, uintptr(full))
			if k.RemTW > 0 {
				tx := full * k.TW
				ip = &in.Data[in.Index(ty*s.Stride-s.Pad, tx*s.Stride-s.Pad, 0)]
				op = &out.Data[out.Index(ty, tx, b*bc)]
				if res != nil {
					rp = &res.Data[res.Index(ty, tx, b*bc)]
				}
				g(ip, w, bp, rp, op, inRow, outRow, resRow, flags, 1)
			}
		}
	}
}

// convGeneric is the portable kernel: the same packed layout and the same
// arithmetic order over (ky, kx, ic) as the SIMD kernels.
func convGeneric(k *ConvKernel, in, out Buffer, res *Buffer, packed, bias []float32, relu bool, y0, y1, b0, b1 int) {
	s := k.Shape
	bc := k.BlockC()
	panel := s.K * s.K * s.InC * bc
	var acc [64]float32
	a := acc[:bc]
	for b := b0; b < b1; b++ {
		for oy := y0; oy < y1; oy++ {
			for ox := 0; ox < s.OutH; ox++ {
				clear(a)
				w := packed[b*panel : (b+1)*panel]
				for ky := 0; ky < s.K; ky++ {
					for kx := 0; kx < s.K; kx++ {
						px := in.Data[in.Index(oy*s.Stride-s.Pad+ky, ox*s.Stride-s.Pad+kx, 0):][:s.InC]
						for _, x := range px {
							wr := w[:bc]
							for j := range a {
								a[j] += x * wr[j]
							}
							w = w[bc:]
						}
					}
				}
				o := out.Data[out.Index(oy, ox, b*bc):][:bc]
				var r []float32
				if res != nil {
					r = res.Data[res.Index(oy, ox, b*bc):][:bc]
				}
				for j := range a {
					v := a[j] + bias[b*bc+j]
					if r != nil {
						v += r[j]
					}
					if relu && v < 0 {
						v = 0
					}
					o[j] = v
				}
			}
		}
	}
}
