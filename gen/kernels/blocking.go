package kernels

import "github.com/resnetgen/resnetgen/asm"

// tier describes one SIMD instruction set the generator targets: what the
// blocking rule needs (vector width, registers, how inputs reach the FMAs,
// the cores it models). The amd64 tiers are emitted with Avo, NEON by
// neon.go.
type tier struct {
	Name  string // "avx512", "avx2", "neon": the kernel name suffix and the asm.Tier
	Lanes int    // float32 per vector
	Regs  int    // vector registers
	// MaxPixels caps a tile's pixels (0: no cap). Each pixel is an input
	// stream, and on wide layers the streams lie multiples of 4 KiB apart,
	// in one L1 set. Measured here on the 7x7-output layers: AVX2 with
	// 2x7-pixel tiles reached 0.54–0.70 of peak, capped at 12 pixels
	// 0.67–0.73; AVX-512 (half the broadcasts per FMA) fell from 0.88 to
	// 0.62 when capped, so it is not.
	MaxPixels int
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
	// epilogue, which the model leaves out. AVX2's remainders were chosen by
	// measurement (+9 %), at 1. AVX-512's tiles for the family's maps were
	// measured without remainders (TW divides 112, 56, 28, 14, 7 and the
	// CIFAR maps); 1.03 keeps those, while widths with no good divisor (13,
	// 61, …) still get wide tiles and a remainder rather than narrow tiles.
	RemainderPenalty float64
	// ByElement: the inner loop loads Lanes input channels of a pixel into
	// one register and multiplies by element (NEON's FMLA Vd, Vn, Vm.S[i]):
	// a tile of R pixels × V vectors holds R·V accumulators, R input and V
	// weight registers. Otherwise one input scalar is broadcast into one
	// register per pixel (AVX): R·V + V + 1 registers.
	ByElement bool
	// Machines are the cores the cost rule models; a tile's cost is its
	// worst slowdown against peak over them.
	Machines []machine
	// Alternative, if set, is a second blocking generated beside the
	// rule's where the two differ, as the kernel variant AlternativeName:
	// which runs faster depends on the machine (see capPixels), so New
	// picks by CPU family and `resnet tune` by measurement.
	Alternative     func(convShape) blocking
	AlternativeName string
	// SplitAlternative, if set, is the blocking the alternative's split
	// variant (AlternativeName+splitName) is built from; otherwise the
	// alternative's own (see capPixelsSplit).
	SplitAlternative func(convShape) blocking
}

// capPixels is chooseBlocking with tiles of at most 8 pixels and weight
// panels of at most 1 MiB. Each pixel of a tile is an input stream; with
// 1024 or 2048 input channels (or 512 at stride 2) the streams lie
// multiples of 4 KiB apart and share one set of an 8-way L1. Measured on
// Zen 4 (AVX-512, one thread): 1x1 1024→256 on 14×14 0.66 → 0.93 of
// peak, 2048→512 on 7×7 0.59 → 0.94, 512→1024/2 on 28×28 0.58 → 0.89; 13
// of the family's 38 shapes gain, 2 lose (512→256 on 28×28 0.93 → 0.87);
// median 0.88 → 0.91. On Zen 5 the kernels alone
// with warm weights rank the 7×7 layers the other way (a cap of 12 pixels:
// 0.88 → 0.62), but in the network, weights cold, p8 wins there too
// (on 2048→512 only in its split form, p8splitk: engine's
// defaultVariant).
//
// The panel cap: every tile of a channel block reads the block's whole
// panel (K²·InC·V·Lanes floats); one larger than the L2 (1 MiB on Zen 4)
// comes from L3 again for each tile. ResNet-50's 3x3/2 512→512 on 14×14
// (layer4.0.conv2) had 4×1-pixel tiles of 64 channels, a 1.18 MB panel
// read by 14 tiles: 0.68 of peak alone. Capped, 1×7 pixels by 32
// channels (a 576 KiB panel read by 7 tiles, the same results bit for
// bit): on Zen 4, alone with its weights cold, 40 interleaved rounds
// against the old kernel and a second copy of it (whose ratio, 1.04 and
// 1.00, is the noise), 0.89× the time on one thread and 0.93× on two.
func capPixels(s convShape) blocking { return chooseBlocking(s, avx512p8) }

// avx512p8 is the AVX-512 tier with tiles of at most 8 pixels and panels
// of at most 1 MiB.
var avx512p8 = tier{Name: "avx512", Lanes: 16, Regs: 32, MaxPixels: 8, MaxPanelBytes: 1 << 20, ColumnRemainders: true, RemainderPenalty: 1.03, Machines: []machine{x86}}

