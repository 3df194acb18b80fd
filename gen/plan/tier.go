package plan

// Tier describes one SIMD instruction set the plan targets: what the
// blocking rule needs (vector width, registers, how inputs reach the
// multiply-adds, the cores it models). The backends in gen/kernels render
// a plan for it (Avo for amd64, our own emitter for NEON).
type Tier struct {
	Name  string // "avx512", "avx2", "neon": the kernel name suffix and the asm.Tier
	Lanes int    // float32 per vector
	Regs  int    // vector registers
	// MaxPixels caps a tile's pixels (0: no cap). Each pixel is an input
	// stream, and on wide layers the streams lie multiples of 4 KiB apart,
	// in one L1 set: AVX2 (a broadcast per FMA) runs faster capped at 12;
	// AVX-512 (half the broadcasts per FMA) ran slower capped, so it is not.
	MaxPixels int
	// PageAliasPixels, if set, caps the pixels of a tile whose input
	// pixels lie a multiple of 4 KiB apart (Stride·InC·4 bytes: 1024 input
	// channels and more, or 512 at stride 2; the tile's rows then too), so
	// that every stream shares one page offset (see NEON).
	PageAliasPixels int
	// MaxPanelBytes caps a channel block's weight panel (K²·InC·V·Lanes
	// floats, read once per tile) by limiting V (0: no cap), so that it
	// stays in L2 from one tile to the next (see capPixels).
	MaxPanelBytes int
	// L2BytesPerCycle, if set, adds a tile's reads of its weights from L2
	// to the tile's modelled cost (l2Slowdown): for blockings whose every
	// tile re-reads weights that do not fit L1 (split 3x3 kernels:
	// capPixelsSplit). 0: not modelled.
	L2BytesPerCycle float64
	// ColumnRemainders lets TW leave a narrower last tile in each row (a
	// second kernel); otherwise TW must divide the width.
	ColumnRemainders bool
	// RemainderPenalty multiplies the modelled cost of a tiling with column
	// remainders (≥ 1): a second call per tile row and a narrow tile's
	// epilogue, which the model leaves out. AVX2's remainders measured
	// faster, so 1; AVX-512's 1.03 keeps the exact tilings of the family's
	// maps, while widths with no good divisor (13, 61, …) still get wide
	// tiles and a remainder rather than narrow tiles.
	RemainderPenalty float64
	// ByElement: the inner loop loads Lanes input channels of a pixel into
	// one register and multiplies by element (NEON's FMLA Vd, Vn, Vm.S[i]):
	// a tile of R pixels × V vectors holds R·V accumulators, R input and V
	// weight registers. Otherwise one input scalar is broadcast into one
	// register per pixel (AVX): R·V + V + 1 registers.
	ByElement bool
	// Machines are the cores the cost rule models; a tile's cost is its
	// worst slowdown against peak over them.
	Machines []Machine
	// MaxAcc caps a tile's accumulators (0: none): an epilogue that needs
	// registers of its own beside them (the int8 tiers' requantization).
	MaxAcc int
	// FixedRegs, if set, is the registers a tile needs besides its R·V
	// accumulators, whatever V (AVX2's int8 kernels read their weights
	// from memory as operands, holding none).
	FixedRegs int
	// Int8 marks the tiers of int8 kernels (uint8 × int8 products summed
	// into int32): their plan is ForInt8's, their kernels asm.QConvKernel.
	Int8 bool
	// Alternative, if set, is a second blocking planned beside the rule's
	// where the two differ, as the kernel variant AlternativeName: which
	// runs faster depends on the machine (see capPixels), so New picks by
	// the CPU rule and `resnet tune` by measurement.
	Alternative     func(Shape) Blocking
	AlternativeName string
	// SplitAlternative, if set, is the blocking the alternative's split
	// variant (AlternativeName+SplitVariant) is built from; otherwise the
	// alternative's own (see capPixelsSplit).
	SplitAlternative func(Shape) Blocking
}

// Machine is the throughput model of one core.
type Machine struct {
	Name      string
	FMAPipes  float64 // vector FMAs a cycle
	LoadPorts float64 // vector loads a cycle
	Latency   float64 // FMA latency in cycles
}

