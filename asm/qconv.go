package asm

import (
	"fmt"
	"math"

	"github.com/resnetgen/resnetgen/shape"
)

// QBuffer is one image's quantized activation in NHWC order with a zero
// halo, as Buffer is for float32: uint8 values (the ReLU outputs, zero
// point 0) or, for a projection shortcut's output, int8 values stored in
// the same bytes. Its scale lives with the layers that read and write it.
type QBuffer struct {
	Data    []byte
	H, W, C int
	Halo    int
}

// NewQBuffer allocates a zeroed quantized buffer.
func NewQBuffer(h, w, c, halo int) QBuffer {
	b := QBuffer{H: h, W: w, C: c, Halo: halo}
	b.Data = make([]byte, b.Len())
	return b
}

// Len is the number of bytes the buffer spans, halo included.
func (b QBuffer) Len() int { return (b.H + 2*b.Halo) * (b.W + 2*b.Halo) * b.C }

// RowStride is the distance in bytes between vertically adjacent pixels.
func (b QBuffer) RowStride() int { return (b.W + 2*b.Halo) * b.C }

// Index is the position of channel c of interior pixel (y, x).
func (b QBuffer) Index(y, x, c int) int {
	return (y+b.Halo)*b.RowStride() + (x+b.Halo)*b.C + c
}

func (b QBuffer) String() string {
	return fmt.Sprintf("%dx%dx%d bytes with halo %d", b.H, b.W, b.C, b.Halo)
}

func (b QBuffer) check(name, role string, h, w, c, minHalo int) error {
	if b.H != h || b.W != w || b.C != c || b.Halo < minHalo || b.Halo < 0 {
		return fmt.Errorf("%s %s is %dx%dx%d with halo %d, want %dx%dx%d with halo ≥ %d", name, role, b.H, b.W, b.C, b.Halo, h, w, c, minHalo)
	}
	if len(b.Data) != b.Len() {
		return fmt.Errorf("%s %s holds %d bytes, its shape needs %d", name, role, len(b.Data), b.Len())
	}
	return nil
}

// QMicroKernel is the signature of every generated int8 convolution
// kernel: n tiles side by side along one tile row, as MicroKernel, with
// uint8 inputs (zero point 0), int8 weights packed for the tier, int32
// accumulators and a float32 epilogue (QEpilogue): in and res address
// bytes, scale and bias the block's first output channel, resScale the
// residual's scale and outInv the reciprocal of the output's.
type QMicroKernel func(in, w *byte, scale, bias *float32, res, out *byte, inRow, outRow, resRow uintptr, resScale, outInv float32, flags, n uintptr)

// Flags of a QMicroKernel call.
const (
	QFlagReLU      = 1  // max(0, ·) before requantizing
	QFlagResidual  = 2  // add the residual, dequantized
	QFlagResSigned = 4  // the residual holds int8 (a projection's output), not uint8
	QFlagOutSigned = 8  // store int8 (no ReLU: a projection shortcut) instead of uint8
	QFlagRaw       = 16 // store the int32 accumulators (out then holds int32, OutC·4 bytes a pixel): for tests
)

// QEpilogue is what turns a quantized convolution's int32 accumulators into
// its output: y = acc·Scale[oc] + Bias[oc] (+ ResScale·residual), then
// ReLU, then q = round(y·OutInv) clamped to uint8 (or int8 for a signed
// output), rounding half to even. Scale[oc] is the input's scale times the
// output channel's weight scale. Every tier computes it in float32 in this
// order, with a separate multiply and add for the residual (no fused
// multiply-add), so the tiers agree bit for bit.
type QEpilogue struct {
	Scale, Bias []float32 // per output channel
	ResScale    float32   // the residual's scale (0: no residual)
	OutInv      float32   // 1 / the output's scale
	ReLU        bool
	ResSigned   bool // the residual is int8
	OutSigned   bool // the output is int8 (a projection shortcut: no ReLU)
}