// machine is the throughput model of one core.
type machine struct {
	Name      string
	FMAPipes  float64 // vector FMAs a cycle
	LoadPorts float64 // vector loads a cycle
	Latency   float64 // FMA latency in cycles
}

var (
	// amd64: two FMA pipes and two vector loads a cycle. The FMA latency is
	// 4 cycles on paper; 5 matches what we measured: AVX2 tiles of 8
	// accumulators ran 9 % slower than tiles of 12 (interleaved A/B), which
	// a 4-cycle model calls equal.
	x86 = machine{"x86", 2, 2, 5}
	// Arm Neoverse N1 (Graviton2, Ampere Altra): two 128-bit FP/ASIMD pipes,
	// two loads a cycle, FMLA latency 4. Neoverse V1 (Graviton3): four
	// 128-bit pipes, three loads a cycle, latency 4. (Arm's software
	// optimization guides; no arm64 machine here to measure.)
	neoverseN1 = machine{"N1", 2, 2, 4}
	neoverseV1 = machine{"V1", 4, 3, 4}

	avx512 = tier{Name: "avx512", Lanes: 16, Regs: 32, ColumnRemainders: true, RemainderPenalty: 1.03, Machines: []machine{x86},
		Alternative: capPixels, AlternativeName: "p8", SplitAlternative: capPixelsSplit}
	avx2 = tier{Name: "avx2", Lanes: 8, Regs: 16, MaxPixels: 12, ColumnRemainders: true, RemainderPenalty: 1, Machines: []machine{x86}}
	neon = tier{Name: "neon", Lanes: 4, Regs: 32, ColumnRemainders: true, RemainderPenalty: 1, ByElement: true,
		Machines: []machine{neoverseN1, neoverseV1}}
)

// blocking is a register tile: TH×TW output pixels by V vectors of output
// channels held in accumulators while the loop over (ky, kx, ic) runs.
type blocking struct {
	TH, TW, V int
	RemTH     int // rows of the last tile row when TH does not divide the output height; 0 if it does
	RemTW     int // columns of the last tile of a row when TW does not divide the output width; 0 if it does
	// PrefetchNext: each tile asks for one line of the next channel
	// block's weights into L2 per weight row it reads (a different line on
	// each of four consecutive tiles; past the last block it asks for
	// lines beyond the weights, which a prefetch may: it never faults).
	// For the Winograd products of layers whose weights come from memory
	// (prefetchesWeights): a block's first tile waits for its panel and the
	// others re-read it (from L2, or from L1 where icBlock splits the
	// panel into 128-channel slices), so without this memory idles during
	// the later tiles. Measured on Zen 4, the layer alone with its weights
	// cold, 40 interleaved rounds against the same kernels prefetching
	// their own panel (no gain, same instructions): 7×7×512 F(2,3) 0.90×
	// the time on one thread, 0.86× on two; 14×14×256 0.98× and 0.94×.
	// In ResNet-18 (bench -layers, three alternations) layer4's three
	// layers 5.46 → 5.04 ms on one thread, 3.86 → 3.05 ms on two; for
	// 28×28×128 F(4,3) see prefetchesWeights. On the F(4,3) layers whose
	// weights stay cached (56×56×64) it cost 10–20 % (bench -layers), so
	// they do not get it. The target is the next panel in memory: the
	// driver walks each worker's panels in memory order (block-major U for
	// layers of one chunk, plane-major otherwise: asm.WinogradKernel), so
	// it is the panel the worker reads next however the work is split.
	// The direct 1x1 layers with 2 MiB of weights or more get it too, and
	// the split kernels (splitK) ask for the next slice (directStreamsWeights);
	// the layers of one band from 1 MiB (spreadsPrefetch) and the split
	// kernels of one-tile calls ask in the form of SpreadPrefetch.
	// amd64 only.
	PrefetchNext bool
	// SpreadPrefetch: with PrefetchNext, the kernel's calls share the next
	// panel or slice by tile row instead (spreadPrefetch), for kernels
	// whose every tile row reads each panel once a layer: the split
	// kernels of one-tile calls and the layers of one band (spreadsPrefetch).
	SpreadPrefetch bool
	// ICBlock, if not 0, splits the reduction of a kernel: a call
	// covers ICBlock of the InC input channels, a slice of the weight
	// panel, and the driver runs every tile row over one slice before the
	// next (asm.ConvKernel.ICBlock); see splitK.
	ICBlock int
}

