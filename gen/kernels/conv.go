package main

import (
	"fmt"

	"github.com/mmcloughlin/avo/attr"
	"github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

// convSignature is the Go signature of every convolution micro-kernel.
// Pointers address the tile's first element; the strides are in bytes.
//
//	in:    input at (oy·S − P, ox·S − P, 0) of the tile's first pixel (inside the halo)
//	w:     the packed weights of one output-channel block, [ky][kx][ic][V·Lanes]
//	bias:  the block's folded-BN bias
//	res:   the residual at the tile's first output pixel, read only if flags&2
//	out:   the output at the tile's first pixel and the block's first channel
//	flags: 1 = ReLU, 2 = add res
const convSignature = "func(in, w, bias, res, out *float32, inRow, outRow, resRow, flags uintptr)"

func kernelName(s convShape, t tier) string {
	return fmt.Sprintf("conv%dx%ds%d_c%dk%d_h%d_%s", s.K, s.K, s.Stride, s.InC, s.OutC, s.InH, t.Name)
}

// emitter wraps an Avo context with the tier's vector register kind.
type emitter struct {
	*build.Context
	t tier
}

func (e emitter) vec() reg.VecVirtual {
	if e.t.Lanes == 16 {
		return e.ZMM()
	}
	return e.YMM()
}

// emitConv writes one micro-kernel computing a th×TW tile of V vectors.
func (e emitter) emitConv(name string, s convShape, b blocking, th int) {
	t := e.t
	vb := t.Lanes * 4   // bytes per vector
	bc := b.V * t.Lanes // output channels per block
	u := unroll(s.InC)
	e.Function(name)
	e.Attributes(attr.NOSPLIT)
	e.SignatureExpr(convSignature)
	e.Doc(fmt.Sprintf("%s computes a %dx%d-pixel by %d-channel tile of a %dx%d stride-%d convolution,",
		name, th, b.TW, bc, s.K, s.K, s.Stride),
		fmt.Sprintf("%d→%d channels on a %dx%d input, with bias, optional residual and optional ReLU.", s.InC, s.OutC, s.InH, s.InH))

	in := e.Load(e.Param("in"), e.GP64())
	w := e.Load(e.Param("w"), e.GP64())
	inRow := e.Load(e.Param("inRow"), e.GP64())

	// One base pointer per tile row: row ty starts ty·S input rows down.
	rows := make([]reg.GPVirtual, th)
	for ty := range rows {
		rows[ty] = e.GP64()
		e.MOVQ(in, rows[ty])
		for i := 0; i < ty*s.Stride; i++ {
			e.ADDQ(inRow, rows[ty])
		}
	}
	acc := make([][]reg.VecVirtual, th*b.TW)
	for r := range acc {
		acc[r] = make([]reg.VecVirtual, b.V)
		for v := range acc[r] {
			acc[r][v] = e.vec()
			e.VXORPS(acc[r][v], acc[r][v], acc[r][v])
		}
	}

	ky := e.GP64()
	e.MOVQ(U64(s.K), ky)
	e.Label(name + "_ky")
	pt := make([]reg.GPVirtual, th)
	for ty := range pt {
		pt[ty] = e.GP64()
	}
	for kx := 0; kx < s.K; kx++ {
		for ty := range pt {
			e.LEAQ(Mem{Base: rows[ty], Disp: kx * s.InC * 4}, pt[ty])
		}
		ic := e.GP64()
		e.MOVQ(U64(s.InC/u), ic)
		loop := fmt.Sprintf("%s_kx%d_ic", name, kx)
		e.Label(loop)
		for ui := 0; ui < u; ui++ {
			wv := make([]reg.VecVirtual, b.V)
			for v := range wv {
				wv[v] = e.vec()
				e.VMOVUPS(Mem{Base: w, Disp: ui*bc*4 + v*vb}, wv[v])
			}
			for ty := 0; ty < th; ty++ {
				for tx := 0; tx < b.TW; tx++ {
					x := e.vec()
					e.VBROADCASTSS(Mem{Base: pt[ty], Disp: tx*s.Stride*s.InC*4 + ui*4}, x)
					for v := 0; v < b.V; v++ {
						e.VFMADD231PS(wv[v], x, acc[ty*b.TW+tx][v])
					}
				}
			}
		}
		for ty := range pt {
			e.ADDQ(U32(u*4), pt[ty])
		}
		e.ADDQ(U32(u*bc*4), w)
		e.DECQ(ic)
		e.JNZ(LabelRef(loop))
	}
	for ty := range rows {
		e.ADDQ(inRow, rows[ty])
	}
	e.DECQ(ky)
	e.JNZ(LabelRef(name + "_ky"))

	// Epilogue: + bias, + residual, ReLU, store.
	bias := e.Load(e.Param("bias"), e.GP64())
	for r := range acc {
		for v := range acc[r] {
			e.VADDPS(Mem{Base: bias, Disp: v * vb}, acc[r][v], acc[r][v])
		}
	}
	flags := e.Load(e.Param("flags"), e.GP64())
	// pixel(rowPtr, stride) addresses pixel (ty, tx) of a buffer whose rows
	// start at rowPtrs[ty] and whose pixels are OutC floats apart.
	rowPtrs := func(base, stride reg.Register) []reg.GPVirtual {
		ps := make([]reg.GPVirtual, th)
		for ty := range ps {
			ps[ty] = e.GP64()
			e.MOVQ(base, ps[ty])
			for i := 0; i < ty; i++ {
				e.ADDQ(stride, ps[ty])
			}
		}
		return ps
	}
	e.TESTQ(U32(2), flags)
	e.JZ(LabelRef(name + "_nores"))
	res := e.Load(e.Param("res"), e.GP64())
	resRow := e.Load(e.Param("resRow"), e.GP64())
	rp := rowPtrs(res, resRow)
	for ty := 0; ty < th; ty++ {
		for tx := 0; tx < b.TW; tx++ {
			for v := 0; v < b.V; v++ {
				e.VADDPS(Mem{Base: rp[ty], Disp: tx*s.OutC*4 + v*vb}, acc[ty*b.TW+tx][v], acc[ty*b.TW+tx][v])
			}
		}
	}
	e.Label(name + "_nores")
	e.TESTQ(U32(1), flags)
	e.JZ(LabelRef(name + "_norelu"))
	zero := e.vec()
	e.VXORPS(zero, zero, zero)
	for r := range acc {
		for v := range acc[r] {
			e.VMAXPS(zero, acc[r][v], acc[r][v])
		}
	}
	e.Label(name + "_norelu")
	out := e.Load(e.Param("out"), e.GP64())
	outRow := e.Load(e.Param("outRow"), e.GP64())
	op := rowPtrs(out, outRow)
	for ty := 0; ty < th; ty++ {
		for tx := 0; tx < b.TW; tx++ {
			for v := 0; v < b.V; v++ {
				e.VMOVUPS(acc[ty*b.TW+tx][v], Mem{Base: op[ty], Disp: tx*s.OutC*4 + v*vb})
			}
		}
	}
	if t.Lanes == 8 || t.Lanes == 16 {
		e.VZEROUPPER()
	}
	e.RET()
}
