package asm

import (
	"fmt"

	"github.com/resnetgen/resnetgen/shape"
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

func (b Buffer) String() string {
	return fmt.Sprintf("%dx%dx%d with halo %d", b.H, b.W, b.C, b.Halo)
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

// OneBand reports whether the driver runs a layer of shape s in one band of
// rows (ConvKernel.bandRows): its weights outweigh its input. The
// generator's prefetching relies on it (gen/plan's spread prefetch).
func OneBand(s shape.Conv) bool { return s.K*s.K*s.InC*s.OutC >= s.InH*s.InW*s.InC }

// MicroKernel is the signature of every generated convolution kernel: it
// computes n tiles side by side along one tile row (see gen/kernels for the
// meaning of each argument).
type MicroKernel func(in, w, bias, res, out *float32, inRow, outRow, resRow, flags, n uintptr)

// Flags of a MicroKernel call.
const (
	FlagReLU     = 1
	FlagResidual = 2
)

// ConvKernel is a convolution specialised for one shape and tier. Output
// channels come in blocks of BlockC(); each call of a micro-kernel fills a
// row of TH×TW-pixel tiles of one block. The last tile row has RemTH rows
// when TH does not divide OutH, and the last tile of each row RemTW columns
// when TW does not divide OutW; Rem, RemCol and RemCorner compute those.
//
// The generated packages build their tables of ConvKernels; for the
// portable tier, PortableConv makes one for any shape.
type ConvKernel struct {
	Name string
	Tier Tier
	// Variant tells a shape's alternative blockings apart ("" is the
	// generator's rule; "p8" tiles of at most 8 pixels); which runs faster
	// depends on the machine.
	Variant string
	Shape   shape.Conv

	TH, TW, V, Lanes int
	RemTH, RemTW     int
	// ICBlock, if not 0, is the input channels one micro-kernel call
	// reduces over: the driver runs every tile row of a block over one
	// ICBlock-channel slice of its weights (packed slice after slice,
	// PackWeights) before the next, the first slice adding the bias and
	// the residual, the others adding to the output, the last applying
	// ReLU. Each slice is then re-read from L1 (1x1) or L2 (3x3) instead
	// of the whole panel from L2 or memory, and the weights stream from
	// memory steadily (gen/kernels.splitK).
	ICBlock int
	// Main computes full tiles; nil for the portable kernel.
	Main, Rem, RemCol, RemCorner MicroKernel
}

// BlockC is the number of output channels one block (one packed weight
// panel) covers.
func (k *ConvKernel) BlockC() int { return k.V * k.Lanes }

// validate checks that a table entry describes a kernel the driver can run.
func (k *ConvKernel) validate() error {
	s := k.Shape
	bad := func(why string) error { return fmt.Errorf("kernel %s: %s", k.Name, why) }
	switch {
	case !s.Valid():
		return bad(fmt.Sprintf("invalid shape %+v", s))
	case k.TH < 1 || k.TW < 1 || k.V < 1 || k.Lanes < 1 || s.OutC%k.BlockC() != 0:
		return bad(fmt.Sprintf("tile %dx%d of %d×%d channels does not fit %d output channels", k.TH, k.TW, k.V, k.Lanes, s.OutC))
	case k.RemTH != s.OutH%k.TH || k.RemTW != s.OutW%k.TW:
		return bad(fmt.Sprintf("remainders %d, %d; the %dx%d tile leaves %d, %d", k.RemTH, k.RemTW, k.TH, k.TW, s.OutH%k.TH, s.OutW%k.TW))
	case k.ICBlock != 0 && (k.ICBlock < 0 || k.ICBlock >= s.InC || s.InC%k.ICBlock != 0 || k.BlockC() > len(zeroBias) || k.Main == nil):
		return bad(fmt.Sprintf("input channel slices of %d for a %dx%d kernel of %d channels", k.ICBlock, s.K, s.K, s.InC))
	case k.Main == nil && k.Tier != Purego:
		return bad("no micro-kernel")
	case k.Main != nil && (k.RemTH > 0 && k.Rem == nil || k.RemTW > 0 && k.RemCol == nil || k.RemTH > 0 && k.RemTW > 0 && k.RemCorner == nil):
		return bad("a remainder kernel is missing")
	}
	return nil
}

// PortableConv returns the portable Go kernel for shape s: it runs on every
// machine and is what the Purego tier uses.
func PortableConv(s shape.Conv) (*ConvKernel, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("invalid convolution shape %+v", s)
	}
	lanes := 16
	for s.OutC%lanes != 0 {
		lanes /= 2
	}
	return &ConvKernel{Name: s.Name() + "_purego", Tier: Purego, Shape: s, TH: 1, TW: 1, V: 1, Lanes: lanes}, nil
}

// PackWeights reorders OIHW weights (PyTorch's layout, BN already folded)
// into the kernel's order: per block of BlockC output channels and per
// input-channel slice of ICBlock channels (all of InC if 0),
// [ky][kx][ic][BlockC], one linear stream in the order the loops read it.
func (k *ConvKernel) PackWeights(oihw []float32) ([]float32, error) {
	s := k.Shape
	if len(oihw) != s.OutC*s.InC*s.K*s.K {
		return nil, fmt.Errorf("%s: %d weights, want %d×%d×%d×%d", k.Name, len(oihw), s.OutC, s.InC, s.K, s.K)
	}
	bc := k.BlockC()
	icb := s.InC
	if k.ICBlock > 0 {
		icb = k.ICBlock
	}
	p := make([]float32, len(oihw))
	i := 0
	for b := 0; b < s.OutC/bc; b++ {
		for c := 0; c < s.InC; c += icb {
			for ky := 0; ky < s.K; ky++ {
				for kx := 0; kx < s.K; kx++ {
					for ic := c; ic < c+icb; ic++ {
						for j := 0; j < bc; j++ {
							oc := b*bc + j
							p[i] = oihw[((oc*s.InC+ic)*s.K+ky)*s.K+kx]
							i++
						}
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
	if err := in.check(k.Name, "input", s.InH, s.InW, s.InC, s.Pad); err != nil {
		return err
	}
	if err := out.check(k.Name, "output", s.OutH, s.OutW, s.OutC, 0); err != nil {
		return err
	}
	if res != nil {
		if err := res.check(k.Name, "residual", s.OutH, s.OutW, s.OutC, 0); err != nil {
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
// have passed Check. Work splits by tile rows on maps of rowSplitPixels or
// more, and elsewhere by output-channel block where the blocks divide
// evenly (each worker then streams only its share of the weights),
// otherwise by tile rows.
func (k *ConvKernel) RunPart(in, out Buffer, res *Buffer, packed, bias []float32, relu bool, part, parts int) {
	nb := k.Shape.OutC / k.BlockC()
	if nb%parts == 0 && k.Shape.OutH*k.Shape.OutW < rowSplitPixels {
		k.run(in, out, res, packed, bias, relu, 0, k.Shape.OutH, part*nb/parts, (part+1)*nb/parts)
		return
	}
	y0, y1 := SplitRows(k.Shape.OutH, k.TH, part, parts)
	k.run(in, out, res, packed, bias, relu, y0, y1, 0, nb)
}

// rowSplitPixels is the output map size (pixels) from which a layer
// splits by rows. On such maps the Winograd layers split by tile chunks
// and the pools by rows, so a worker keeps its rows of the map in its own
// cache from layer to layer, while a direct layer split by channel blocks
// reads every pixel its neighbours wrote, half of them from the other
// core; these layers' weights are the smaller stream. (Measured:
// docs/bench/history.md.)
const rowSplitPixels = 28 * 28

// RunBlocks computes output channel blocks [b0, b1) of the whole image; the
// arguments must have passed Check. A batch that shares weights runs one
// block over every image before the next block, so the block's weights stay
// in cache.
func (k *ConvKernel) RunBlocks(in, out Buffer, res *Buffer, packed, bias []float32, relu bool, b0, b1 int) {
	k.run(in, out, res, packed, bias, relu, 0, k.Shape.OutH, b0, b1)
}

// Blocks is the number of output-channel blocks (weight panels).
func (k *ConvKernel) Blocks() int { return k.Shape.OutC / k.BlockC() }

// SplitRows gives part its share of n rows in whole tiles of th rows.
func SplitRows(n, th, part, parts int) (y0, y1 int) {
	tiles := (n + th - 1) / th
	y0 = part * tiles / parts * th
	y1 = min(n, (part+1)*tiles/parts*th)
	return y0, max(y0, y1)
}

// run computes output rows [y0, y1) of channel blocks [b0, b1); y0 and y1
// are multiples of TH (or y1 = OutH). The arguments are already checked.
func (k *ConvKernel) run(in, out Buffer, res *Buffer, packed, bias []float32, relu bool, y0, y1, b0, b1 int) {
	if k.Main == nil {
		convGeneric(k, in, out, res, packed, bias, relu, y0, y1, b0, b1)
		return
	}
	var flags uintptr
	if relu {
		flags |= FlagReLU
	}
	var resRow uintptr
	if res != nil {
		flags |= FlagResidual
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
// small ones a single band, so large weights are read once. A layer whose
// weights outweigh its whole input runs in one band whatever its map: each
// further band would read all the weights again, from memory for the
// megabytes of ResNet-50's last stage, while one band only re-reads its
// input per block, the smaller stream. (Measured: docs/bench/history.md.)
func (k *ConvKernel) bandRows() int {
	s := k.Shape
	if OneBand(s) {
		return s.OutH
	}
	perRow := 4 * (s.OutW*s.OutC + s.Stride*s.InW*s.InC)
	rows := max(1, bandBytes/perRow) / k.TH * k.TH
	return max(rows, k.TH)
}

// zeroBias is the bias of every input-channel slice of a split kernel but
// the first (ICBlock): those add to what the first wrote.
var zeroBias [64]float32

func (k *ConvKernel) runBand(in, out Buffer, res *Buffer, packed, bias []float32, flags, inRow, outRow, resRow uintptr, y0, y1, b0, b1 int) {
	s := k.Shape
	bc := k.BlockC()
	panel := s.K * s.K * s.InC * bc
	icb := s.InC
	if k.ICBlock > 0 {
		icb = k.ICBlock
	}
	// Element offsets, worked out once per band: a tile row's first input
	// pixel (its window's top-left, in the halo) and first output pixel,
	// how far the next tile row's are, and where the narrower last tile
	// of a row starts. The micro-kernels are called directly: small maps
	// make thousands of calls per layer (a split 7×7 layer 1,800), and
	// per-call index arithmetic through Buffer.Index showed in profiles.
	full := s.OutW / k.TW
	tx := full * k.TW
	in0, inStep, inTx := in.Index(y0*s.Stride-s.Pad, -s.Pad, 0), k.TH*s.Stride*in.RowStride(), tx*s.Stride*s.InC
	out0, outStep, outTx := out.Index(y0, 0, 0), k.TH*out.RowStride(), tx*s.OutC
	var res0, resStep int
	if res != nil {
		res0, resStep = res.Index(y0, 0, 0), k.TH*res.RowStride()
	}
	for b := b0; b < b1; b++ {
		for c := 0; c < s.InC; c += icb {
			// The first slice adds the bias and the residual; the others
			// add to the output; the last applies ReLU.
			w, bp, f := &packed[b*panel+c*s.K*s.K*bc], &bias[b*bc], flags
			r, ri, rStep, rRow := res, res0, resStep, resRow
			if c > 0 {
				bp, f = &zeroBias[0], f|FlagResidual
				r, ri, rStep, rRow = &out, out0, outStep, outRow
			}
			if c+icb < s.InC {
				f &^= FlagReLU
			}
			ii, oi := in0+c, out0+b*bc
			ri += b * bc
			for ty := y0; ty < y1; ty += k.TH {
				main, rem := k.Main, k.RemCol
				if ty+k.TH > s.OutH {
					main, rem = k.Rem, k.RemCorner
				}
				// The tile row rides in flags' upper bits: a prefetching
				// kernel picks the lines it asks for by it, the others
				// ignore it.
				fr := f | uintptr(ty/k.TH)<<2
				var rp, rpTx *float32
				if r != nil {
					rp = &r.Data[ri]
					if k.RemTW > 0 {
						rpTx = &r.Data[ri+outTx]
					}
				}
				if full > 0 {
					main(&in.Data[ii], w, bp, rp, &out.Data[oi], inRow, outRow, rRow, fr, uintptr(full))
				}
				if k.RemTW > 0 {
					rem(&in.Data[ii+inTx], w, bp, rpTx, &out.Data[oi+outTx], inRow, outRow, rRow, fr, 1)
				}
				ii += inStep
				oi += outStep
				ri += rStep
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
			for ox := 0; ox < s.OutW; ox++ {
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