// QConvKernel is an int8 convolution specialised for one shape and tier,
// with ConvKernel's tiles, blocks and remainders. Input channels come in
// groups of four (one VPDPBUSD dword): InC must be a multiple of 4.
type QConvKernel struct {
	Name    string
	Tier    Tier
	Variant string
	Shape   shape.Conv

	TH, TW, V, Lanes int
	RemTH, RemTW     int
	// Main computes full tiles; nil for the portable kernel.
	Main, Rem, RemCol, RemCorner QMicroKernel
}

// BlockC is the output channels one block (one packed weight panel) covers.
func (k *QConvKernel) BlockC() int { return k.V * k.Lanes }

// Blocks is the number of output-channel blocks.
func (k *QConvKernel) Blocks() int { return k.Shape.OutC / k.BlockC() }

func (k *QConvKernel) validate() error {
	s := k.Shape
	bad := func(why string) error { return fmt.Errorf("int8 kernel %s: %s", k.Name, why) }
	switch {
	case !s.Valid():
		return bad(fmt.Sprintf("invalid shape %+v", s))
	case s.InC%4 != 0:
		return bad(fmt.Sprintf("%d input channels: int8 kernels take them in groups of 4", s.InC))
	case k.TH < 1 || k.TW < 1 || k.V < 1 || k.Lanes < 1 || s.OutC%k.BlockC() != 0:
		return bad(fmt.Sprintf("tile %dx%d of %d×%d channels does not fit %d output channels", k.TH, k.TW, k.V, k.Lanes, s.OutC))
	case k.RemTH != s.OutH%k.TH || k.RemTW != s.OutW%k.TW:
		return bad(fmt.Sprintf("remainders %d, %d; the %dx%d tile leaves %d, %d", k.RemTH, k.RemTW, k.TH, k.TW, s.OutH%k.TH, s.OutW%k.TW))
	case k.Main == nil && k.Tier != Purego:
		return bad("no micro-kernel")
	case k.Main != nil && (k.RemTH > 0 && k.Rem == nil || k.RemTW > 0 && k.RemCol == nil || k.RemTH > 0 && k.RemTW > 0 && k.RemCorner == nil):
		return bad("a remainder kernel is missing")
	case k.Tier != Purego && k.Tier != VNNI && k.Tier != AVX2:
		return bad(fmt.Sprintf("int8 kernels run on vnni, avx2 or purego, not %v", k.Tier))
	}
	return nil
}

// Int8Shape is the shape of s's int8 kernel: s, or for a stem of fewer
// than 4 input channels the same convolution on 4 (int8 kernels take input
// channels in groups of four; the stem's input is quantized into 4-byte
// pixels, QInputKernel, and its fourth channel's weights are zero).
func Int8Shape(s shape.Conv) shape.Conv {
	if s.InC < 4 {
		s.InC = 4
	}
	return s
}

// PortableQConv returns the portable int8 kernel for shape s: exact int32
// accumulation in Go, the weights packed as for VNNI, and the same
// epilogue as every tier.
func PortableQConv(s shape.Conv) (*QConvKernel, error) {
	k := &QConvKernel{Name: "q" + s.Name() + "_purego", Tier: Purego, Shape: s, TH: 1, TW: 1, V: 1, Lanes: 16}
	for s.OutC%k.Lanes != 0 && k.Lanes > 1 {
		k.Lanes /= 2
	}
	if err := k.validate(); err != nil {
		return nil, err
	}
	return k, nil
}

// widened reports whether the tier's packed weights are int16 (AVX2, whose
// VPMADDWD multiplies pairs of int16) instead of int8.
func (k *QConvKernel) widened() bool { return k.Tier == AVX2 }

// PackedLen is the length in bytes of the packed weights.
func (k *QConvKernel) PackedLen() int {
	n := k.Shape.OutC * k.Shape.InC * k.Shape.K * k.Shape.K
	if k.widened() {
		return 2 * n
	}
	return n
}