// splitKBytes is the size of one input-channel slice of a split kernel's
// weight panel: what its tile rows re-read, from L1. Measured on Zen 5
// (48 KiB L1) in ResNet-50, one thread, three alternations: layer4's
// streaming 1x1 layers at 16 KiB as fast as or a little faster than at
// 32 KiB (7×7 layers 0.61–0.69 ms against 0.62–0.79), 64 KiB clearly
// slower (0.75–0.95); 16 KiB also leaves room in Zen 4's 32 KiB L1.
const splitKBytes = 16 << 10

// splitK is b with the reduction split into slices of splitKBytes of
// weights (blocking.ICBlock), for the 1x1 layers whose weights stream
// from memory (directStreamsWeights); ok is false where InC has no such
// divisor. Unsplit, the first tile row of a block reads its whole panel
// (up to 1 MiB) from memory and the others re-read it from L2, and the
// memory stream pauses meanwhile: on Zen 5 the hardware prefetcher stops
// and software prefetches did not make up for it (as for the Winograd
// products, icBlock). Split, the rows re-read a small slice from L1 and
// the stream pauses only briefly; MLAS's SGEMM likewise packs B in slices
// of K and accumulates into C. The engine's default picks these variants
// (engine.SplitVariant), measured in engine.defaultVariant. 3x3 layers
// split in slices of splitK3Bytes instead, and only from 4 MiB of weights.
func splitK(s convShape, t tier, b blocking) (blocking, bool) {
	bytes := splitKBytes
	if s.K > 1 {
		if panelBytes(s, s.OutC) < 4<<20 { // all the layer's weights
			return b, false
		}
		bytes = splitK3Bytes
	}
	icb := bytes / (4 * s.K * s.K * b.V * t.Lanes)
	for s.K > 1 && icb > 0 && s.InC%icb != 0 {
		icb--
	}
	if icb < 4 || icb >= s.InC {
		return b, false
	}
	b.ICBlock = icb
	b.PrefetchNext = true
	// Calls of one tile (a tile row of a small map) spread their
	// prefetches; calls of several ask per tile, which spreads by itself.
	b.SpreadPrefetch = s.OutW/b.TW == 1
	return b, true
}

// splitK3Bytes bounds the slice of a split 3x3 kernel (rounded down to a
// divisor of InC): its tile rows re-read it from L2 while the next slice
// is prefetched (blocking.PrefetchNext), so two slices and the input fit a
// 1 MiB L2. Unsplit, such a layer's 576 KiB panel, the next one and its
// input did not, and prefetching the next panel cost 10–20 %; slices of 16
// or 32 KiB lost too (an earlier session, Zen 5, ResNet-50 on one thread:
// 512→512/2 1.76–1.96 ms against 1.44–1.49 unsplit, 256→256/2 1.32–1.53
// against 1.27–1.30): 4–8 channels by 9 taps make short loops, and each
// slice re-reads its input rows. Measured on Zen 5 (EPYC family 26 model 2), `resnet
// bench -kernels -cold`, one thread: 512→512/2 on 14×14 0.85 of peak
// split (64-channel slices of p8's 32-channel blocks, 72 KiB) against
// 0.74–0.75; 256→512/2 on 14×14 0.74 against 0.70–0.72; 256→256/2 on 28×28
// 0.92 against 0.87–0.88. Inside the networks (bench -layers, three
// alternations): ResNet-50's 512→512/2 0.62–0.63 ms against 0.69–0.70 on
// two threads; ResNet-18's 256→512/2 0.69–0.70 against 0.73–0.75 on one
// thread, 0.33–0.36 against 0.35 on two; but ResNet-50's 256→256/2 (2.25
// MiB) 0.72–0.75 against 0.61–0.62 on two threads, so 3x3 layers split
// only from 4 MiB. Whole networks, three alternations: ResNet-50
// 32.0–32.9 ms against 32.9–33.0 on one thread, 17.6–17.8 against
// 17.7–18.0 on two; ResNet-18 level on one thread, 5.38–5.66 against
// 5.53–5.72 on two.
const splitK3Bytes = 96 << 10

// panelBytes is the size of one channel block's packed weights for blocks
// of bc output channels: what every tile of the block reads.
func panelBytes(s convShape, bc int) int { return s.K * s.K * s.InC * bc * 4 }

