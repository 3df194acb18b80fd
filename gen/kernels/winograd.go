package kernels

import (
	"fmt"

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

// winoF is one Winograd algorithm F(m×m, 3×3): tiles of m×m outputs from
// α×α inputs (α = m + 2), V = B^T d B, Y = A^T M A.
type winoF struct {
	M, Alpha int
	BT       [][]float32 // α×α
	AT       [][]float32 // m×α
	InK      []float32   // the constants of B^T other than 0 and ±1
	OutK     []float32   // of A^T
}

// winoF4 is F(4×4, 3×3): 36 products per tile for 144 direct ones.
var winoF4 = winoF{M: 4, Alpha: 6,
	BT: [][]float32{
		{4, 0, -5, 0, 1, 0},
		{0, -4, -4, 1, 1, 0},
		{0, 4, -4, -1, 1, 0},
		{0, -2, -1, 2, 1, 0},
		{0, 2, -1, -2, 1, 0},
		{0, 4, 0, -5, 0, 1},
	},
	AT: [][]float32{
		{1, 1, 1, 1, 1, 0},
		{0, 1, -1, 2, -2, 0},
		{0, 1, 1, 4, 4, 0},
		{0, 1, -1, 8, -8, 1},
	},
	InK: []float32{2, 4, 5}, OutK: []float32{2, 4, 8},
}

// winoF2 is F(2×2, 3×3): 16 products per tile for 36 direct ones, with
// transformed weights only 16/9 the size of the direct ones (F4: 4×): for
// the deep layers, whose weights stream from memory at batch 1.
var winoF2 = winoF{M: 2, Alpha: 4,
	BT: [][]float32{
		{1, 0, -1, 0},
		{0, 1, 1, 0},
		{0, -1, 1, 0},
		{0, 1, 0, -1},
	},
	AT: [][]float32{
		{1, 1, 1, 0},
		{0, 1, -1, -1},
	},
}

// winoSignatures of the transforms.
const (
	winoInSignature  = "func(in *float32, inRow, inPix uintptr, v *float32, vPlane, nvec uintptr, tmp *float32)"
	winoOutSignature = "func(m *float32, mPlane uintptr, bias, res, out *float32, resRow, outRow, outPix, flags, nvec uintptr, tmp *float32)"
)

func winoInName(f winoF, t tier) string  { return fmt.Sprintf("wino%din_%s", f.M, t.Name) }
func winoOutName(f winoF, t tier) string { return fmt.Sprintf("wino%dout_%s", f.M, t.Name) }

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
func (e emitter) emitWinoIn(f winoF) {
	t := e.t
	vb := t.Lanes * 4
	a := f.Alpha
	name := winoInName(f, t)
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
func (e emitter) emitWinoOut(f winoF) {
	t := e.t
	vb := t.Lanes * 4
	a, mo := f.Alpha, f.M
	name := winoOutName(f, t)
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

// winogradFits reports whether a layer can run Winograd F(4,3) on tier t:
// a 3x3 stride-1 convolution with padding 1 whose input channels come in
// whole vectors (the transforms work on vectors of channels; the 3-channel
// stems do not qualify).
func winogradFits(s convShape, t tier) bool {
	return s.K == 3 && s.Stride == 1 && s.Pad == 1 && s.InC%t.Lanes == 0 && s.OutC%t.Lanes == 0
}

// minChunkTiles is the fewest tiles a layer is split into chunks of for
// parallelism alone: smaller products run below their peak. Zen 5 (EPYC
// family 26 model 2), CIFAR ResNet-56, three alternations of two builds:
// 32×32×16 and 16×16×32 (64 and 16 tiles) in two chunks instead of one,
// 0.72–0.76 ms on one thread against 0.79–0.83 and 0.62–0.74 on two
// against 0.85–0.91; 8×8×64 (4 tiles) in two chunks as well, 0.85–0.87 on
// one thread, so it keeps one (its 2-tile products are latency-bound).
const minChunkTiles = 8

// winogradGEMMs chooses the tiles per chunk and returns the 1x1 shapes of
// the products over a chunk and over the last, shorter chunk (zero if the
// chunks divide the tiles). A chunk's 36 planes of transformed inputs and
// products (36·tiles·(InC+OutC) floats) should stay in L2 between the
// transforms and the products, so chunks are small, but each chunk reads
// all the transformed weights U (36·InC·OutC floats) again, so:
//
//   - U under 4 MiB: chunks of at most 512 KiB of planes, in an even number
//     where there are several (two workers then take as many chunks each).
//     Measured on Zen 4: 56×56×64 in 7 chunks ran 1.45× faster on 2
//     threads than on 1 (a 4:3 split), in 8 chunks 1.8×; 28×28×128 (U 2.4
//     MiB, read from L3 per chunk) ran 0.76–0.81 ms in 4 chunks and
//     0.85–0.95 ms in one.
//   - U of 4 MiB or more (it streams from memory per chunk): as few chunks
//     as fit 4 MiB of planes — one for the 14×14 and 7×7 layers, which the
//     workers then split by output channels, each reading half of U
//     (14×14×256 on 2 threads: 1.2–1.3 ms in 3 chunks, 0.82–0.86 in one).
//   - U of 2 to 4 MiB (read from L3 once per chunk): chunks of up to 1 MiB
//     of planes. On Zen 5 (EPYC family 26 model 2), ResNet-18's 28×28×128
//     (U 2.4 MB) in 2 chunks instead of 4, three alternations inside the
//     network (bench -layers): 0.47–0.49 against 0.50–0.53 ms on one
//     thread, 0.38–0.42 against 0.47–0.52 on two. The 56×56×64 layers (U
//     0.6 MB) in 4 chunks instead of 8 ran alike on one thread and 12 %
//     slower on two, so small U keeps 512 KiB.
//   - At least two chunks of minChunkTiles where U stays cached, so two
//     workers split a small layer by tiles: in one chunk they split it by
//     output channel blocks, and a layer of 16 or 32 channels has one
//     block, so the second worker idled (the CIFAR nets ran slower on two
//     threads than on one).
func winogradGEMMs(s convShape, f winoF) (chunk int, gemm, tail convShape) {
	tiles := ((s.OutH + f.M - 1) / f.M) * ((s.OutW + f.M - 1) / f.M)
	n2 := f.Alpha * f.Alpha
	perTile := n2 * 4 * (s.InC + s.OutC)
	budget := 512 << 10
	switch {
	case streamsWeights(s, f):
		budget = 4 << 20
	case uBytes(s, f) >= 2<<20:
		budget = 1 << 20
	}
	n := (tiles*perTile + budget - 1) / budget // chunks
	if n == 1 && !streamsWeights(s, f) && tiles >= 2*minChunkTiles {
		n = 2
	}
	if n > 1 && n%2 == 1 {
		n++
	}
	n = max(1, min(n, tiles))
	chunk = (tiles + n - 1) / n
	shape := func(n int) convShape {
		return convShape{K: 1, Stride: 1, Pad: 0, InC: icBlock(s, f), OutC: s.OutC, InH: 1, InW: n, OutH: 1, OutW: n}
	}
	gemm = shape(chunk)
	if r := tiles % chunk; r > 0 {
		tail = shape(r)
	}
	return chunk, gemm, tail
}

// icBlock is the input channels of one product call (asm.WinogradKernel.
// ICBlock): 128 for the layers whose U streams from memory, so a call reads
// a 128-channel slice of a weight panel from memory with its first tile
// and its other tiles re-read it from L1; all of InC elsewhere. With whole
// panels (InC channels) the first tile streams the panel while the others
// re-read it from L2, and the stream pauses that long: on Zen 5 the
// hardware prefetcher then stops and software prefetches of the next panel
// (any hint, any distance) did not fill the gap (a micro-benchmark of that
// pattern: memory time added to compute time in full). Measured on Zen 5
// (EPYC family 26 model 2), one thread, 7×7×512 F(2,3) alone, three
// alternations: 1.08–1.13 ms with its weights cold (0.87–0.89 warm)
// against 1.22–1.30 (0.96–1.07) in whole panels; 64 channels alike, 256
// (a 64 KiB slice, more than L1) worse than whole panels. Inside ResNet-50
// (bench -layers, A/B/A' three times) its two 7×7 layers took 2.29–2.68 ms
// against 2.51–2.99, the 14×14 ones level or a little faster.
func icBlock(s convShape, f winoF) int {
	if streamsWeights(s, f) && s.InC > 128 && s.InC%128 == 0 {
		return 128
	}
	return s.InC
}

// uBytes is the size of a layer's transformed weights U: α²·InC·OutC floats.
func uBytes(s convShape, f winoF) int { return f.Alpha * f.Alpha * 4 * s.InC * s.OutC }

// streamsWeights reports whether a layer's transformed weights U are 4 MiB
// or more: they do not stay cached from one image to the next and stream
// from memory, so chunks are as large as fit 4 MiB of planes and the
// products split their input channels (winogradGEMMs, icBlock).
func streamsWeights(s convShape, f winoF) bool {
	return uBytes(s, f) >= 4<<20
}

// prefetchesWeights reports whether a layer's products prefetch the next
// panel of U (blocking.PrefetchNext): U of 2 MiB or more, more than a Zen
// L2. Inside a network such a U comes from memory, not L3, however often
// a chunk re-reads it: ResNet-18's 28×28×128 F(4,3) (U 2.25 MiB) ran alone
// with warm weights at 0.30 ms on one thread and 0.16–0.18 on two, with
// its weights rotated through 96 MB of copies at 0.38–0.41 and 0.21–0.25,
// as inside ResNet-18 (0.39–0.43 and 0.24–0.26). Prefetching, on Zen 5
// (EPYC family 26 model 2), alone and cold 0.34–0.36 ms against 0.41 on
// one thread; inside ResNet-34 (bench -layers, three alternations) its
// seven such layers 2.53–2.79 ms against 2.85–3.02 on one thread and
// 1.27–1.57 against 1.76–2.01 on two, the whole network 20.14–20.37 ms
// against 20.87–20.97 on one thread (AVX2 36.2–37.3 against 37.1–37.5).
// The smaller U of 56×56×64 (0.6 MB) is left out: prefetching it cost
// 10–20 % on Zen 4 (an earlier build, bench -layers), while on Zen 5 it
// gained 4–6 % (ResNet-18's four such layers 1.58–1.61 ms against
// 1.68–1.74 on one thread, three alternations; alone with its weights
// cold 0.40 against 0.41–0.42), too little to overrule Zen 4 unmeasured.
func prefetchesWeights(s convShape, f winoF) bool {
	return uBytes(s, f) >= 2<<20
}

// winoName names a Winograd layer kernel as the direct one, with winoM.
func winoName(s convShape, f winoF, t tier) string {
	size := fmt.Sprintf("h%d", s.InH)
	if s.InW != s.InH {
		size += fmt.Sprintf("w%d", s.InW)
	}
	return fmt.Sprintf("wino%d_c%dk%d_%s_%s", f.M, s.InC, s.OutC, size, t.Name)
}

// winoFor picks the algorithms of a layer: F(2,3) where F(4,3)'s
// transformed weights (36·InC·OutC floats) pass 16 MiB, both from 4 MiB,
// F(4,3) below. Measured on
// Zen 4, one thread, against the direct kernel: 7×7×512 (37.7 MiB of F(4,3)
// weights, streamed from memory at batch 1) F(4,3) 0.66×, F(2,3) 1.31×;
// 14×14×256 (9.4 MiB) F(4,3) 2.5×; 8×8×64 (0.6 MiB) F(4,3) 2.69×, F(2,3)
// 1.56×.
func winoFor(s convShape) []winoF {
	switch u := uBytes(s, winoF4); {
	case u > 16<<20:
		return []winoF{winoF2}
	case u >= 4<<20:
		// Both, F(2,3) first (New's default, whatever the worker count, so
		// that results do not depend on it; `resnet tune` may pick
		// F(4,3)): on 14×14×256 (9.4 MiB) F(4,3) ran 12 % faster on one
		// thread (269 vs 239 effective GFLOP/s), F(2,3) faster on two,
		// where the weights' memory traffic binds (ResNet-50, 2 threads,
		// interleaved: 35.9 → 32.6 ms; 1 thread costs ~1 %). On Zen 5
		// (EPYC family 26 model 2), with the GEMM's wider blocks
		// (chooseGEMMBlocking) and a shared scratch, F(2,3) is faster on
		// both: ResNet-34's eleven such layers 6.45–6.67 ms against
		// 7.13–7.44 on one thread, 4.18–4.29 against 5.21–5.33 on two
		// (bench -layers, tuning caches, three alternations). Again after
		// the planes stopped sharing L1 sets (asm planeStride), which
		// made F(4,3) alone and warm 2.40 effective against F(2,3)'s
		// 1.93: inside ResNet-34 F(2,3) still won, 6.36–6.68 ms against
		// 6.61–6.94 on one thread, 3.21–3.84 against 3.83–4.38 on two.
		return []winoF{winoF2, winoF4}
	}
	return []winoF{winoF4}
}