var (
	// x86: two FMA pipes and two vector loads a cycle. The FMA latency is
	// 4 cycles on paper; 5 matches what we measured (AVX2 tiles of 8
	// accumulators ran slower than tiles of 12, which a 4-cycle model calls
	// equal).
	x86 = Machine{"x86", 2, 2, 5}
	// Arm Neoverse N1 (Graviton2, Ampere Altra): two 128-bit FP/ASIMD pipes,
	// two loads a cycle, FMLA latency 4. Neoverse V1 (Graviton3): four
	// 128-bit pipes, three loads a cycle, latency 4. (Arm's software
	// optimization guides; no arm64 machine here to measure.)
	NeoverseN1 = Machine{"N1", 2, 2, 4}
	NeoverseV1 = Machine{"V1", 4, 3, 4}

	// AVX512 is AVX-512F: 32 zmm registers of 16 floats. Its alternative
	// blocking "p8" caps tiles and panels (capPixels).
	AVX512 = Tier{Name: "avx512", Lanes: 16, Regs: 32, ColumnRemainders: true, RemainderPenalty: 1.03, Machines: []Machine{x86},
		Alternative: capPixels, AlternativeName: "p8", SplitAlternative: capPixelsSplit}
	// AVX2 is AVX2 + FMA: 16 ymm registers of 8 floats.
	AVX2 = Tier{Name: "avx2", Lanes: 8, Regs: 16, MaxPixels: 12, ColumnRemainders: true, RemainderPenalty: 1, Machines: []Machine{x86}}
	// NEON is arm64's Advanced SIMD: 32 registers of 4 floats, multiplied
	// by element. Neoverse N1 and V1 both have a 64 KiB 4-way L1D: 256 sets
	// indexed by address bits 6–13, of which 12–13 lie above a 4 KiB page
	// (and the cache behaves as physically indexed), so input pixels that
	// share their page offset compete for the 4 ways of the 4 sets their
	// offset selects, wherever their pages land. A tile of more than 4 such
	// pixels can put 5 input streams into one set, beside the weights':
	// PageAliasPixels caps them at 4. Tiles of 4 pixels × 4 vectors (16
	// accumulators) model at peak on both cores, so the cap costs nothing
	// in the model; the cores agree on it, so it is the rule's blocking, not
	// a second blocking to choose between per core (as AVX512's p8 is).
	NEON = Tier{Name: "neon", Lanes: 4, Regs: 32, PageAliasPixels: 4, ColumnRemainders: true, RemainderPenalty: 1, ByElement: true,
		Machines: []Machine{NeoverseN1, NeoverseV1}}

	// VNNI is AVX-512 VNNI for int8: VPDPBUSD multiplies a broadcast dword of
	// 4 uint8 inputs by 16 output channels × 4 int8 weights, 64
	// multiply-adds an instruction where an FMA does 16, at the FMA's rate
	// on our cores; the tile rule is AVX512's. The epilogue needs 4
	// registers beside the accumulators.
	VNNI = Tier{Name: "vnni", Lanes: 16, Regs: 32, ColumnRemainders: true, RemainderPenalty: 1.03, Machines: []Machine{x86},
		MaxAcc: 28, Int8: true}
	// AVX2Int8 is AVX2 for int8, exact: each input dword of 4 uint8 is
	// spread into two pairs of int16 (VPSHUFB) and multiplied with weights
	// widened to int16 by VPMADDWD, whose int32 pair sums cannot saturate
	// (VPMADDUBSW's int16 sums would). The weights are memory operands: a
	// tile holds its accumulators, the broadcast, two pairs, a product and
	// two shuffle masks.
	AVX2Int8 = Tier{Name: "avx2", Lanes: 8, Regs: 16, ColumnRemainders: true, RemainderPenalty: 1, Machines: []Machine{x86},
		FixedRegs: 6, Int8: true}

	// avx512p8 is AVX512 with tiles of at most 8 pixels and panels of at
	// most 1 MiB (capPixels).
	avx512p8 = Tier{Name: "avx512", Lanes: 16, Regs: 32, MaxPixels: 8, MaxPanelBytes: 1 << 20, ColumnRemainders: true, RemainderPenalty: 1.03, Machines: []Machine{x86}}
	// avx512p8Split is avx512p8 for the blocking of its split 3x3 kernels
	// (capPixelsSplit): their slices (64 to 96 KiB, splitK3Bytes) exceed
	// L1, so every tile re-reads its slice from L2. 24 bytes a cycle rates
	// tiles of 4 pixels L2-bound (1.33× peak) and tiles of 6 or more not,
	// as measured (docs/bench/history.md).
	avx512p8Split = func() Tier { t := avx512p8; t.L2BytesPerCycle = 24; return t }()
)

// Group is how many input channels one input load of a pixel brings to
// the FMAs: Lanes for a by-element tier when the channels come in whole
// vectors, else 1 (a broadcast, or a scalar load used by element).
func (t Tier) Group(inC int) int {
	if t.ByElement && inC%t.Lanes == 0 {
		return t.Lanes
	}
	return 1
}

// regsNeeded is the vector registers of an R-pixel × V-vector tile.
func (t Tier) regsNeeded(r, v int) int {
	if t.MaxAcc > 0 && r*v > t.MaxAcc {
		return t.Regs + 1
	}
	if t.FixedRegs > 0 {
		return r*v + t.FixedRegs
	}
	if t.ByElement {
		return r*v + r + v
	}
	return r*v + v + 1
}

// LoadsPerFMA is the vector loads per FMA of the inner loop: per group of
// input channels, R input loads and group·V weight vectors feed group·R·V
// FMAs.
func LoadsPerFMA(r, v, group int) float64 {
	return float64(r+group*v) / float64(group*r*v)
}

// cyclesPerFMA estimates the inner loop's cost on m for R pixels × V
// vectors: the FMA pipes, the loads, or the latency of R·V accumulator
// chains, whichever binds.
func (m Machine) cyclesPerFMA(r, v, group int) float64 {
	return max(1/m.FMAPipes, LoadsPerFMA(r, v, group)/m.LoadPorts, m.Latency/float64(r*v))
}

// Efficiency is the modelled fraction of m's FMA peak of a tile.
func (m Machine) Efficiency(r, v, group int) float64 {
	return 1 / m.FMAPipes / m.cyclesPerFMA(r, v, group)
}

// slowdown is a tile's worst cost against peak over the tier's machines (1
// is peak on all of them).
func (t Tier) slowdown(r, v, group int) float64 {
	worst := 0.0
	for _, m := range t.Machines {
		worst = max(worst, 1/m.Efficiency(r, v, group))
	}
	return worst
}

// l2Slowdown is the slowdown against peak of a tile of r pixels that reads
// its weights from L2 (0 where the tier does not model it): per input
// channel and tap the tile reads V vectors of weights (V·Lanes·4 bytes) for
// V·r FMAs, so the L2 time over the FMA time is Lanes·4·FMAPipes /
// (L2BytesPerCycle·r), whatever V.
func (t Tier) l2Slowdown(r int) float64 {
	if t.L2BytesPerCycle == 0 {
		return 0
	}
	worst := 0.0
	for _, m := range t.Machines {
		worst = max(worst, float64(t.Lanes*4)*m.FMAPipes/t.L2BytesPerCycle/float64(r))
	}
	return worst
}
