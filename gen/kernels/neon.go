package kernels

import (
	"bytes"
	"fmt"
	"go/format"
	"strings"

	"github.com/resnetgen/resnetgen/gen/plan"
	"github.com/resnetgen/resnetgen/resnet"
)

// The arm64 NEON kernels: Avo has no arm64 back end, so they are written as
// text with explicit registers (the blocking fixes the register plan). The
// micro-kernel contract is the amd64 one (convSignature): same arguments,
// same packed weights, the same Go driver.
//
// The inner loop loads Lanes (4) input channels of a pixel with one 128-bit
// load and multiplies them by element (FMLA Vd.4S, Vn.4S, Vm.S[i]): per
// group of 4 channels, R input loads and 4·V weight loads feed 4·R·V FMAs,
// against one broadcast per pixel and channel on amd64. Layers whose input
// channels are not a multiple of 4 (the 3-channel stems) load one channel
// at a time into lane 0. Go's arm64 assembler has no FMLA or FMLS by
// element, FADD, FSUB, FMUL or FMAX on vectors: those are WORD encodings,
// each followed by the instruction it encodes as a comment, which
// TestNEONEncodings holds to binutils' disassembler (with the Go mnemonics
// whose operands are easy to misread: goMnemonics).
//
// Registers: R0 input, R2 bias, R3 residual, R4 output, R5 input row
// stride, R6 output row stride, R7 residual row stride, R8 flags, R9 tiles,
// R10–R13 the input rows of the tile, R14 weights, R15 ky counter, R16
// channel counter, R17 the tile's row at ky, R19 stride·inRow, R20 and R21
// scratch addresses, R22 the next weights to prefetch, R23–R24 scratch.
// Never R18 (the platform register) nor R26–R29 (Go's closure context,
// the assembler's temporary, g, the frame pointer). V0… accumulators
// (pixel-major), then input registers, then weight registers. The
// Winograd transforms are in neon_winograd.go.

// arm64 encodes the vector instructions Go's assembler lacks.
type arm64 struct{}

func vreg(n int) int { return n & 31 }

// fmlaElem is FMLA Vd.4S, Vn.4S, Vm.S[lane].
func (arm64) fmlaElem(d, n, m, lane int) (uint32, string) {
	h, l := lane>>1, lane&1
	enc := 0x4F801000 | uint32(l)<<21 | uint32(m>>4&1)<<20 | uint32(m&15)<<16 | uint32(h)<<11 | uint32(vreg(n))<<5 | uint32(vreg(d))
	return enc, fmt.Sprintf("fmla v%d.4s, v%d.4s, v%d.s[%d]", d, n, m, lane)
}

// fadd is FADD Vd.4S, Vn.4S, Vm.4S.
func (arm64) fadd(d, n, m int) (uint32, string) {
	return 0x4E20D400 | uint32(vreg(m))<<16 | uint32(vreg(n))<<5 | uint32(vreg(d)), fmt.Sprintf("fadd v%d.4s, v%d.4s, v%d.4s", d, n, m)
}

// fmax is FMAX Vd.4S, Vn.4S, Vm.4S.
func (arm64) fmax(d, n, m int) (uint32, string) {
	return 0x4E20F400 | uint32(vreg(m))<<16 | uint32(vreg(n))<<5 | uint32(vreg(d)), fmt.Sprintf("fmax v%d.4s, v%d.4s, v%d.4s", d, n, m)
}

// fmul is FMUL Vd.4S, Vn.4S, Vm.4S.
func (arm64) fmul(d, n, m int) (uint32, string) {
	return 0x6E20DC00 | uint32(vreg(m))<<16 | uint32(vreg(n))<<5 | uint32(vreg(d)), fmt.Sprintf("fmul v%d.4s, v%d.4s, v%d.4s", d, n, m)
}

// neonText accumulates one assembly file.
type neonText struct {
	b     bytes.Buffer
	enc   arm64
	decls []neonDecl
}