// PackWeights reorders OIHW int8 weights into the kernel's order: per block
// of BlockC output channels, per tap (ky, kx) and per group of four input
// channels, the block's channels each with its four weights — [ky][kx][ic/4]
// [BlockC][4], the operand of VPDPBUSD (16 lanes of 4 bytes) — or, for
// AVX2, widened to int16 and paired for VPMADDWD: per vector of 8 output
// channels, input channels (0,1) of each, then (2,3) — [ky][kx][ic/4][V][2]
// [8][2] int16.
func (k *QConvKernel) PackWeights(oihw []int8) ([]byte, error) {
	s := k.Shape
	if len(oihw) != s.OutC*s.InC*s.K*s.K {
		return nil, fmt.Errorf("%s: %d weights, want %d×%d×%d×%d", k.Name, len(oihw), s.OutC, s.InC, s.K, s.K)
	}
	bc := k.BlockC()
	w := func(oc, ic, ky, kx int) int8 { return oihw[((oc*s.InC+ic)*s.K+ky)*s.K+kx] }
	p := make([]byte, 0, k.PackedLen())
	for b := 0; b < s.OutC/bc; b++ {
		for ky := 0; ky < s.K; ky++ {
			for kx := 0; kx < s.K; kx++ {
				for c := 0; c < s.InC; c += 4 {
					if !k.widened() {
						for j := 0; j < bc; j++ {
							for i := 0; i < 4; i++ {
								p = append(p, byte(w(b*bc+j, c+i, ky, kx)))
							}
						}
						continue
					}
					for v := 0; v < k.V; v++ {
						for half := 0; half < 2; half++ {
							for j := 0; j < k.Lanes; j++ {
								for i := 0; i < 2; i++ {
									x := uint16(int16(w(b*bc+v*k.Lanes+j, c+2*half+i, ky, kx)))
									p = append(p, byte(x), byte(x>>8))
								}
							}
						}
					}
				}
			}
		}
	}
	return p, nil
}

// Check reports whether Run and RunPart accept these arguments: out holds
// the output (uint8 or int8), or with raw its int32 accumulators in a
// buffer of 4 bytes a value (C = 4·OutC).
func (k *QConvKernel) Check(in, out QBuffer, res *QBuffer, packed []byte, e *QEpilogue, raw bool) error {
	s := k.Shape
	if err := k.validate(); err != nil {
		return err
	}
	if err := in.check(k.Name, "input", s.InH, s.InW, s.InC, s.Pad); err != nil {
		return err
	}
	oc := s.OutC
	if raw {
		oc *= 4
	}
	if err := out.check(k.Name, "output", s.OutH, s.OutW, oc, 0); err != nil {
		return err
	}
	if res != nil {
		if err := res.check(k.Name, "residual", s.OutH, s.OutW, s.OutC, 0); err != nil {
			return err
		}
	}
	if len(packed) != k.PackedLen() || len(e.Scale) != s.OutC || len(e.Bias) != s.OutC {
		return fmt.Errorf("%s: %d packed weight bytes, %d scales and %d biases, want %d, %d and %d",
			k.Name, len(packed), len(e.Scale), len(e.Bias), k.PackedLen(), s.OutC, s.OutC)
	}
	if !raw && !e.ReLU && !e.OutSigned {
		return fmt.Errorf("%s: a uint8 output needs a ReLU before it (or a signed output)", k.Name)
	}
	if res != nil && e.ResScale == 0 || res == nil && e.ResScale != 0 {
		return fmt.Errorf("%s: residual scale %v for %s residual", k.Name, e.ResScale, map[bool]string{true: "a", false: "no"}[res != nil])
	}
	return nil
}

// Run computes the whole layer (see Check for raw).
func (k *QConvKernel) Run(in, out QBuffer, res *QBuffer, packed []byte, e *QEpilogue, raw bool) error {
	if err := k.Check(in, out, res, packed, e, raw); err != nil {
		return err
	}
	k.run(in, out, res, packed, e, raw, 0, k.Shape.OutH, 0, k.Blocks())
	return nil
}

