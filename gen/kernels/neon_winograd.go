package kernels

import (
	"fmt"
	"math"

	"github.com/resnetgen/resnetgen/gen/plan"
)

// The Winograd transforms on NEON compute what emitWinoIn and emitWinoOut
// do on amd64 (the same signatures, the same driver: asm.WinogradKernel),
// one vector of 4 channels at a time. The constants of B^T and A^T other
// than 0 and ±1 sit in the lanes of one register (winoK) and multiply by
// element (FMLA and FMLS Vd.4S, Vn.4S, Vm.S[i]); the ±1 terms are FADD and
// FSUB. Both passes of a transform keep one row or column of the α×α tile
// in registers; the intermediate α×α (input) or α×m (output) values go
// through tmp, as on amd64.

// winoK is the register holding a transform's constants, one per lane.
const winoK = 31

// fsub is FSUB Vd.4S, Vn.4S, Vm.4S.
func (arm64) fsub(d, n, m int) (uint32, string) {
	return 0x4EA0D400 | uint32(vreg(m))<<16 | uint32(vreg(n))<<5 | uint32(vreg(d)), fmt.Sprintf("fsub v%d.4s, v%d.4s, v%d.4s", d, n, m)
}

// fmlsElem is FMLS Vd.4S, Vn.4S, Vm.S[lane].
func (e arm64) fmlsElem(d, n, m, lane int) (uint32, string) {
	enc, _ := e.fmlaElem(d, n, m, lane)
	return enc | 0x4000, fmt.Sprintf("fmls v%d.4s, v%d.4s, v%d.s[%d]", d, n, m, lane)
}

// consts puts values into the lanes of winoK (through R7 or the given
// scratch register) and returns each value's lane.
func (a *neonText) consts(scratch string, values []float32) map[float32]int {
	if len(values) > 4 {
		panic(fmt.Sprintf("%d transform constants for 4 lanes", len(values)))
	}
	lanes := map[float32]int{}
	for i, c := range values {
		a.op("MOVW $0x%08x, %s // %g", math.Float32bits(c), scratch, c)
		a.op("VMOV %s, V%d.S[%d]", scratch, winoK, i)
		lanes[c] = i
	}
	return lanes
}

// combine computes V(dst) = Σ coef[k]·V(x[k]) over the nonzero
// coefficients, starting from a +1 term (every row of F(2,3)'s and
// F(4,3)'s B^T and A^T has one): FADD and FSUB for ±1, FMLA and FMLS by
// the lane of winoK that holds |coef| otherwise. dst differs from every x.
func (a *neonText) combine(dst int, coef []float32, x []int, lanes map[float32]int) {
	type term struct {
		c float32
		x int
	}
	var ts []term
	for k, c := range coef {
		if c == 1 {
			ts = append(ts, term{c, x[k]})
		}
	}
	if len(ts) == 0 {
		panic(fmt.Sprintf("transform row %v has no +1 term", coef))
	}
	for k, c := range coef {
		if c != 0 && c != 1 {
			ts = append(ts, term{c, x[k]})
		}
	}
	rest := ts[1:]
	switch {
	case len(rest) > 0 && rest[0].c == 1:
		a.word(a.enc.fadd(dst, ts[0].x, rest[0].x))
		rest = rest[1:]
	case len(rest) > 0 && rest[0].c == -1:
		a.word(a.enc.fsub(dst, ts[0].x, rest[0].x))
		rest = rest[1:]
	default:
		a.mov(dst, ts[0].x)
	}
	for _, t := range rest {
		abs := float32(math.Abs(float64(t.c)))
		lane, ok := lanes[abs]
		switch {
		case t.c == 1:
			a.word(a.enc.fadd(dst, dst, t.x))
		case t.c == -1:
			a.word(a.enc.fsub(dst, dst, t.x))
		case !ok:
			panic(fmt.Sprintf("constant %g of transform row %v is in no lane", abs, coef))
		case t.c > 0:
			a.word(a.enc.fmlaElem(dst, t.x, winoK, lane))
		default:
			a.word(a.enc.fmlsElem(dst, t.x, winoK, lane))
		}
	}
}

// regs is n consecutive register numbers from first.
func regs(first, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = first + i
	}
	return out
}

// emitWinoIn writes the input transform (winoInSignature): for one α×α
// input tile (in at its top-left pixel, rows inRow and pixels inPix bytes
// apart), V = B^T d B for nvec vectors of channels, stored to α² planes (v
// at the tile's place in plane 0, planes vPlane bytes apart, ξ = αi + j).
//
// Registers: R0 in, R1 inRow, R2 inPix, R3 v, R4 vPlane, R5 nvec, R6 tmp,
// R7 a row of the tile, R8 a pixel, R9 plane j, R10 plane αi + j, R11
// α·vPlane; V0… a row or column of the tile, V(α)… its transform.
func (a *neonText) emitWinoIn(f plan.WinogradF) {
	al := f.Alpha
	name := plan.InName(f, plan.NEON)
	a.begin(name, winoInSignature, "56", fmt.Sprintf(
		"%s transforms one %dx%d input tile for Winograd F(%dx%d,3x3): V = B^T d B, nvec vectors of channels,\n"+
			"into %d planes vPlane bytes apart.", name, al, al, f.M, f.M, al*al))
	for i, p := range []string{"in", "inRow", "inPix", "v", "vPlane", "nvec", "tmp"} {
		a.op("MOVD %s+%d(FP), R%d", p, 8*i, i)
	}
	lanes := a.consts("R7", f.InK)
	a.op("MOVD $%d, R11", al)
	a.op("MUL R4, R11, R11")
	a.op("CBZ R5, done")
	a.label("vec")
	x, y := regs(0, al), regs(al, al)
	// Rows: u[k][j] = Σ_l d[k][l]·BT[j][l], into tmp.
	a.op("MOVD R0, R7")
	for k := 0; k < al; k++ {
		if k > 0 {
			a.op("ADD R1, R7")
		}
		a.op("MOVD R7, R8")
		for l := 0; l < al; l++ {
			a.load128("R8", 0, x[l])
			if l < al-1 {
				a.op("ADD R2, R8")
			}
		}
		for j := 0; j < al; j++ {
			a.combine(y[j], f.BT[j], x, lanes)
			a.store128("R6", (k*al+j)*16, y[j])
		}
	}
	// Columns: V[i][j] = Σ_k BT[i][k]·u[k][j], into plane αi + j.
	a.op("MOVD R3, R9")
	for j := 0; j < al; j++ {
		for k := 0; k < al; k++ {
			a.load128("R6", (k*al+j)*16, x[k])
		}
		a.op("MOVD R9, R10")
		for i := 0; i < al; i++ {
			a.combine(y[i], f.BT[i], x, lanes)
			a.store128("R10", 0, y[i])
			if i < al-1 {
				a.op("ADD R11, R10")
			}
		}
		if j < al-1 {
			a.op("ADD R4, R9")
		}
	}
	a.op("ADD $16, R0")
	a.op("ADD $16, R3")
	a.op("SUBS $1, R5")
	a.op("BNE vec")
	a.label("done")
	a.op("RET")
}