type neonDecl struct {
	name, doc, sig string
}

func (a *neonText) op(format string, args ...any) { fmt.Fprintf(&a.b, "\t"+format+"\n", args...) }

func (a *neonText) label(name string) { fmt.Fprintf(&a.b, "%s:\n", name) }

func (a *neonText) word(enc uint32, text string) { a.op("WORD $0x%08x // %s", enc, text) }

// mem returns an operand for base+off with the given access size (4 or 16
// bytes): an immediate offset where the scaled 12-bit field holds it,
// otherwise R20 made to point there first.
func (a *neonText) mem(base string, off, size int) string {
	if off == 0 {
		return "(" + base + ")"
	}
	if off > 0 && off%size == 0 && off/size < 4096 {
		return fmt.Sprintf("%d(%s)", off, base)
	}
	a.op("ADD $%d, %s, R20", off, base)
	return "(R20)"
}

// load128 and store128 move a vector register from and to memory;
// load32 loads a float into lane 0.
func (a *neonText) load128(base string, off, v int)  { a.op("FMOVQ %s, F%d", a.mem(base, off, 16), v) }
func (a *neonText) store128(base string, off, v int) { a.op("FMOVQ F%d, %s", v, a.mem(base, off, 16)) }
func (a *neonText) load32(base string, off, v int)   { a.op("FMOVS %s, F%d", a.mem(base, off, 4), v) }

// loadVectors loads n consecutive vectors from R at increasing addresses
// into registers first…first+n-1, advancing R past them.
func (a *neonText) loadVectors(reg string, first, n int) {
	for n > 0 {
		k := min(n, 4)
		var regs []string
		for i := 0; i < k; i++ {
			regs = append(regs, fmt.Sprintf("V%d.S4", first+i))
		}
		a.op("VLD1.P %d(%s), [%s]", 16*k, reg, strings.Join(regs, ", "))
		first += k
		n -= k
	}
}

func (a *neonText) mov(dst, src int) { a.op("VORR V%d.B16, V%d.B16, V%d.B16", src, src, dst) }

func (a *neonText) begin(name, sig, frame, doc string) {
	a.decls = append(a.decls, neonDecl{name, doc, sig})
	fmt.Fprintf(&a.b, "\n// %s\nTEXT ·%s(SB), NOSPLIT, $0-%s\n", strings.ReplaceAll(doc, "\n", "\n// "), name, frame)
}