// RunPart computes part part of parts of the layer, split as
// ConvKernel.RunPart splits; the arguments must have passed Check.
func (k *QConvKernel) RunPart(in, out QBuffer, res *QBuffer, packed []byte, e *QEpilogue, part, parts int) {
	nb := k.Blocks()
	if nb%parts == 0 && k.Shape.OutH*k.Shape.OutW < rowSplitPixels {
		k.run(in, out, res, packed, e, false, 0, k.Shape.OutH, part*nb/parts, (part+1)*nb/parts)
		return
	}
	y0, y1 := SplitRows(k.Shape.OutH, k.TH, part, parts)
	k.run(in, out, res, packed, e, false, y0, y1, 0, nb)
}

// RunPartRaw is RunPart storing the int32 accumulators (for tests).
func (k *QConvKernel) RunPartRaw(in, out QBuffer, packed []byte, e *QEpilogue, part, parts int) {
	y0, y1 := SplitRows(k.Shape.OutH, k.TH, part, parts)
	k.run(in, out, nil, packed, e, true, y0, y1, 0, k.Blocks())
}

// qBandBytes is how much input and output one band of rows may touch: as
// bandBytes for float32, a band stays in L2 while every block reads it.
const qBandBytes = 512 << 10

// bandRows is ConvKernel.bandRows for bytes.
func (k *QConvKernel) bandRows() int {
	s := k.Shape
	if OneBand(s) {
		return s.OutH
	}
	perRow := s.OutW*s.OutC + s.Stride*s.InW*s.InC
	rows := max(1, qBandBytes/perRow) / k.TH * k.TH
	return max(rows, k.TH)
}

func (k *QConvKernel) run(in, out QBuffer, res *QBuffer, packed []byte, e *QEpilogue, raw bool, y0, y1, b0, b1 int) {
	if k.Main == nil {
		qconvGeneric(k, in, out, res, packed, e, raw, y0, y1, b0, b1)
		return
	}
	s := k.Shape
	var flags uintptr
	if e.ReLU {
		flags |= QFlagReLU
	}
	if e.OutSigned {
		flags |= QFlagOutSigned
	}
	if raw {
		flags |= QFlagRaw
	}
	var resRow uintptr
	if res != nil {
		flags |= QFlagResidual
		resRow = uintptr(res.RowStride())
		if e.ResSigned {
			flags |= QFlagResSigned
		}
	}
	inRow, outRow := uintptr(in.RowStride()), uintptr(out.RowStride())
	bc := k.BlockC()
	panel := s.K * s.K * s.InC * bc
	if k.widened() {
		panel *= 2
	}
	osz := 1 // output bytes per value
	if raw {
		osz = 4
	}
	full := s.OutW / k.TW
	tx := full * k.TW
	band := k.bandRows()
	for by := y0; by < y1; by += band {
		ey := min(by+band, y1)
		in0, inStep, inTx := in.Index(by*s.Stride-s.Pad, -s.Pad, 0), k.TH*s.Stride*in.RowStride(), tx*s.Stride*s.InC
		out0, outStep, outTx := out.Index(by, 0, 0), k.TH*out.RowStride(), tx*s.OutC*osz
		var res0, resStep int
		if res != nil {
			res0, resStep = res.Index(by, 0, 0), k.TH*res.RowStride()
		}
		for b := b0; b < b1; b++ {
			w, sc, bias := &packed[b*panel], &e.Scale[b*bc], &e.Bias[b*bc]
			ii, oi, ri := in0, out0+b*bc*osz, res0+b*bc
			for ty := by; ty < ey; ty += k.TH {
				main, rem := k.Main, k.RemCol
				if ty+k.TH > s.OutH {
					main, rem = k.Rem, k.RemCorner
				}
				fr := flags | uintptr(ty/k.TH)<<8
				var rp, rpTx *byte
				if res != nil {
					rp = &res.Data[ri]
					if k.RemTW > 0 {
						rpTx = &res.Data[ri+tx*s.OutC]
					}
				}
				if full > 0 {
					main(&in.Data[ii], w, sc, bias, rp, &out.Data[oi], inRow, outRow, resRow, e.ResScale, e.OutInv, fr, uintptr(full))
				}
				if k.RemTW > 0 {
					rem(&in.Data[ii+inTx], w, sc, bias, rpTx, &out.Data[oi+outTx], inRow, outRow, resRow, e.ResScale, e.OutInv, fr, 1)
				}
				ii += inStep
				oi += outStep
				ri += resStep
			}
		}
	}
}