// directStreamsWeights reports whether a direct layer's weights stream
// from memory, 2 MiB or more: such a 1x1 layer prefetches the next block's
// weights (blocking.PrefetchNext), and such layers get split variants
// (splitK; 3x3 layers from 4 MiB), which prefetch the next slice. (Layers
// of one band from 1 MiB, 3x3 ones included, ask for the next panel spread
// over their tile rows instead: spreadsPrefetch, which supersedes the
// figures below for the 1 MiB and the 3x3/2 layers.) Measured on Zen 4 as for the Winograd products (each
// layer alone, weights cold, 20 interleaved rounds, the time with ÷
// without, 1 and 2 threads): ResNet-50's 512→2048 on 7×7 0.85 and 0.92,
// 1024→2048/2 on 14×14 0.92 and 0.89, 2048→512 on 7×7 1.01 and 0.93,
// 512→1024/2 on 28×28 0.99 and 0.92, 1024→512 on 14×14 0.99 and 1.01;
// the 1 MiB ones (256→1024, 1024→256 on 14×14) and the 3x3/2 layers
// (2.4 and 9.4 MB) 0.98–1.03, so they do not get it: their panels are
// read by enough tiles that the first tile's wait hardly counts.
func directStreamsWeights(s convShape) bool {
	return panelBytes(s, s.OutC) >= 2<<20 // all the layer's weights
}

// spreadsPrefetch reports whether a direct layer's unsplit kernels prefetch
// the next block's weights spread over their tile rows
// (blocking.SpreadPrefetch): layers of 1 MiB of weights or more that run in
// one band of rows, their weights outweighing their input (asm.ConvShape's
// OneBand, the driver's rule), so every tile row reads each panel once and the
// rows' shares cover it. Zen 5 (EPYC family 26 model 2), ResNet-50 on one
// thread, bench -layers, three alternations: its eleven 1x1 layers on 14×14
// (1 MiB) 5.36–5.45 ms against 5.61–5.68 in all, 2.78–2.84 against
// 2.86–2.92 on two threads; the 3x3/2 256→256 on 28×28 (2.25 MiB) 1.11 ms
// against 1.16. The 3x3/2 128→128 on 56×56 (576 KiB, in bands) lost 0.14
// ms this way, and the 1x1 layers of 256–512 KiB on 28×28 and 56×56 (in
// bands) were level. Before, the 1 MiB layers did not prefetch: asking
// for the next panel per tile (as directStreamsWeights' layers do) was
// level for them. The unsplit kernels of 2 MiB or more, which asked per
// tile before, gain with their weights cold (`bench -kernels -cold`,
// medians of three passes; New picks their split variants, which stay
// faster): 2048→512 on 7×7 0.66 → 0.85 of peak (p8 0.62 → 0.76),
// 1024→2048/2 on 14×14 0.71 → 0.87 (p8 0.66 → 0.81), 512→2048 on 7×7
// 0.68 → 0.87.
func spreadsPrefetch(s convShape) bool {
	return panelBytes(s, s.OutC) >= 1<<20 && asm.ConvShape(s).OneBand()
}

// group is how many input channels one input load of a pixel brings to the
// FMAs: Lanes for a by-element tier when the channels come in whole
// vectors, else 1 (a broadcast, or a scalar load used by element).
func (t tier) group(inC int) int {
	if t.ByElement && inC%t.Lanes == 0 {
		return t.Lanes
	}
	return 1
}

// regsNeeded is the vector registers of an R-pixel × V-vector tile.
func (t tier) regsNeeded(r, v int) int {
	if t.ByElement {
		return r*v + r + v
	}
	return r*v + v + 1
}

// loadsPerFMA is the vector loads per FMA of the inner loop: per group of
// input channels, R input loads and group·V weight vectors feed group·R·V
// FMAs.
func loadsPerFMA(r, v, group int) float64 {
	return float64(r+group*v) / float64(group*r*v)
}

// cyclesPerFMA estimates the inner loop's cost on m for R pixels × V
// vectors: the FMA pipes, the loads, or the latency of R·V accumulator
// chains, whichever binds.
func (m machine) cyclesPerFMA(r, v, group int) float64 {
	return max(1/m.FMAPipes, loadsPerFMA(r, v, group)/m.LoadPorts, m.Latency/float64(r*v))
}

// efficiency is the modelled fraction of m's FMA peak of a tile.
func (m machine) efficiency(r, v, group int) float64 {
	return 1 / m.FMAPipes / m.cyclesPerFMA(r, v, group)
}