// emitConv writes one micro-kernel computing a row of th×tw-pixel tiles of
// V vectors (the contract of convSignature). A split kernel (ICBlock)
// reduces over ICBlock input channels, its pixels still InC channels
// apart. A prefetching kernel (PrefetchNext) asks for the next weights in
// memory into L2 (PRFM PLDL2KEEP, as amd64's PREFETCHT1): per tile one line
// in four, a different one on each of four consecutive tiles
// (neonTilePrefetch), or with SpreadPrefetch its call's share of the next
// panel by tile row (neonSpreadPrefetch).
func (a *neonText) emitConv(name string, s plan.Shape, b plan.Blocking, th, tw int) {
	t := plan.NEON
	callTiles := max(1, s.OutW/b.TW) // full tiles a call of the main kernel computes
	g := t.Group(s.InC)
	icb := sliceChannels(s, b)
	r := th * tw
	v := b.V
	bc := v * t.Lanes
	px := s.Stride * s.InC * 4 // bytes between the inputs of adjacent output pixels
	iterBytes := g * bc * 4    // weights one trip of the channel loop reads
	next := s.K * s.K * icb * bc * 4
	spreadChunk, spreadStep := neonSpreadPrefetch(s, b, callTiles)
	tilePer := 0
	if b.PrefetchNext && spreadStep == 0 {
		tilePer = neonTilePrefetch(g, v)
	}
	acc := func(p, j int) int { return p*v + j }
	in := func(p int) int { return r*v + p }
	wreg := r*v + r
	if wreg+v > 32 {
		panic(fmt.Sprintf("%s: %d registers", name, wreg+v))
	}
	if g != t.Lanes && (b.ICBlock > 0 || b.PrefetchNext) {
		panic(fmt.Sprintf("%s: split or prefetching kernels take whole vectors of input channels", name))
	}
	doc := fmt.Sprintf("%s computes n %dx%d-pixel by %d-channel tiles of a %dx%d stride-%d convolution,\n"+
		"%d→%d channels on a %dx%d input, with bias, optional residual and optional ReLU.\n"+
		"Inner loop per %d input channel(s): %d input and %d weight loads, %d FMLA (%.1f FMAs a load);\n"+
		"modelled %.2f of Neoverse N1's FMA peak and %.2f of V1's.",
		name, th, tw, bc, s.K, s.K, s.Stride, s.InC, s.OutC, s.InH, s.InW,
		g, r, g*v, g*r*v, 1/plan.LoadsPerFMA(r, v, g), plan.NeoverseN1.Efficiency(r, v, g), plan.NeoverseV1.Efficiency(r, v, g))
	if b.ICBlock > 0 {
		doc += fmt.Sprintf("\nA call reduces over %d of the %d input channels (a slice of the weights).", icb, s.InC)
	}
	switch {
	case spreadStep > 0:
		doc += fmt.Sprintf("\nPrefetches the next weights into L2: the call of tile row r from line %d·r on, %d bytes a trip.", spreadChunk, spreadStep)
	case tilePer > 0:
		doc += "\nPrefetches the next weights into L2: each tile one line in four."
	}
	a.begin(name, convSignature, "80", doc)
	for i, p := range []string{"in", "w", "bias", "res", "out", "inRow", "outRow", "resRow", "flags", "n"} {
		if p == "w" {
			continue // reloaded per tile into R14
		}
		a.op("MOVD %s+%d(FP), R%d", p, 8*i, i)
	}
	a.op("MOVD R5, R19")
	for i := 1; i < s.Stride; i++ {
		a.op("ADD R5, R19")
	}
	if spreadStep > 0 {
		// R22: the next weights from line (flags>>2)·spreadChunk on.
		a.op("MOVD w+8(FP), R22")
		a.op("LSR $2, R8, R23")
		a.op("MOVD $%d, R24", spreadChunk*64)
		a.op("MADD R23, R22, R24, R22")
		a.op("ADD $%d, R22", next)
	}
	a.label("tile")
	// Accumulators start from the bias.
	a.op("MOVD R2, R20")
	a.loadVectors("R20", acc(0, 0), v)
	for p := 1; p < r; p++ {
		for j := 0; j < v; j++ {
			a.mov(acc(p, j), acc(0, j))
		}
	}
	// Ask for the residual now: the loop below hides the latency.
	a.op("TBZ $1, R8, nopf")
	a.op("MOVD R3, R20")
	for ty := 0; ty < th; ty++ {
		if ty > 0 {
			a.op("ADD R7, R20")
		}
		for tx := 0; tx < tw; tx++ {
			for off := 0; off < bc*4; off += 64 {
				o := tx*s.OutC*4 + off
				if o < 32768 {
					a.op("PRFM %d(R20), PLDL1KEEP", o)
				}
			}
		}
	}
	a.label("nopf")
	a.op("MOVD w+8(FP), R14")
	if tilePer > 0 {
		// R22: the next weights, (n mod 4)·64 bytes in (a split kernel
		// adds its tile row, flags>>2: its calls are often of one tile).
		if b.ICBlock > 0 {
			a.op("ADD R8>>2, R9, R23")
		} else {
			a.op("MOVD R9, R23")
		}
		a.op("AND $3, R23")
		a.op("ADD R23<<6, R14, R22")
		a.op("ADD $%d, R22", next)
	}
	a.op("MOVD R0, R17")
	a.op("MOVD $%d, R15", s.K)
	a.label("ky")
	rows := []string{"R10", "R11", "R12", "R13"}[:th]
	a.op("MOVD R17, R10")
	for ty := 1; ty < th; ty++ {
		a.op("ADD R19, %s, %s", rows[ty-1], rows[ty])
	}
	for kx := 0; kx < s.K; kx++ {
		a.op("MOVD $%d, R16", icb/g)
		loop := fmt.Sprintf("kx%d", kx)
		a.label(loop)
		for ty := 0; ty < th; ty++ {
			for tx := 0; tx < tw; tx++ {
				if g == t.Lanes {
					a.load128(rows[ty], tx*px, in(ty*tw+tx))
				} else {
					a.load32(rows[ty], tx*px, in(ty*tw+tx))
				}
			}
		}
		switch {
		case spreadStep > 0:
			for k := 0; k < max(1, spreadStep/64); k++ {
				a.op("PRFM %d(R22), PLDL2KEEP", 64*k)
			}
			a.op("ADD $%d, R22", spreadStep)
		case tilePer > 0:
			for k := 0; k < tilePer; k++ {
				a.op("PRFM %d(R22), PLDL2KEEP", 256*k)
			}
			a.op("ADD $%d, R22", iterBytes)
		}
		for lane := 0; lane < g; lane++ {
			a.loadVectors("R14", wreg, v)
			for p := 0; p < r; p++ {
				for j := 0; j < v; j++ {
					a.word(a.enc.fmlaElem(acc(p, j), wreg+j, in(p), lane))
				}
			}
		}
		for _, row := range rows {
			a.op("ADD $%d, %s", g*4, row)
		}
		a.op("SUBS $1, R16")
		a.op("BNE %s", loop)
		if icb < s.InC && kx < s.K-1 {
			// Past the slice to the next kernel column's pixel.
			for _, row := range rows {
				a.op("ADD $%d, %s", (s.InC-icb)*4, row)
			}
		}
	}
	// The next ky starts one input row down.
	a.op("ADD R5, R17")
	a.op("SUBS $1, R15")
	a.op("BNE ky")

	// Epilogue: + residual, ReLU, store; then the next tile.
	tmp := in(0)
	a.op("TBZ $1, R8, nores")
	a.op("MOVD R3, R21")
	for ty := 0; ty < th; ty++ {
		if ty > 0 {
			a.op("ADD R7, R21")
		}
		for tx := 0; tx < tw; tx++ {
			for j := 0; j < v; j++ {
				a.load128("R21", tx*s.OutC*4+j*16, tmp)
				p := ty*tw + tx
				a.word(a.enc.fadd(acc(p, j), acc(p, j), tmp))
			}
		}
	}
	a.label("nores")
	a.op("TBZ $0, R8, norelu")
	a.op("VEOR V%d.B16, V%d.B16, V%d.B16", tmp, tmp, tmp)
	for p := 0; p < r; p++ {
		for j := 0; j < v; j++ {
			a.word(a.enc.fmax(acc(p, j), acc(p, j), tmp))
		}
	}
	a.label("norelu")
	a.op("MOVD R4, R21")
	for ty := 0; ty < th; ty++ {
		if ty > 0 {
			a.op("ADD R6, R21")
		}
		for tx := 0; tx < tw; tx++ {
			for j := 0; j < v; j++ {
				a.store128("R21", tx*s.OutC*4+j*16, acc(ty*tw+tx, j))
			}
		}
	}
	a.op("ADD $%d, R0", tw*px)
	a.op("ADD $%d, R4", tw*s.OutC*4)
	a.op("ADD $%d, R3", tw*s.OutC*4)
	a.op("SUBS $1, R9")
	a.op("BNE tile")
	a.op("RET")
}

