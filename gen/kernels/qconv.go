package kernels

import (
	"fmt"

	"github.com/mmcloughlin/avo/attr"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"github.com/resnetgen/resnetgen/gen/plan"
)

// qconvSignature is the Go signature of every int8 convolution kernel
// (asm.QMicroKernel): the contract of convSignature with uint8 inputs,
// packed int8 (VNNI) or int16 (AVX2) weights, the block's per-channel
// scales and biases, the residual's scale and the output's reciprocal
// scale. flags: 1 ReLU, 2 add res, 4 res is int8, 8 out is int8, 16 store
// the int32 accumulators (out then holds OutC·4 bytes a pixel); bits 8 and
// up the tile row (unused so far).
const qconvSignature = "func(in, w *byte, scale, bias *float32, res, out *byte, inRow, outRow, resRow uintptr, resScale, outInv float32, flags, n uintptr)"

// Flag bits of qconvSignature (asm.QFlag*).
const (
	qReLU      = 1
	qResidual  = 2
	qResSigned = 4
	qOutSigned = 8
	qRaw       = 16
)

// emitQConv writes one int8 micro-kernel computing a row of th×TW-pixel
// tiles of V vectors of int32 accumulators. Per tile: accumulators start at
// zero; the loop over ky (a counter), kx (unrolled) and groups of 4 input
// channels (a counter, unrolled by u) broadcasts one dword of 4 uint8
// inputs per pixel and adds its products with V vectors of weights; the
// epilogue (asm.QEpilogue) converts to float32, scales, adds bias and
// residual, applies ReLU, requantizes and stores bytes — or, with the raw
// flag, stores the accumulators.
func (e emitter) emitQConv(name string, s plan.Shape, b plan.Blocking, th, tw int) {
	t := e.t
	vnni := t.Name == plan.VNNI.Name
	lanes := t.Lanes
	bc := b.V * lanes
	groups := s.InC / 4
	u := plan.Unroll(groups)
	px := s.Stride * s.InC // input bytes between adjacent output pixels
	r := th * tw
	e.Function(name)
	e.Attributes(attr.NOSPLIT)
	e.SignatureExpr(qconvSignature)
	e.Doc(fmt.Sprintf("%s computes n %dx%d-pixel by %d-channel tiles of an int8 %dx%d stride-%d convolution,", name, th, tw, bc, s.K, s.K, s.Stride),
		fmt.Sprintf("%d→%d channels on a %dx%d input: uint8 inputs × int8 weights in int32, requantized to bytes.", s.InC, s.OutC, s.InH, s.InW))

	in := e.Load(e.Param("in"), e.GP64())
	out := e.Load(e.Param("out"), e.GP64())
	res := e.Load(e.Param("res"), e.GP64())
	n := e.Load(e.Param("n"), e.GP64())
	var maskA, maskB reg.VecVirtual
	if !vnni {
		// VPSHUFB controls that spread a dword's bytes c0 c1 c2 c3 into
		// the int16 pairs (c0, c1) and (c2, c3) of every dword lane.
		maskA, maskB = e.vec(), e.vec()
		for _, m := range []struct {
			r reg.VecVirtual
			v uint32
		}{{maskA, 0x80018000}, {maskB, 0x80038002}} {
			g := e.GP32()
			e.MOVL(U32(m.v), g)
			e.MOVD(g, m.r.AsX())
			e.VPBROADCASTD(m.r.AsX(), m.r)
		}
	}
	e.Label(name + "_tile")
	acc := make([][]reg.VecVirtual, r)
	for p := range acc {
		acc[p] = make([]reg.VecVirtual, b.V)
		for v := range acc[p] {
			acc[p][v] = e.vec()
			e.VXORPS(acc[p][v], acc[p][v], acc[p][v])
		}
	}
	inRow, rows := e.tileRows(in, th, s.Stride)
	w := e.Load(e.Param("w"), e.GP64())
	ky := e.GP64()
	e.MOVQ(U64(s.K), ky)
	e.Label(name + "_ky")
	off := e.GP64() // byte offset of the current group of input channels
	groupBytes := 4 * bc
	if !vnni {
		groupBytes = 2 * 4 * bc // int16
	}
	for kx := 0; kx < s.K; kx++ {
		e.XORQ(off, off)
		loop := fmt.Sprintf("%s_kx%d_ic", name, kx)
		e.Label(loop)
		for ui := 0; ui < u; ui++ {
			if vnni {
				wv := make([]reg.VecVirtual, b.V)
				for v := range wv {
					wv[v] = e.vec()
					e.VMOVDQU32(Mem{Base: w, Disp: ui*groupBytes + v*64}, wv[v])
				}
				for ty := 0; ty < th; ty++ {
					for tx := 0; tx < tw; tx++ {
						x := e.vec()
						e.VPBROADCASTD(Mem{Base: rows[ty], Index: off, Scale: 1, Disp: kx*s.InC + tx*px + ui*4}, x)
						for v := 0; v < b.V; v++ {
							e.VPDPBUSD(wv[v], x, acc[ty*tw+tx][v])
						}
					}
				}
				continue
			}
			for ty := 0; ty < th; ty++ {
				for tx := 0; tx < tw; tx++ {
					x, lo := e.vec(), e.vec()
					e.VPBROADCASTD(Mem{Base: rows[ty], Index: off, Scale: 1, Disp: kx*s.InC + tx*px + ui*4}, x)
					e.VPSHUFB(maskA, x, lo)
					e.VPSHUFB(maskB, x, x)
					for v := 0; v < b.V; v++ {
						a := acc[ty*tw+tx][v]
						prod := e.vec()
						e.VPMADDWD(Mem{Base: w, Disp: ui*groupBytes + v*64}, lo, prod)
						e.VPADDD(prod, a, a)
						prod = e.vec()
						e.VPMADDWD(Mem{Base: w, Disp: ui*groupBytes + v*64 + 32}, x, prod)
						e.VPADDD(prod, a, a)
					}
				}
			}
		}
		e.ADDQ(U32(u*groupBytes), w)
		e.ADDQ(U32(u*4), off)
		e.CMPQ(off, U32(s.InC))
		e.JNE(LabelRef(loop))
	}
	for ty := range rows {
		e.ADDQ(inRow, rows[ty])
	}
	e.DECQ(ky)
	e.JNZ(LabelRef(name + "_ky"))

	vb := lanes * 4 // bytes of a vector of int32 or float32
	flags := e.Load(e.Param("flags"), e.GP64())
	e.TESTQ(U32(qRaw), flags)
	e.JZ(LabelRef(name + "_quant"))
	// Raw: the int32 accumulators, OutC·4 bytes a pixel.
	p := 0
	e.forPixels(out, "outRow", th, tw, 4*s.OutC, func(row reg.Register, disp int) {
		for v := 0; v < b.V; v++ {
			e.VMOVDQU32orY(acc[p][v], Mem{Base: row, Disp: disp + v*vb})
		}
		p++
	})
	e.ADDQ(U32(3*tw*s.OutC), out) // the 3 bytes a value more than below
	e.JMP(LabelRef(name + "_next"))

	e.Label(name + "_quant")
	scale := e.Load(e.Param("scale"), e.GP64())
	bias := e.Load(e.Param("bias"), e.GP64())
	for p := range acc {
		for v := range acc[p] {
			a := acc[p][v]
			e.VCVTDQ2PS(a, a)
			e.VMULPS(Mem{Base: scale, Disp: v * vb}, a, a)
			e.VADDPS(Mem{Base: bias, Disp: v * vb}, a, a)
		}
	}
	e.TESTQ(U32(qResidual), flags)
	e.JZ(LabelRef(name + "_nores"))
	rs := e.vec()
	e.VBROADCASTSS(e.paramAddr("resScale"), rs)
	for _, signed := range []bool{false, true} {
		label := name + "_resu"
		if signed {
			label = name + "_ress"
			e.Label(label)
		} else {
			e.TESTQ(U32(qResSigned), flags)
			e.JNZ(LabelRef(name + "_ress"))
		}
		p := 0
		e.forPixels(res, "resRow", th, tw, s.OutC, func(row reg.Register, disp int) {
			for v := 0; v < b.V; v++ {
				x := e.vec()
				m := Mem{Base: row, Disp: disp + v*lanes}
				if signed {
					e.VPMOVSXBD(m, x)
				} else {
					e.VPMOVZXBD(m, x)
				}
				e.VCVTDQ2PS(x, x)
				e.VMULPS(rs, x, x)
				e.VADDPS(x, acc[p][v], acc[p][v])
			}
			p++
		})
		if !signed {
			e.JMP(LabelRef(name + "_nores"))
		}
	}
	e.Label(name + "_nores")
	zero := e.vec()
	e.VXORPS(zero, zero, zero)
	e.TESTQ(U32(qReLU), flags)
	e.JZ(LabelRef(name + "_norelu"))
	for p := range acc {
		for v := range acc[p] {
			e.VMAXPS(zero, acc[p][v], acc[p][v])
		}
	}
	e.Label(name + "_norelu")
	inv := e.vec()
	e.VBROADCASTSS(e.paramAddr("outInv"), inv)
	for p := range acc {
		for v := range acc[p] {
			e.VMULPS(inv, acc[p][v], acc[p][v])
		}
	}
	// Store: round half to even (MXCSR's default), saturate to bytes.
	for _, signed := range []bool{false, true} {
		if signed {
			e.Label(name + "_outs")
		} else {
			e.TESTQ(U32(qOutSigned), flags)
			e.JNZ(LabelRef(name + "_outs"))
		}
		var lo, hi reg.VecVirtual
		if !vnni {
			// AVX2 packs through int16, whose signed saturation would
			// wrap values past 32767: clamp in float32 first (as the
			// portable kernel does; VNNI's VPMOVUSDB/VPMOVSDB saturate
			// the int32 directly).
			lo, hi = e.vec(), e.vec()
			l, h := float32(0), float32(255)
			if signed {
				l, h = -128, 127
			}
			e.broadcastConst(l, lo)
			e.broadcastConst(h, hi)
		}
		p := 0
		e.forPixels(out, "outRow", th, tw, s.OutC, func(row reg.Register, disp int) {
			for v := 0; v < b.V; v++ {
				a := acc[p][v]
				m := Mem{Base: row, Disp: disp + v*lanes}
				if vnni {
					e.VCVTPS2DQ(a, a)
					// Narrowed into a register, then stored: the memory
					// forms of VPMOV*DB are microcoded on Zen 4 and 5.
					x := e.XMM()
					if signed {
						e.VPMOVSDB(a, x)
					} else {
						e.VPMOVUSDB(a, x)
					}
					e.VMOVDQU32(x, m)
					continue
				}
				e.VMAXPS(lo, a, a)
				e.VMINPS(hi, a, a)
				e.VCVTPS2DQ(a, a)
				// 8 int32 → 8 bytes: pack within each 128-bit lane, then
				// join the two lanes' first dwords.
				if signed {
					e.VPACKSSDW(a, a, a)
					e.VPACKSSWB(a, a, a)
				} else {
					e.VPACKUSDW(a, a, a)
					e.VPACKUSWB(a, a, a)
				}
				h := e.XMM()
				e.VEXTRACTI128(U8(1), a, h)
				e.VPUNPCKLDQ(h, a.AsX(), h)
				e.VMOVQ(h, m)
			}
			p++
		})
		if !signed {
			e.JMP(LabelRef(name + "_next"))
		}
	}
	e.Label(name + "_next")
	e.ADDQ(U32(tw*px), in)
	e.ADDQ(U32(tw*s.OutC), out)
	e.ADDQ(U32(tw*s.OutC), res)
	e.DECQ(n)
	e.JNZ(LabelRef(name + "_tile"))
	e.VZEROUPPER()
	e.RET()
}

