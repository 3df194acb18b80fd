package kernels

import (
	"fmt"

	"github.com/mmcloughlin/avo/attr"
	"github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
	"github.com/resnetgen/resnetgen/gen/plan"
)

// convSignature is the Go signature of every convolution micro-kernel. It
// computes n tiles side by side along one tile row. Pointers address the
// first tile's first element; the strides are in bytes.
//
//	in:    input at (oy·S − P, ox·S − P, 0) of the first pixel (inside the halo)
//	w:     the packed weights of one output-channel block, [ky][kx][ic][V·Lanes]
//	bias:  the block's folded-BN bias
//	res:   the residual at the first output pixel, read only if flags&2
//	out:   the output at the first pixel and the block's first channel
//	flags: 1 = ReLU, 2 = add res; bits 2 and up: the tile row, by which
//	       a prefetching kernel (blocking.PrefetchNext) picks the lines it
//	       asks for, and which the others ignore
//	n:     tiles, each TW pixels to the right of the previous
//
// A split kernel reduces over ICBlock of the layer's input channels: in
// and w then address one slice of them (pixels still InC channels apart),
// and the driver sums the slices in the output through res.
const convSignature = "func(in, w, bias, res, out *float32, inRow, outRow, resRow, flags, n uintptr)"

// emitter wraps an Avo context with the tier's vector register kind.
type emitter struct {
	*build.Context
	t plan.Tier
}

func (e emitter) vec() reg.VecVirtual {
	if e.t.Lanes == 16 {
		return e.ZMM()
	}
	return e.YMM()
}

// forPixels visits the tile's output pixels of a buffer that starts at base
// with rows strideParam bytes apart and pixels pixBytes apart: f gets a
// register pointing at the pixel's tile row and the pixel's byte offset
// within that row.
func (e emitter) forPixels(base reg.Register, strideParam string, th, tw, pixBytes int, f func(row reg.Register, disp int)) {
	stride := e.Load(e.Param(strideParam), e.GP64())
	p := e.GP64()
	e.MOVQ(base, p)
	for ty := 0; ty < th; ty++ {
		if ty > 0 {
			e.ADDQ(stride, p)
		}
		for tx := 0; tx < tw; tx++ {
			f(p, tx*pixBytes)
		}
	}
}