// slowdown is a tile's worst cost against peak over the tier's machines (1
// is peak on all of them).
func (t tier) slowdown(r, v, group int) float64 {
	worst := 0.0
	for _, m := range t.Machines {
		worst = max(worst, 1/m.efficiency(r, v, group))
	}
	return worst
}

// l2Slowdown is the slowdown against peak of a tile of r pixels that reads
// its weights from L2 (0 where the tier does not model it): per input
// channel and tap the tile reads V vectors of weights (V·Lanes·4 bytes) for
// V·r FMAs, so the L2 time over the FMA time is Lanes·4·FMAPipes /
// (L2BytesPerCycle·r), whatever V.
func (t tier) l2Slowdown(r int) float64 {
	if t.L2BytesPerCycle == 0 {
		return 0
	}
	worst := 0.0
	for _, m := range t.Machines {
		worst = max(worst, float64(t.Lanes*4)*m.FMAPipes/t.L2BytesPerCycle/float64(r))
	}
	return worst
}

// avx512p8Split is avx512p8 for the blocking of its split 3x3 kernels
// (capPixelsSplit): their slices (64 to 96 KiB, splitK3Bytes) exceed L1, so
// every tile re-reads its slice from L2. 24 bytes a cycle rates tiles of 4
// pixels L2-bound (1.33× peak) and tiles of 6 or more not: p8's 4×1-pixel
// tiles of 4 vectors on 3x3/2 256→512 (ResNet-18, -34) ran at 0.71–0.74
// of peak alone with their weights cold (`resnet bench -kernels -cold`),
// its 1×7 of 2 vectors 0.87.
var avx512p8Split = func() tier { t := avx512p8; t.L2BytesPerCycle = 24; return t }()

// capPixelsSplit is the blocking p8's split kernels ("p8splitk") are
// built from: capPixels for 1x1 layers, whose slices (16 KiB) stay in L1,
// and for 3x3 layers p8's blocking with L2 reads in its cost. Measured
// on Zen 5 (EPYC family 26 model 2) inside ResNet-18 (bench -layers, three
// alternations), layer4.0.conv1 (3x3/2 256→512) in 1×7 pixels by 2
// vectors, 64-channel slices: 0.549–0.576 ms against 0.691–0.725 in p8's
// 4×1 by 4 vectors, 32-channel slices, on one thread; 0.268–0.296 against
// 0.337–0.355 on two. (The rule's split 2×7 by 2 vectors: 0.58–0.65 and
// 0.27–0.31.) The same cost term for every p8 blocking changed most 1x1
// tiles too, and lost up to 17 % on 1x1/2 1024→2048 (its slices fit L1;
// its 7-pixel input streams lie 8 KiB apart), so it applies here only.
func capPixelsSplit(s convShape) blocking {
	if s.K == 1 {
		return capPixels(s)
	}
	return chooseBlocking(s, avx512p8Split)
}

// chooseBlocking is the register-blocking rule:
//
//  1. V vectors per tile, with OutC a multiple of V·Lanes.
//  2. A tile of R = TH·TW pixels fits the register file (regsNeeded) and
//     R ≤ the tier's MaxPixels where it has one.
//  3. TH ≤ 4 need not divide the output height: the last tile row then
//     uses a second kernel with the remaining rows. TW need not divide the
//     output width where the tier allows ColumnRemainders: the last tile
//     of each row, and the corner, then use narrower kernels, and the
//     tiling's cost is multiplied by the tier's RemainderPenalty.
//  4. Lowest modelled slowdown (averaged over the main and remainder tiles,
//     weighted by the pixels they cover; the worst over the tier's
//     machines); then most accumulators (they amortise the per-tile
//     epilogue and call); then fewest loads per FMA; then the simpler
//     tiling (no column remainder, then TH = 1).
func chooseBlocking(s convShape, t tier) blocking { return chooseBlockingV(s, t, 0) }