// neonTilePrefetch is how many lines a trip of a prefetching kernel's
// channel loop asks for (PrefetchNext without SpreadPrefetch): a trip reads
// group·V·16 bytes of weights, and each tile asks for one line in four of
// the next weights, (n mod 4)·64 bytes into every 256 (neonText.emitConv),
// so that four consecutive tiles ask for every line, as amd64's kernels
// ask for one line of each weight row; at least one a trip.
func neonTilePrefetch(group, v int) int {
	return max(1, (group*v*16+255)/256)
}

// neonSpreadPrefetch is how a NEON kernel with SpreadPrefetch shares the
// prefetching of the next panel or slice among its calls: the call of tile
// row r asks from line r·chunk on (chunk as on amd64: spreadPrefetch),
// moving step bytes on a trip of its channel loop (a group of 4 input
// channels), so that a call's trips cover twice its chunk (each line is
// asked for by its call and the one before, as on amd64). A trip reads
// only V·64 bytes of weights, and a call often needs less than a line a
// trip: step is then a power of two below 64 and consecutive trips ask for
// the same line again (a PRFM of a line already on its way costs a load
// slot); above 64, a multiple of 64 (one PRFM a line), at most 4 lines a
// trip (one per channel, amd64's cap). step is 0 for the kernels that do
// not spread.
func neonSpreadPrefetch(s plan.Shape, b plan.Blocking, callTiles int) (chunk, step int) {
	if !b.PrefetchNext || !b.SpreadPrefetch {
		return 0, 0
	}
	chunk, _ = spreadPrefetch(s, b, plan.NEON, callTiles)
	trips := callTiles * s.K * s.K * sliceChannels(s, b) / plan.NEON.Group(s.InC)
	need := (2*chunk*64 + trips - 1) / trips // bytes a trip
	if need > 64 {
		return chunk, min(4, (need+63)/64) * 64
	}
	step = 4
	for step < need {
		step *= 2
	}
	return chunk, step
}

