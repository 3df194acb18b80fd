package kernels

import (
	"fmt"

	"github.com/resnetgen/resnetgen/gen/plan"

	"github.com/mmcloughlin/avo/attr"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

// Winograd F(4×4, 3×3) (Lavin and Gray, 2016) for 3x3 stride-1 layers: a
// 4×4 output tile is A^T [ (G g G^T) ⊙ (B^T d B) ] A, with d the 6×6 input
// tile and g the 3×3 kernel: 36 multiplications per tile and channel pair
// instead of 144. The products of the 36 positions ξ are 36 matrix
// products over the tiles (GEMMs: the direct kernel as a 1x1 convolution),
// between an input transform and an output transform that fuses bias,
// residual and ReLU. The transforms here are not specialised on a shape:
// they run over nvec vectors of channels of one tile with strides given as
// arguments, with tmp (36 vectors) for the intermediate 6×6 values.

// winoSignatures of the transforms.
const (
	winoInSignature  = "func(in *float32, inRow, inPix uintptr, v *float32, vPlane, nvec uintptr, tmp *float32)"
	winoOutSignature = "func(m *float32, mPlane uintptr, bias, res, out *float32, resRow, outRow, outPix, flags, nvec uintptr, tmp *float32)"
)

// consts broadcasts the constants of a transform into registers.
func (e emitter) consts(values ...float32) map[float32]reg.VecVirtual {
	out := map[float32]reg.VecVirtual{}
	for _, c := range values {
		r := e.vec()
		k := e.GP32()
		e.MOVL(U32(f32bits(c)), k)
		e.MOVD(k, r.AsX())
		e.VBROADCASTSS(r.AsX(), r)
		out[c] = r
	}
	return out
}

// combine computes dst = Σ coef[k]·x[k] for the nonzero coefficients, with
// additions and subtractions for ±1 and FMAs against the constants.
func (e emitter) combine(dst reg.VecVirtual, coef []float32, x []Op, c map[float32]reg.VecVirtual, zero reg.VecVirtual) {
	first := true
	for k, a := range coef {
		if a == 0 {
			continue
		}
		abs := a
		if abs < 0 {
			abs = -abs
		}
		switch {
		case first && a == 1:
			e.VMOVUPS(x[k], dst)
		case first && a == -1:
			e.VSUBPS(x[k], zero, dst)
		case first:
			e.VMULPS(x[k], c[abs], dst)
			if a < 0 {
				e.VSUBPS(dst, zero, dst)
			}
		case a == 1:
			e.VADDPS(x[k], dst, dst)
		case a == -1:
			e.VSUBPS(x[k], dst, dst)
		case a > 0:
			e.VFMADD231PS(x[k], c[abs], dst)
		default:
			e.VFNMADD231PS(x[k], c[abs], dst)
		}
		first = false
	}
}

// emitWinoIn writes the input transform: for one 6×6 input tile (in at its
// top-left pixel, rows inRow and pixels inPix bytes apart), V = B^T d B for
// nvec vectors of channels, stored to 36 planes (v at the tile's place in
// plane 0, planes vPlane bytes apart, ξ = 6i + j).
func (e emitter) emitWinoIn(f plan.WinogradF) {
	t := e.t
	vb := t.Lanes * 4
	a := f.Alpha
	name := plan.InName(f, t)
	e.Function(name)
	e.Attributes(attr.NOSPLIT)
	e.SignatureExpr(winoInSignature)
	e.Doc(fmt.Sprintf("%s transforms one %dx%d input tile for Winograd F(%dx%d,3x3): V = B^T d B, nvec vectors of channels,", name, a, a, f.M, f.M),
		fmt.Sprintf("into %d planes vPlane bytes apart.", a*a))
	scratch := Mem{Base: e.Load(e.Param("tmp"), e.GP64())} // α² vectors
	c := e.consts(f.InK...)
	zero := e.vec()
	e.VXORPS(zero, zero, zero)
	in := e.Load(e.Param("in"), e.GP64())
	v := e.Load(e.Param("v"), e.GP64())
	n := e.Load(e.Param("nvec"), e.GP64())
	e.Label(name + "_vec")
	// Rows: u[k][j] = Σ_l d[k][l]·BT[j][l].
	row := e.GP64()
	e.MOVQ(in, row)
	for k := 0; k < a; k++ {
		if k > 0 {
			e.ADDQ(e.Load(e.Param("inRow"), e.GP64()), row)
		}
		p := e.GP64()
		e.MOVQ(row, p)
		pix := e.Load(e.Param("inPix"), e.GP64())
		x := make([]Op, a)
		for l := 0; l < a; l++ {
			if l > 0 {
				e.ADDQ(pix, p)
			}
			xr := e.vec()
			e.VMOVUPS(Mem{Base: p}, xr)
			x[l] = xr
		}
		for j := 0; j < a; j++ {
			u := e.vec()
			e.combine(u, f.BT[j], x, c, zero)
			e.VMOVUPS(u, scratch.Offset((k*a+j)*vb))
		}
	}
	// Columns: V[i][j] = Σ_k BT[i][k]·u[k][j], plane ξ = αi + j.
	p := e.GP64()
	e.MOVQ(v, p)
	plane := e.Load(e.Param("vPlane"), e.GP64())
	for i := 0; i < a; i++ {
		for j := 0; j < a; j++ {
			x := make([]Op, a)
			for k := 0; k < a; k++ {
				x[k] = scratch.Offset((k*a + j) * vb)
			}
			o := e.vec()
			e.combine(o, f.BT[i], x, c, zero)
			e.VMOVUPS(o, Mem{Base: p})
			if i*a+j < a*a-1 {
				e.ADDQ(plane, p)
			}
		}
	}
	e.ADDQ(U32(vb), in)
	e.ADDQ(U32(vb), v)
	e.DECQ(n)
	e.JNZ(LabelRef(name + "_vec"))
	e.VZEROUPPER()
	e.RET()
}

// emitWinoOut writes the output transform: for one tile, Y = A^T M A from
// the 36 planes (m at the tile's place in plane 0, planes mPlane bytes
// apart), + bias, + the residual if flags&2, ReLU if flags&1, stored as the
// 4×4 output pixels (out at the top-left one, rows outRow and pixels outPix
// bytes apart; the residual likewise with resRow), nvec vectors of channels.
func (e emitter) emitWinoOut(f plan.WinogradF) {
	t := e.t
	vb := t.Lanes * 4
	a, mo := f.Alpha, f.M
	name := plan.OutName(f, t)
	e.Function(name)
	e.Attributes(attr.NOSPLIT)
	e.SignatureExpr(winoOutSignature)
	e.Doc(fmt.Sprintf("%s transforms one tile of Winograd F(%dx%d,3x3) products back: Y = A^T M A + bias (+ residual)", name, mo, mo),
		fmt.Sprintf("(ReLU), nvec vectors of channels, into a %dx%d-pixel output tile.", mo, mo))
	scratch := Mem{Base: e.Load(e.Param("tmp"), e.GP64())} // α·m vectors
	c := e.consts(f.OutK...)
	zero := e.vec()
	e.VXORPS(zero, zero, zero)
	m := e.Load(e.Param("m"), e.GP64())
	n := e.Load(e.Param("nvec"), e.GP64())
	off := e.GP64() // byte offset of the current channel vector
	e.XORQ(off, off)
	e.Label(name + "_vec")
	// Rows: s[i][col] = Σ_j M[i][j]·AT[col][j], M[i][j] in plane 6i + j.
	p := e.GP64()
	e.MOVQ(m, p)
	plane := e.Load(e.Param("mPlane"), e.GP64())
	for i := 0; i < a; i++ {
		x := make([]Op, a)
		for j := 0; j < a; j++ {
			xr := e.vec()
			e.VMOVUPS(Mem{Base: p}, xr)
			x[j] = xr
			if i*a+j < a*a-1 {
				e.ADDQ(plane, p)
			}
		}
		for col := 0; col < mo; col++ {
			s := e.vec()
			e.combine(s, f.AT[col], x, c, zero)
			e.VMOVUPS(s, scratch.Offset((i*mo+col)*vb))
		}
	}
	// Columns: y[r][col] = Σ_i AT[r][i]·s[i][col], + bias, residual, ReLU.
	bias := e.Load(e.Param("bias"), e.GP64())
	b := e.vec()
	e.VMOVUPS(Mem{Base: bias, Index: off, Scale: 1}, b)
	for r := 0; r < mo; r++ {
		q, rq := e.GP64(), e.GP64()
		e.MOVQ(e.Load(e.Param("out"), e.GP64()), q)
		e.MOVQ(e.Load(e.Param("res"), e.GP64()), rq)
		for k := 0; k < r; k++ {
			e.ADDQ(e.Load(e.Param("outRow"), e.GP64()), q)
			e.ADDQ(e.Load(e.Param("resRow"), e.GP64()), rq)
		}
		for col := 0; col < mo; col++ {
			x := make([]Op, a)
			for i := 0; i < a; i++ {
				x[i] = scratch.Offset((i*mo + col) * vb)
			}
			y := e.vec()
			e.combine(y, f.AT[r], x, c, zero)
			e.VADDPS(b, y, y)
			flags := e.Load(e.Param("flags"), e.GP64())
			skip := fmt.Sprintf("%s_r%dc%d", name, r, col)
			e.TESTQ(U32(2), flags)
			e.JZ(LabelRef(skip + "_nores"))
			e.VADDPS(Mem{Base: rq, Index: off, Scale: 1}, y, y)
			e.Label(skip + "_nores")
			e.TESTQ(U32(1), flags)
			e.JZ(LabelRef(skip + "_norelu"))
			e.VMAXPS(zero, y, y)
			e.Label(skip + "_norelu")
			e.VMOVUPS(y, Mem{Base: q, Index: off, Scale: 1})
			if col < mo-1 {
				pix := e.Load(e.Param("outPix"), e.GP64())
				e.ADDQ(pix, q)
				e.ADDQ(pix, rq)
			}
		}
	}
	e.ADDQ(U32(vb), m)
	e.ADDQ(U32(vb), off)
	e.DECQ(n)
	e.JNZ(LabelRef(name + "_vec"))
	e.VZEROUPPER()
	e.RET()
}
