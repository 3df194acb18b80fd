package kernels

import (
	"fmt"
	"math"

	"github.com/mmcloughlin/avo/attr"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
	"github.com/resnetgen/resnetgen/gen/plan"
)

// emitMaxPool writes a kernel for one output row of a 3x3 stride-2 max pool:
// func(in, out *float32, inRow, n uintptr), in at the window origin of the
// row's first pixel (inside the halo), out at the row's first pixel, n
// output pixels. The halo is zero, which equals PyTorch's −inf padding
// because the input follows a ReLU (every value ≥ 0) and every window holds
// a real pixel.
func (e emitter) emitMaxPool(name string, s plan.Pool) {
	vb := e.t.Lanes * 4
	nv := s.C / e.t.Lanes
	e.Function(name)
	e.Attributes(attr.NOSPLIT)
	e.SignatureExpr("func(in, out *float32, inRow, n uintptr)")
	e.Doc(fmt.Sprintf("%s max-pools n output pixels of one row of %d channels, 3x3 windows, stride 2.", name, s.C))
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
	for v0 := 0; v0 < nv; v0 += 4 {
		m := make([]reg.VecVirtual, 0, 4)
		for v := v0; v < min(nv, v0+4); v++ {
			x := e.vec()
			e.VMOVUPS(Mem{Base: in, Disp: v * vb}, x)
			for _, base := range []reg.Register{in, r1, r2} {
				for kx := 0; kx < 3; kx++ {
					if base == in && kx == 0 {
						continue
					}
					e.VMAXPS(Mem{Base: base, Disp: kx*s.C*4 + v*vb}, x, x)
				}
			}
			m = append(m, x)
		}
		for i, x := range m {
			e.VMOVUPS(x, Mem{Base: out, Disp: (v0 + i) * vb})
		}
	}
	for _, p := range []reg.Register{in, r1, r2} {
		e.ADDQ(U32(2*s.C*4), p)
	}
	e.ADDQ(U32(s.C*4), out)
	e.DECQ(n)
	e.JNZ(LabelRef(name + "_px"))
	e.Label(name + "_done")
	e.VZEROUPPER()
	e.RET()
}

// emitAvgPool writes func(in, out *float32, inRow, h, w uintptr, scale
// float32): scale times the sum of every channel over an h×w interior
// starting at in, rows inRow bytes apart, into out[0:C]. Chunks of up to 8
// vectors of channels are summed in registers, one pass over the map each.
func (e emitter) emitAvgPool(name string, s plan.Pool) {
	vb := e.t.Lanes * 4
	nv := s.C / e.t.Lanes
	chunk := 8 // accumulators per pass over the image
	e.Function(name)
	e.Attributes(attr.NOSPLIT)
	e.SignatureExpr("func(in, out *float32, inRow, h, w uintptr, scale float32)")
	e.Doc(fmt.Sprintf("%s averages each of %d channels over an h×w map: out = scale·Σ in.", name, s.C))
	out := e.Load(e.Param("out"), e.GP64())
	row := e.Load(e.Param("inRow"), e.GP64())
	scale := e.vec()
	e.VBROADCASTSS(e.Load(e.Param("scale"), e.XMM()), scale)
	for v0 := 0; v0 < nv; v0 += chunk {
		acc := make([]reg.VecVirtual, 0, chunk)
		for v := v0; v < min(nv, v0+chunk); v++ {
			a := e.vec()
			e.VXORPS(a, a, a)
			acc = append(acc, a)
		}
		label := fmt.Sprintf("%s_c%d", name, v0)
		p := e.Load(e.Param("in"), e.GP64())
		y := e.Load(e.Param("h"), e.GP64())
		e.Label(label + "_row")
		q := e.GP64()
		e.MOVQ(p, q)
		x := e.Load(e.Param("w"), e.GP64())
		e.Label(label + "_px")
		for i, a := range acc {
			e.VADDPS(Mem{Base: q, Disp: (v0 + i) * vb}, a, a)
		}
		e.ADDQ(U32(s.C*4), q)
		e.DECQ(x)
		e.JNZ(LabelRef(label + "_px"))
		e.ADDQ(row, p)
		e.DECQ(y)
		e.JNZ(LabelRef(label + "_row"))
		for i, a := range acc {
			e.VMULPS(scale, a, a)
			e.VMOVUPS(a, Mem{Base: out, Disp: (v0 + i) * vb})
		}
	}
	e.VZEROUPPER()
	e.RET()
}

// emitFC writes func(in, w, bias, out *float32, blocks uintptr): out = W·in
// + bias for blocks blocks of plan.FCBlock(t) outputs, W packed per block as
// [i][block], so a caller can split the blocks across workers.
func (e emitter) emitFC(name string, s plan.Pool) {
	vb := e.t.Lanes * 4
	v := 4
	bc := v * e.t.Lanes
	padded := (s.Out + bc - 1) / bc * bc
	e.Function(name)
	e.Attributes(attr.NOSPLIT)
	e.SignatureExpr("func(in, w, bias, out *float32, blocks uintptr)")
	e.Doc(fmt.Sprintf("%s computes blocks blocks of %d outputs of the %d→%d classifier (outputs padded to %d).", name, bc, s.C, s.Out, padded))
	in := e.Load(e.Param("in"), e.GP64())
	w := e.Load(e.Param("w"), e.GP64())
	bias := e.Load(e.Param("bias"), e.GP64())
	out := e.Load(e.Param("out"), e.GP64())
	blocks := e.Load(e.Param("blocks"), e.GP64())
	e.Label(name + "_block")
	acc := make([]reg.VecVirtual, v)
	for i := range acc {
		acc[i] = e.vec()
		e.VMOVUPS(Mem{Base: bias, Disp: i * vb}, acc[i])
	}
	p, n := e.GP64(), e.GP64()
	e.MOVQ(in, p)
	e.MOVQ(U64(s.C), n)
	e.Label(name + "_in")
	x := e.vec()
	e.VBROADCASTSS(Mem{Base: p}, x)
	for i := range acc {
		e.VFMADD231PS(Mem{Base: w, Disp: i * vb}, x, acc[i])
	}
	e.ADDQ(U32(4), p)
	e.ADDQ(U32(bc*4), w)
	e.DECQ(n)
	e.JNZ(LabelRef(name + "_in"))
	for i := range acc {
		e.VMOVUPS(acc[i], Mem{Base: out, Disp: i * vb})
	}
	e.ADDQ(U32(bc*4), bias)
	e.ADDQ(U32(bc*4), out)
	e.DECQ(blocks)
	e.JNZ(LabelRef(name + "_block"))
	e.VZEROUPPER()
	e.RET()
}

func f32bits(f float32) uint32 { return math.Float32bits(f) }