// Requantize is the epilogue of one output value (QEpilogue), as every
// tier computes it: acc·scale + bias (+ resScale·res), ReLU, then ·outInv
// rounded half to even and clamped to [lo, hi].
func Requantize(acc int32, scale, bias, resScale float32, res int32, hasRes, relu bool, outInv float32, lo, hi int32) int32 {
	// The conversions round each product to float32 and keep Go from
	// fusing it with the addition (which arm64 would): the asm kernels
	// multiply, then add.
	y := float32(float32(acc)*scale) + bias
	if hasRes {
		y += float32(float32(res) * resScale)
	}
	if relu {
		y = max(y, 0)
	}
	y = min(max(y*outInv, float32(lo)), float32(hi))
	return int32(math.RoundToEven(float64(y)))
}

// qconvGeneric is the portable int8 kernel: the VNNI packed layout read in
// the same order, int32 accumulation, the shared epilogue.
func qconvGeneric(k *QConvKernel, in, out QBuffer, res *QBuffer, packed []byte, e *QEpilogue, raw bool, y0, y1, b0, b1 int) {
	s := k.Shape
	bc := k.BlockC()
	panel := s.K * s.K * s.InC * bc
	var acc [64]int32
	a := acc[:bc]
	lo, hi := int32(0), int32(255)
	if e.OutSigned {
		lo, hi = -128, 127
	}
	for b := b0; b < b1; b++ {
		for oy := y0; oy < y1; oy++ {
			for ox := 0; ox < s.OutW; ox++ {
				clear(a)
				w := packed[b*panel : (b+1)*panel]
				for ky := 0; ky < s.K; ky++ {
					for kx := 0; kx < s.K; kx++ {
						px := in.Data[in.Index(oy*s.Stride-s.Pad+ky, ox*s.Stride-s.Pad+kx, 0):][:s.InC]
						for c := 0; c < s.InC; c += 4 {
							x0, x1, x2, x3 := int32(px[c]), int32(px[c+1]), int32(px[c+2]), int32(px[c+3])
							for j := range a {
								q := w[4*j : 4*j+4 : 4*j+4]
								a[j] += x0*int32(int8(q[0])) + x1*int32(int8(q[1])) + x2*int32(int8(q[2])) + x3*int32(int8(q[3]))
							}
							w = w[4*bc:]
						}
					}
				}
				if raw {
					o := out.Data[out.Index(oy, ox, 4*b*bc):][:4*bc]
					for j, v := range a {
						o[4*j], o[4*j+1], o[4*j+2], o[4*j+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
					}
					continue
				}
				o := out.Data[out.Index(oy, ox, b*bc):][:bc]
				var r []byte
				if res != nil {
					r = res.Data[res.Index(oy, ox, b*bc):][:bc]
				}
				for j, v := range a {
					var rv int32
					if r != nil {
						rv = int32(r[j])
						if e.ResSigned {
							rv = int32(int8(r[j]))
						}
					}
					oc := b*bc + j
					o[j] = byte(Requantize(v, e.Scale[oc], e.Bias[oc], e.ResScale, rv, r != nil, e.ReLU, e.OutInv, lo, hi))
				}
			}
		}
	}
}

// QMaxPoolKernel is the 3x3/2 max pool (padding 1) on uint8 activations of
// C channels: the int8 network's pool after its stem, on any map size. As
// for MaxPoolKernel, the input follows a ReLU (values ≥ 0, zero point 0)
// and its halo of at least 1 is zero, which then equals −∞ padding; max
// commutes with the monotone quantization, so the pool of the quantized
// values is the quantized pool.
type QMaxPoolKernel struct {
	Name string
	Tier Tier
	C    int
	// F pools n output pixels of one row (as MaxPoolKernel.F, in bytes);
	// nil for the portable kernel.
	F func(in, out *byte, inRow, n uintptr)
}

// PortableQMaxPool returns the portable uint8 max pool for c channels.
func PortableQMaxPool(c int) (*QMaxPoolKernel, error) {
	if c < 1 {
		return nil, fmt.Errorf("max pool of %d channels", c)
	}
	return &QMaxPoolKernel{Name: fmt.Sprintf("qmaxpool3x3s2_c%d_purego", c), Tier: Purego, C: c}, nil
}

// Check reports whether RunPart accepts these buffers.
func (k *QMaxPoolKernel) Check(in, out QBuffer) error {
	if err := in.check(k.Name, "input", in.H, in.W, k.C, 1); err != nil {
		return err
	}
	return out.check(k.Name, "output", PooledSide(in.H), PooledSide(in.W), k.C, 0)
}

// RunPart pools part of parts of the output rows (buffers checked).
func (k *QMaxPoolKernel) RunPart(in, out QBuffer, part, parts int) {
	y0, y1 := SplitRows(out.H, 1, part, parts)
	for oy := y0; oy < y1; oy++ {
		if k.F != nil {
			k.F(&in.Data[in.Index(2*oy-1, -1, 0)], &out.Data[out.Index(oy, 0, 0)], uintptr(in.RowStride()), uintptr(out.W))
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

// QInputKernel quantizes a float32 CHW image of 3 channels into the int8
// stem's input: 4-byte NHWC pixels, u = clamp(round(clamp(x/scale, −256,
// 256)) + zp, 0, 255) per channel (rounding half to even), with the zero
// point zp of the calibration (the image is signed, and an asymmetric range
// keeps all 256 levels), zp in the fourth channel, whose weights are zero.
// The buffer's halo holds zp (the real zero), set once by whoever makes it.
type QInputKernel struct {
	Name  string
	Tier  Tier
	Lanes int // pixels F takes at a time
	// F quantizes n pixels (a multiple of Lanes) of the three planes;
	// nil for the portable kernel.
	F func(red, green, blue *float32, out *byte, n uintptr, inv float32, zp uintptr)
}

// PortableQInput returns the portable input quantizer.
func PortableQInput() *QInputKernel {
	return &QInputKernel{Name: "qinput_purego", Tier: Purego, Lanes: 1}
}

// Check reports whether Run accepts a CHW image of len floats and out.
func (k *QInputKernel) Check(n int, out QBuffer) error {
	if err := out.check(k.Name, "output", out.H, out.W, 4, 0); err != nil {
		return err
	}
	if n != 3*out.H*out.W {
		return fmt.Errorf("%s: %d floats for a 3×%d×%d image", k.Name, n, out.H, out.W)
	}
	return nil
}

// Run quantizes rows [y0, y1) of the CHW image chw into out with 1/scale
// inv and zero point zp (arguments checked).
func (k *QInputKernel) Run(chw []float32, out QBuffer, inv float32, zp uint8, y0, y1 int) {
	plane := out.H * out.W
	for y := y0; y < y1; y++ {
		x0 := 0
		if k.F != nil && out.W >= k.Lanes {
			n := out.W / k.Lanes * k.Lanes
			k.F(&chw[y*out.W], &chw[plane+y*out.W], &chw[2*plane+y*out.W], &out.Data[out.Index(y, 0, 0)], uintptr(n), inv, uintptr(zp))
			x0 = n
		}
		for x := x0; x < out.W; x++ {
			o := out.Data[out.Index(y, x, 0):][:4]
			for c := 0; c < 3; c++ {
				v := min(max(float32(chw[c*plane+y*out.W+x]*inv), -256), 256)
				o[c] = byte(min(max(math.RoundToEven(float64(v))+float64(zp), 0), 255))
			}
			o[3] = zp
		}
	}
}