// emitWinoOut writes the output transform (winoOutSignature): for one
// tile, Y = A^T M A from the α² planes (m at the tile's place in plane 0,
// planes mPlane bytes apart), + bias, + the residual if flags&2, ReLU if
// flags&1, stored as the m×m output pixels (out at the top-left one, rows
// outRow and pixels outPix bytes apart; the residual likewise with resRow),
// nvec vectors of channels.
//
// Registers: R0 m, R1 mPlane, R2 bias, R3 res, R4 out, R5 resRow, R6
// outRow, R7 outPix, R8 flags, R9 nvec, R10 tmp, R11 a plane, R12 an
// output or residual row, R13 a pixel; V0… the m² outputs, V16… a row or
// column of α values, V22… a row's m sums, V26 bias, V27 residual, V28 zero.
func (a *neonText) emitWinoOut(f plan.WinogradF) {
	al, mo := f.Alpha, f.M
	name := plan.OutName(f, plan.NEON)
	a.begin(name, winoOutSignature, "88", fmt.Sprintf(
		"%s transforms one tile of Winograd F(%dx%d,3x3) products back: Y = A^T M A + bias (+ residual)\n"+
			"(ReLU), nvec vectors of channels, into a %dx%d-pixel output tile.", name, mo, mo, mo, mo))
	if mo*mo > 16 || al > 6 {
		panic(fmt.Sprintf("%s: F(%d,3) does not fit the register plan", name, mo))
	}
	for i, p := range []string{"m", "mPlane", "bias", "res", "out", "resRow", "outRow", "outPix", "flags", "nvec", "tmp"} {
		a.op("MOVD %s+%d(FP), R%d", p, 8*i, i)
	}
	lanes := a.consts("R11", f.OutK)
	const bias, res, zero = 26, 27, 28
	x, s := regs(16, al), regs(22, mo)
	y := func(r, col int) int { return r*mo + col }
	a.op("CBZ R9, done")
	a.label("vec")
	// Rows: s[i][col] = Σ_j M[i][j]·AT[col][j], M[i][j] in plane αi + j,
	// into tmp.
	a.op("MOVD R0, R11")
	for i := 0; i < al; i++ {
		for j := 0; j < al; j++ {
			a.load128("R11", 0, x[j])
			if i*al+j < al*al-1 {
				a.op("ADD R1, R11")
			}
		}
		for col := 0; col < mo; col++ {
			a.combine(s[col], f.AT[col], x, lanes)
			a.store128("R10", (i*mo+col)*16, s[col])
		}
	}
	// Columns: y[r][col] = Σ_i AT[r][i]·s[i][col], + bias.
	for col := 0; col < mo; col++ {
		for i := 0; i < al; i++ {
			a.load128("R10", (i*mo+col)*16, x[i])
		}
		for r := 0; r < mo; r++ {
			a.combine(y(r, col), f.AT[r], x, lanes)
		}
	}
	a.load128("R2", 0, bias)
	for k := 0; k < mo*mo; k++ {
		a.word(a.enc.fadd(k, k, bias))
	}
	pixels := func(base, row string, f func(r, col int)) {
		a.op("MOVD %s, R12", base)
		for r := 0; r < mo; r++ {
			if r > 0 {
				a.op("ADD %s, R12", row)
			}
			a.op("MOVD R12, R13")
			for col := 0; col < mo; col++ {
				f(r, col)
				if col < mo-1 {
					a.op("ADD R7, R13")
				}
			}
		}
	}
	a.op("TBZ $1, R8, nores")
	pixels("R3", "R5", func(r, col int) {
		a.load128("R13", 0, res)
		a.word(a.enc.fadd(y(r, col), y(r, col), res))
	})
	a.label("nores")
	a.op("TBZ $0, R8, norelu")
	a.op("VEOR V%d.B16, V%d.B16, V%d.B16", zero, zero, zero)
	for k := 0; k < mo*mo; k++ {
		a.word(a.enc.fmax(k, k, zero))
	}
	a.label("norelu")
	pixels("R4", "R6", func(r, col int) { a.store128("R13", 0, y(r, col)) })
	for _, p := range []string{"R0", "R2", "R3", "R4"} {
		a.op("ADD $16, %s", p)
	}
	a.op("SUBS $1, R9")
	a.op("BNE vec")
	a.label("done")
	a.op("RET")
}