// sliceChannels is the input channels one call of a kernel reduces over:
// ICBlock for a split kernel, InC otherwise.
func sliceChannels(s plan.Shape, b plan.Blocking) int {
	if b.ICBlock > 0 {
		return b.ICBlock
	}
	return s.InC
}

// emitMaxPool writes func(in, out *float32, inRow, n uintptr): n output
// pixels of one row of a 3x3/2 max pool (see emitMaxPool on amd64).
func (a *neonText) emitMaxPool(name string, s plan.Pool) {
	nv := s.C / 4
	a.begin(name, "func(in, out *float32, inRow, n uintptr)", "32",
		fmt.Sprintf("%s max-pools n output pixels of one row of %d channels, 3x3 windows, stride 2.", name, s.C))
	a.op("MOVD in+0(FP), R0")
	a.op("MOVD out+8(FP), R1")
	a.op("MOVD inRow+16(FP), R5")
	a.op("MOVD n+24(FP), R9")
	a.op("CBZ R9, done")
	a.op("ADD R5, R0, R10")
	a.op("ADD R5, R10, R11")
	a.label("px")
	for v0 := 0; v0 < nv; v0 += 16 {
		n := min(16, nv-v0)
		for i := 0; i < n; i++ {
			a.load128("R0", (v0+i)*16, i)
		}
		for _, row := range []string{"R0", "R10", "R11"} {
			for kx := 0; kx < 3; kx++ {
				if row == "R0" && kx == 0 {
					continue
				}
				for i := 0; i < n; i++ {
					a.load128(row, kx*s.C*4+(v0+i)*16, 16+i)
					a.word(a.enc.fmax(i, i, 16+i))
				}
			}
		}
		for i := 0; i < n; i++ {
			a.store128("R1", (v0+i)*16, i)
		}
	}
	for _, p := range []string{"R0", "R10", "R11"} {
		a.op("ADD $%d, %s", 2*s.C*4, p)
	}
	a.op("ADD $%d, R1", s.C*4)
	a.op("SUBS $1, R9")
	a.op("BNE px")
	a.label("done")
	a.op("RET")
}