// emitConv writes one micro-kernel computing a row of th×TW-pixel tiles of
// V vectors. Per tile: accumulators start from the bias; the loop over ky
// (a counter), kx (unrolled) and ic (a counter, unrolled by u) loads V
// weight vectors, then for each pixel broadcasts one input scalar and does V
// FMAs; the epilogue adds the residual, applies ReLU and stores.
func (e emitter) emitConv(name string, s plan.Shape, b plan.Blocking, th, tw int) {
	callTiles := max(1, s.OutW/b.TW) // full tiles a call of the main kernel computes
	b.TW = tw                        // this kernel's tile width (the remainder kernels are narrower)
	t := e.t
	vb := t.Lanes * 4   // bytes per vector
	bc := b.V * t.Lanes // output channels per block
	icb := s.InC        // input channels one call reduces over
	if b.ICBlock > 0 {
		icb = b.ICBlock
	}
	u := plan.Unroll(icb)
	px := s.Stride * s.InC * 4 // bytes between the inputs of adjacent output pixels
	e.Function(name)
	e.Attributes(attr.NOSPLIT)
	e.SignatureExpr(convSignature)
	e.Doc(fmt.Sprintf("%s computes n %dx%d-pixel by %d-channel tiles of a %dx%d stride-%d convolution,",
		name, th, b.TW, bc, s.K, s.K, s.Stride),
		fmt.Sprintf("%d→%d channels on a %dx%d input, with bias, optional residual and optional ReLU.", s.InC, s.OutC, s.InH, s.InW))

	in := e.Load(e.Param("in"), e.GP64())
	out := e.Load(e.Param("out"), e.GP64())
	res := e.Load(e.Param("res"), e.GP64())
	n := e.Load(e.Param("n"), e.GP64())

	// A kernel with SpreadPrefetch asks for the next panel or slice at an
	// even pace: the call of tile row r from line r·spreadChunk on,
	// spreadRows lines an unrolled iteration from pf, twice what covers
	// its own chunk (spreadPrefetch). The other prefetching kernels ask
	// for one line of every weight row per tile, (n mod 4)·64 into it
	// (below), which spreads over a call's several tiles; one-tile calls
	// that did so asked for the whole next slice within their first few
	// calls and waited for memory after. (docs/bench/history.md has the
	// measurements.)
	var pf reg.GPVirtual
	spreadChunk, spreadRows := spreadPrefetch(s, b, t, callTiles)
	if spreadRows > 0 {
		pf = e.GP64()
		row := e.Load(e.Param("flags"), e.GP64())
		e.SHRQ(U8(2), row)
		e.IMUL3Q(U32(spreadChunk*64), row, pf)
		e.ADDQ(e.Load(e.Param("w"), e.GP64()), pf)
	}
	e.Label(name + "_tile")
	acc := make([][]reg.VecVirtual, th*b.TW)
	bias := e.Load(e.Param("bias"), e.GP64())
	for v := 0; v < b.V; v++ {
		bv := e.vec()
		e.VMOVUPS(Mem{Base: bias, Disp: v * vb}, bv)
		for r := range acc {
			if v == 0 {
				acc[r] = make([]reg.VecVirtual, b.V)
			}
			acc[r][v] = e.vec()
			e.VMOVAPS(bv, acc[r][v])
		}
	}
	// Ask for the residual now: it was written layers ago and is far from
	// L1, and the loop below hides the latency (measured on the 1x1 layers
	// with few input channels, where the epilogue weighs most).
	flags := e.Load(e.Param("flags"), e.GP64())
	e.TESTQ(U32(2), flags)
	e.JZ(LabelRef(name + "_nopf"))
	e.forPixels(res, "resRow", th, b.TW, 4*s.OutC, func(row reg.Register, disp int) {
		for off := 0; off < bc*4; off += 64 {
			e.PREFETCHT0(Mem{Base: row, Disp: disp + off})
		}
	})
	e.Label(name + "_nopf")
	inRow, rows := e.tileRows(in, th, s.Stride)
	w := e.Load(e.Param("w"), e.GP64())
	if b.PrefetchNext && spreadRows == 0 {
		// which line of each weight row this tile prefetches: (n mod 4)·64
		pf = e.GP64()
		e.MOVQ(n, pf)
		if b.ICBlock > 0 {
			// A call of a split kernel is one tile row of a small map,
			// often one tile (n = 1): the driver passes the tile row in
			// flags>>2, so that successive rows ask for different lines.
			row := e.Load(e.Param("flags"), e.GP64())
			e.SHRQ(U8(2), row)
			e.ADDQ(row, pf)
		}
		e.ANDQ(U32(3), pf)
		e.SHLQ(U8(6), pf)
	}
	// The next weights in memory: the next block's panel, or for a split
	// kernel the next input-channel slice (the next block's first slice
	// after the last).
	next := s.K * s.K * icb * bc * 4
	ky := e.GP64()
	e.MOVQ(U64(s.K), ky)
	e.Label(name + "_ky")
	off := e.GP64() // byte offset of the current input channel
	for kx := 0; kx < s.K; kx++ {
		e.XORQ(off, off)
		loop := fmt.Sprintf("%s_kx%d_ic", name, kx)
		e.Label(loop)
		for ui := 0; ui < u; ui++ {
			wv := make([]reg.VecVirtual, b.V)
			for v := range wv {
				wv[v] = e.vec()
				e.VMOVUPS(Mem{Base: w, Disp: ui*bc*4 + v*vb}, wv[v])
			}
			if spreadRows > 0 {
				// spreadRows of the u iterations, evenly spaced
				if ui*spreadRows%u < spreadRows {
					e.PREFETCHT1(Mem{Base: pf, Disp: next})
					e.ADDQ(U32(64), pf)
				}
			} else if b.PrefetchNext {
				e.PREFETCHT1(Mem{Base: w, Index: pf, Scale: 1, Disp: next + ui*bc*4})
			}
			for ty := 0; ty < th; ty++ {
				for tx := 0; tx < b.TW; tx++ {
					x := e.vec()
					e.VBROADCASTSS(Mem{Base: rows[ty], Index: off, Scale: 1, Disp: kx*s.InC*4 + tx*px + ui*4}, x)
					for v := 0; v < b.V; v++ {
						e.VFMADD231PS(wv[v], x, acc[ty*b.TW+tx][v])
					}
				}
			}
		}
		e.ADDQ(U32(u*bc*4), w)
		e.ADDQ(U32(u*4), off)
		e.CMPQ(off, U32(icb*4))
		e.JNE(LabelRef(loop))
	}
	for ty := range rows {
		e.ADDQ(inRow, rows[ty])
	}
	e.DECQ(ky)
	e.JNZ(LabelRef(name + "_ky"))

	// Epilogue: + residual, ReLU, store; then step to the next tile.
	flags = e.Load(e.Param("flags"), e.GP64())
	e.TESTQ(U32(2), flags)
	e.JZ(LabelRef(name + "_nores"))
	r := 0
	e.forPixels(res, "resRow", th, b.TW, 4*s.OutC, func(row reg.Register, disp int) {
		for v := 0; v < b.V; v++ {
			e.VADDPS(Mem{Base: row, Disp: disp + v*vb}, acc[r][v], acc[r][v])
		}
		r++
	})
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
	r = 0
	e.forPixels(out, "outRow", th, b.TW, 4*s.OutC, func(row reg.Register, disp int) {
		for v := 0; v < b.V; v++ {
			e.VMOVUPS(acc[r][v], Mem{Base: row, Disp: disp + v*vb})
		}
		r++
	})
	e.ADDQ(U32(b.TW*px), in)
	e.ADDQ(U32(b.TW*s.OutC*4), out)
	e.ADDQ(U32(b.TW*s.OutC*4), res)
	e.DECQ(n)
	e.JNZ(LabelRef(name + "_tile"))
	e.VZEROUPPER()
	e.RET()
}