// VMOVDQU32orY stores a vector of int32: VMOVDQU32 for zmm, VMOVDQU for ymm.
func (e emitter) VMOVDQU32orY(x reg.VecVirtual, m Mem) {
	if e.t.Lanes == 16 {
		e.VMOVDQU32(x, m)
		return
	}
	e.VMOVDQU(x, m)
}

// paramAddr is the stack address of a scalar argument (an EVEX broadcast
// reads it directly: SSE moves cannot reach X16–X31).
func (e emitter) paramAddr(name string) Mem {
	b, err := e.Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	return b.Addr
}

// broadcastConst sets every lane of x to c.
func (e emitter) broadcastConst(c float32, x reg.VecVirtual) {
	g := e.GP32()
	e.MOVL(U32(f32bits(c)), g)
	e.MOVD(g, x.AsX())
	e.VBROADCASTSS(x.AsX(), x)
}

// emitQMaxPool writes func(in, out *byte, inRow, n uintptr): n output pixels
// of one row of a 3x3/2 max pool on C uint8 channels (the zero halo is the
// padding: the input follows a ReLU, so every value is ≥ 0, as for
// float32), VPMAXUB on whole vectors of bytes.
func (e emitter) emitQMaxPool(name string, s plan.Pool) {
	vb := 4 * e.t.Lanes // bytes per vector
	nv := s.C / vb
	if nv*vb != s.C {
		panic(fmt.Sprintf("%s: %d channels are not whole %d-byte vectors", name, s.C, vb))
	}
	e.Function(name)
	e.Attributes(attr.NOSPLIT)
	e.SignatureExpr("func(in, out *byte, inRow, n uintptr)")
	e.Doc(fmt.Sprintf("%s max-pools n output pixels of one row of %d uint8 channels, 3x3 windows, stride 2.", name, s.C))
	in := e.Load(e.Param("in"), e.GP64())
	out := e.Load(e.Param("out"), e.GP64())
	row := e.Load(e.Param("inRow"), e.GP64())
	r1, r2 := e.GP64(), e.GP64()
	e.LEAQ(Mem{Base: in, Index: row, Scale: 1}, r1)
	e.LEAQ(Mem{Base: in, Index: row, Scale: 2}, r2)
	n := e.Load(e.Param("n"), e.GP64())
	e.TESTQ(n, n)
	e.JZ(LabelRef(name + "_done"))
	e.Label(name + "_px")
	for v := 0; v < nv; v++ {
		x := e.vec()
		e.movBytes(Mem{Base: in, Disp: v * vb}, x)
		for _, base := range []reg.Register{in, r1, r2} {
			for kx := 0; kx < 3; kx++ {
				if base == in && kx == 0 {
					continue
				}
				e.VPMAXUB(Mem{Base: base, Disp: kx*s.C + v*vb}, x, x)
			}
		}
		e.movBytes(x, Mem{Base: out, Disp: v * vb})
	}
	for _, p := range []reg.Register{in, r1, r2} {
		e.ADDQ(U32(2*s.C), p)
	}
	e.ADDQ(U32(s.C), out)
	e.DECQ(n)
	e.JNZ(LabelRef(name + "_px"))
	e.Label(name + "_done")
	e.VZEROUPPER()
	e.RET()
}