// emitAvgPool writes func(in, out *float32, inRow, h, w uintptr, scale
// float32): scale times the sum of every channel over an h×w interior.
func (a *neonText) emitAvgPool(name string, s plan.Pool) {
	nv := s.C / 4
	const chunk = 24
	a.begin(name, "func(in, out *float32, inRow, h, w uintptr, scale float32)", "44",
		fmt.Sprintf("%s averages each of %d channels over an h×w map: out = scale·Σ in.", name, s.C))
	a.op("MOVD out+8(FP), R1")
	a.op("MOVD inRow+16(FP), R5")
	a.op("FMOVS scale+40(FP), F31")
	a.op("VDUP V31.S[0], V31.S4")
	for v0 := 0; v0 < nv; v0 += chunk {
		n := min(chunk, nv-v0)
		lbl := fmt.Sprintf("c%d", v0)
		for i := 0; i < n; i++ {
			a.op("VEOR V%d.B16, V%d.B16, V%d.B16", i, i, i)
		}
		a.op("MOVD in+0(FP), R0")
		a.op("MOVD h+24(FP), R15")
		a.label(lbl + "row")
		a.op("MOVD R0, R10")
		a.op("MOVD w+32(FP), R16")
		a.label(lbl + "px")
		for i := 0; i < n; i++ {
			a.load128("R10", (v0+i)*16, 24+i%6)
			a.word(a.enc.fadd(i, i, 24+i%6))
		}
		a.op("ADD $%d, R10", s.C*4)
		a.op("SUBS $1, R16")
		a.op("BNE %spx", lbl)
		a.op("ADD R5, R0")
		a.op("SUBS $1, R15")
		a.op("BNE %srow", lbl)
		for i := 0; i < n; i++ {
			a.word(a.enc.fmul(i, i, 31))
			a.store128("R1", (v0+i)*16, i)
		}
	}
	a.op("RET")
}

// emitFC writes func(in, w, bias, out *float32, blocks uintptr): blocks
// blocks of fcBlock(neon) outputs of the classifier, weights packed
// [block][in][block outputs].
func (a *neonText) emitFC(name string, s plan.Pool) {
	const v = 4 // vectors per block
	bc := v * 4
	padded := (s.Out + bc - 1) / bc * bc
	g := plan.NEON.Group(s.C)
	a.begin(name, "func(in, w, bias, out *float32, blocks uintptr)", "40",
		fmt.Sprintf("%s computes blocks blocks of %d outputs of the %d→%d classifier (outputs padded to %d).", name, bc, s.C, s.Out, padded))
	a.op("MOVD in+0(FP), R0")
	a.op("MOVD w+8(FP), R14")
	a.op("MOVD bias+16(FP), R2")
	a.op("MOVD out+24(FP), R4")
	a.op("MOVD blocks+32(FP), R9")
	a.label("block")
	a.loadVectors("R2", 0, v)
	a.op("MOVD R0, R10")
	a.op("MOVD $%d, R16", s.C/g)
	a.label("in")
	if g == 4 {
		a.op("VLD1.P 16(R10), [V8.S4]")
	} else {
		a.op("FMOVS (R10), F8")
		a.op("ADD $4, R10")
	}
	for lane := 0; lane < g; lane++ {
		a.loadVectors("R14", 12, v)
		for j := 0; j < v; j++ {
			a.word(a.enc.fmlaElem(j, 12+j, 8, lane))
		}
	}
	a.op("SUBS $1, R16")
	a.op("BNE in")
	for j := 0; j < v; j++ {
		a.store128("R4", j*16, j)
	}
	a.op("ADD $%d, R4", bc*4)
	a.op("SUBS $1, R9")
	a.op("BNE block")
	a.op("RET")
}