// tileRows loads the inRow argument and makes one base pointer per tile
// row from in: row ty starts ty·stride input rows down.
func (e emitter) tileRows(in reg.Register, th, stride int) (inRow reg.Register, rows []reg.GPVirtual) {
	inRow = e.Load(e.Param("inRow"), e.GP64())
	rows = make([]reg.GPVirtual, th)
	for ty := range rows {
		rows[ty] = e.GP64()
		e.MOVQ(in, rows[ty])
		for i := 0; i < ty*stride; i++ {
			e.ADDQ(inRow, rows[ty])
		}
	}
	return inRow, rows
}

// spreadPrefetch is how a kernel with SpreadPrefetch shares the
// prefetching of the next weight panel or slice among its calls
// (emitConv): the call of tile row r asks for lines from r·chunk on,
// perIter lines in each unrolled iteration of its callTiles tiles: twice
// as many as cover its own chunk, so each line is asked for by its call and
// the one before. perIter is 0 for the kernels that do not spread.
func spreadPrefetch(s plan.Shape, b plan.Blocking, t plan.Tier, callTiles int) (chunk, perIter int) {
	if !b.PrefetchNext || !b.SpreadPrefetch {
		return 0, 0
	}
	icb := s.InC
	if b.ICBlock > 0 {
		icb = b.ICBlock
	}
	tileRows := (s.OutH + b.TH - 1) / b.TH
	lines := s.K * s.K * icb * b.V * t.Lanes * 4 / 64
	chunk = (lines + tileRows - 1) / tileRows
	u := plan.Unroll(icb)
	iters := callTiles * s.K * s.K * icb / u
	return chunk, min(u, 2*((chunk+iters-1)/iters))
}