// movBytes moves a vector of bytes (VMOVDQU64 for zmm, VMOVDQU for ymm).
func (e emitter) movBytes(src, dst Op) {
	if e.t.Lanes == 16 {
		e.VMOVDQU64(src, dst)
		return
	}
	e.VMOVDQU(src, dst)
}

// emitQInput writes func(red, green, blue *float32, out *byte, n uintptr,
// inv float32, zp uintptr): n pixels (a multiple of the tier's lanes) of a
// float32 CHW image's three planes quantized into 4-byte NHWC pixels with
// zero point zp: clamp(round(clamp(x·inv, −256, 256)) + zp, 0, 255) per
// channel (the first clamp keeps the conversion from the integer
// indefinite past ±2³¹), zp in the fourth (the int8 stem's weights there
// are zero).
func (e emitter) emitQInput(name string) {
	lanes := e.t.Lanes
	e.Function(name)
	e.Attributes(attr.NOSPLIT)
	e.SignatureExpr("func(red, green, blue *float32, out *byte, n uintptr, inv float32, zp uintptr)")
	e.Doc(fmt.Sprintf("%s quantizes n pixels (a multiple of %d) of three float32 planes into 4-byte pixels with zero point zp.", name, lanes))
	planes := []reg.Register{e.Load(e.Param("red"), e.GP64()), e.Load(e.Param("green"), e.GP64()), e.Load(e.Param("blue"), e.GP64())}
	out := e.Load(e.Param("out"), e.GP64())
	n := e.Load(e.Param("n"), e.GP64())
	inv, zp, flo, fhi, ilo, ihi, alpha := e.vec(), e.vec(), e.vec(), e.vec(), e.vec(), e.vec(), e.vec()
	e.VBROADCASTSS(e.paramAddr("inv"), inv)
	z := e.GP32()
	e.Load(e.Param("zp"), z.As64())
	e.MOVD(z, zp.AsX())
	e.VPBROADCASTD(zp.AsX(), zp)
	e.VPSLLD(U8(24), zp, alpha)
	e.broadcastConst(-256, flo)
	e.broadcastConst(256, fhi)
	e.VXORPS(ilo, ilo, ilo)
	g := e.GP32()
	e.MOVL(U32(255), g)
	e.MOVD(g, ihi.AsX())
	e.VPBROADCASTD(ihi.AsX(), ihi)
	e.TESTQ(n, n)
	e.JZ(LabelRef(name + "_done"))
	e.Label(name + "_px")
	acc := e.vec()
	e.vmovd(alpha, acc)
	for c, p := range planes {
		x := e.vec()
		e.VMULPS(Mem{Base: p}, inv, x)
		e.VMAXPS(flo, x, x)
		e.VMINPS(fhi, x, x)
		e.VCVTPS2DQ(x, x)
		e.VPADDD(zp, x, x)
		e.VPMAXSD(ilo, x, x)
		e.VPMINSD(ihi, x, x)
		if c > 0 {
			e.VPSLLD(U8(8*c), x, x)
		}
		e.vpor(x, acc, acc)
		e.ADDQ(U32(4*lanes), p)
	}
	e.VMOVDQU32orY(acc, Mem{Base: out})
	e.ADDQ(U32(4*lanes), out)
	e.SUBQ(U32(lanes), n)
	e.JNZ(LabelRef(name + "_px"))
	e.Label(name + "_done")
	e.VZEROUPPER()
	e.RET()
}

// vmovd copies a vector register (VMOVDQA64 for zmm, VMOVDQA for ymm).
func (e emitter) vmovd(src, dst reg.VecVirtual) {
	if e.t.Lanes == 16 {
		e.VMOVDQA64(src, dst)
		return
	}
	e.VMOVDQA(src, dst)
}

// vpor is dst = a | b on vectors of int32 (VPORD for zmm, VPOR for ymm).
func (e emitter) vpor(a, b, dst reg.VecVirtual) {
	if e.t.Lanes == 16 {
		e.VPORD(a, b, dst)
		return
	}
	e.VPOR(a, b, dst)
}