// chooseBlockingV is chooseBlocking with V fixed to onlyV (0: free), for a
// Winograd layer's last, shorter GEMM, whose channel blocks must be those
// of its main GEMM.
func chooseBlockingV(s convShape, t tier, onlyV int) blocking {
	var best blocking
	bestCost, bestAcc, bestLoads := 0.0, 0, 0.0
	const eps = 1e-9
	g := t.group(s.InC)
	for v := maxV(t); v >= 1; v-- {
		if s.OutC%(v*t.Lanes) != 0 || onlyV != 0 && v != onlyV {
			continue
		}
		if t.MaxPanelBytes > 0 && panelBytes(s, v*t.Lanes) > t.MaxPanelBytes && v > 1 {
			continue
		}
		for th := 1; th <= 4 && th <= s.OutH; th++ {
			for tw := 1; tw <= s.OutW; tw++ {
				r := th * tw
				if t.regsNeeded(r, v) > t.Regs || t.MaxPixels > 0 && r > t.MaxPixels {
					continue
				}
				remH, remW := s.OutH%th, s.OutW%tw
				if remW > 0 && !t.ColumnRemainders {
					continue
				}
				cand := blocking{TH: th, TW: tw, V: v, RemTH: remH, RemTW: remW}
				cost := t.tilingSlowdown(s, cand)
				if remW > 0 {
					cost *= t.RemainderPenalty
				}
				acc := r * v
				loads := loadsPerFMA(r, v, g)
				better := bestAcc == 0 || cost < bestCost-eps ||
					cost < bestCost+eps && (acc > bestAcc ||
						acc == bestAcc && (loads < bestLoads-eps ||
							loads < bestLoads+eps && simpler(cand, best)))
				if better {
					best = cand
					bestCost, bestAcc, bestLoads = cost, acc, loads
				}
			}
		}
	}
	if bestAcc == 0 {
		panic("no blocking")
	}
	return best
}

// tilingSlowdown is b's modelled slowdown against peak over the output,
// its main and remainder tiles weighted by the pixels they cover.
func (t tier) tilingSlowdown(s convShape, b blocking) float64 {
	g := t.group(s.InC)
	slowdown := func(r int) float64 { return max(t.slowdown(r, b.V, g), t.l2Slowdown(r)) }
	fullH, fullW := s.OutH-b.RemTH, s.OutW-b.RemTW
	cost := slowdown(b.TH*b.TW) * float64(fullH*fullW)
	if b.RemTH > 0 {
		cost += slowdown(b.RemTH*b.TW) * float64(b.RemTH*fullW)
	}
	if b.RemTW > 0 {
		cost += slowdown(b.TH*b.RemTW) * float64(fullH*b.RemTW)
	}
	if b.RemTH > 0 && b.RemTW > 0 {
		cost += slowdown(b.RemTH*b.RemTW) * float64(b.RemTH*b.RemTW)
	}
	return cost / float64(s.OutH*s.OutW)
}

// chooseGEMMBlocking is the blocking of a Winograd layer's product GEMM
// (onlyV as in chooseBlockingV): the rule's, but with the widest channel
// block whose tiling the model still rates as fast, whatever its column
// remainder. Every channel block re-reads all of the chunk's transformed
// inputs, so fewer, wider blocks read them fewer times; the rule alone
// prefers an exact tiling to a remainder (RemainderPenalty, set for the
// direct layers). Measured on Zen 5 (EPYC family 26 model 2), ResNet-18,
// one thread, three alternations of two builds (bench -layers): the
// 14×14×256 F(2,3) GEMM (49 tiles) in 1×5-pixel tiles of 64 channels
// with a 1×4 remainder 0.64–0.68 ms per layer, 1×6 of 64 with a 1×1
// remainder 0.65–0.68, against 0.67–0.74 in the rule's 1×7 of 32.
func chooseGEMMBlocking(s convShape, t tier, onlyV int) blocking {
	best := chooseBlockingV(s, t, onlyV)
	if onlyV != 0 {
		return best
	}
	const eps = 1e-9
	for v := maxV(t); v > best.V; v-- {
		if s.OutC%(v*t.Lanes) != 0 || t.MaxPanelBytes > 0 && panelBytes(s, v*t.Lanes) > t.MaxPanelBytes {
			continue
		}
		if b := chooseBlockingV(s, t, v); t.tilingSlowdown(s, b) <= t.tilingSlowdown(s, best)+eps {
			return b
		}
	}
	return best
}

// maxV is the most vectors of output channels a tile may hold.
func maxV(t tier) int {
	if t.ByElement {
		return 8
	}
	return 4
}

// simpler prefers fewer remainder kernels: no column remainder, then TH = 1.
func simpler(a, b blocking) bool {
	if (a.RemTW == 0) != (b.RemTW == 0) {
		return a.RemTW == 0
	}
	return b.TH != 1 && a.TH == 1
}

// unroll picks how many input channels one trip of the channel loop covers.
func unroll(inC int) int {
	for _, u := range []int{4, 3, 2} {
		if inC%u == 0 {
			return u
		}
	}
	return 1
}