// emitPeak writes fmaPeakNEON(n): n trips of 24 independent FMLAs on
// registers, no memory traffic (24 > 4 pipes × 4 cycles of latency).
func (a *neonText) emitPeak() {
	a.begin("fmaPeakNEON", "func(n uint64)", "8", "fmaPeakNEON runs n trips of 24 independent 4-lane FMAs (192 FLOPs a trip).")
	a.op("MOVD n+0(FP), R9")
	for i := 0; i < 26; i++ {
		a.op("VEOR V%d.B16, V%d.B16, V%d.B16", i, i, i)
	}
	a.op("CBZ R9, done")
	a.label("loop")
	for i := 0; i < 24; i++ {
		a.op("VFMLA V24.S4, V25.S4, V%d.S4", i)
	}
	a.op("SUBS $1, R9")
	a.op("BNE loop")
	a.label("done")
	a.op("RET")
}

// render returns the assembly file and the Go declarations of package pkg.
func (a *neonText) render(pkg string) (asm, decls []byte) {
	var s bytes.Buffer
	fmt.Fprintf(&s, "%s\n\n//go:build arm64 && !purego\n\n#include \"textflag.h\"\n", Header)
	s.Write(a.b.Bytes())
	var g bytes.Buffer
	fmt.Fprintf(&g, "%s\n\n//go:build arm64 && !purego\n\npackage %s\n", Header, pkg)
	for _, d := range a.decls {
		fmt.Fprintf(&g, "\n// %s\n//\n//go:noescape\nfunc %s%s\n", strings.ReplaceAll(d.doc, "\n", "\n// "), d.name, strings.TrimPrefix(d.sig, "func"))
	}
	src, err := format.Source(g.Bytes())
	if err != nil {
		panic(fmt.Sprintf("formatting NEON declarations: %v", err))
	}
	return s.Bytes(), src
}

// EmitNEON generates the arm64 NEON kernel files of package pkg for net's
// shapes: kernels_neon_arm64.s, kernels_neon_arm64.go and the table
// kernels_arm64.go.
func EmitNEON(pkg string, net *resnet.Network, o Options) (map[string][]byte, error) {
	p := plan.For(net, plan.NEON)
	a := &neonText{}
	for _, f := range p.Transforms {
		a.emitWinoIn(f)
		a.emitWinoOut(f)
	}
	for _, c := range p.Conv {
		a.emitConv(c.Name, c.Shape, c.Blocking, c.TH, c.TW)
		rem, remCol, remCorner := c.Remainders()
		if rem {
			a.emitConv(c.Name+"_rem", c.Shape, c.Blocking, c.RemTH, c.TW)
		}
		if remCol {
			a.emitConv(c.Name+"_remcol", c.Shape, c.Blocking, c.TH, c.RemTW)
		}
		if remCorner {
			a.emitConv(c.Name+"_remcorner", c.Shape, c.Blocking, c.RemTH, c.RemTW)
		}
	}
	for _, s := range p.Pools {
		switch s.Op {
		case resnet.OpMaxPool:
			a.emitMaxPool(s.Name, s)
		case resnet.OpGlobalAvgPool:
			a.emitAvgPool(s.Name, s)
		case resnet.OpFC:
			a.emitFC(s.Name, s)
		}
	}
	s, decls := a.render(pkg)
	tab, err := table(pkg, "arm64 && !purego", "on NEON", o.Int8, []plan.Plan{p})
	if err != nil {
		return nil, err
	}
	return map[string][]byte{"kernels_neon_arm64.s": s, "kernels_neon_arm64.go": decls, "kernels_arm64.go": tab}, nil
}

// EmitPeakNEON generates the NEON peak-FMA probe of package asm/peak:
// peak_arm64.s and peak_arm64.go.
func EmitPeakNEON() map[string][]byte {
	a := &neonText{}
	a.emitPeak()
	s, decls := a.render("peak")
	return map[string][]byte{"peak_arm64.s": s, "peak_arm64.go": decls}
}
