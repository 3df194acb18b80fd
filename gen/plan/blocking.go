package plan

import "github.com/resnetgen/resnetgen/asm"

// Blocking is a register tile and how its kernel walks the weights: TH×TW
// output pixels by V vectors of output channels held in accumulators while
// the loop over (ky, kx, ic) runs.
type Blocking struct {
	TH, TW, V int
	RemTH     int // rows of the last tile row when TH does not divide the output height; 0 if it does
	RemTW     int // columns of the last tile of a row when TW does not divide the output width; 0 if it does
	// PrefetchNext: the kernel asks for the next channel block's weights
	// (or, split, the next input-channel slice) into L2 while it computes,
	// for layers whose weights stream from memory: a block's first tile
	// waits for its panel and the others re-read it, so without this memory
	// idles during the later tiles. Each tile asks for one line per weight
	// row it reads (a different line on each of four consecutive tiles;
	// past the last block it asks beyond the weights, which a prefetch
	// may). The target is the next panel in memory: the driver walks each
	// worker's panels in memory order (asm.WinogradKernel's block-major U),
	// so it is the panel the worker reads next however the work is split.
	PrefetchNext bool
	// SpreadPrefetch: with PrefetchNext, the kernel's calls share the next
	// panel or slice by tile row instead, for kernels whose every tile row
	// reads each panel once a layer: the split kernels of one-tile calls and
	// the layers of one band (spreadsPrefetch).
	SpreadPrefetch bool
	// ICBlock, if not 0, splits the reduction of a kernel: a call covers
	// ICBlock of the InC input channels, a slice of the weight panel, and
	// the driver runs every tile row over one slice before the next
	// (asm.ConvKernel.ICBlock); see splitK.
	ICBlock int
}

// capPixels is chooseBlocking with tiles of at most 8 pixels and weight
// panels of at most 1 MiB: AVX512's alternative "p8". Each pixel of a tile
// is an input stream; with 1024 or 2048 input channels (or 512 at stride
// 2) the streams lie multiples of 4 KiB apart and share one set of an
// 8-way L1. And every tile of a channel block reads the block's whole panel
// (K²·InC·V·Lanes floats): one larger than a 1 MiB L2 comes from L3 again
// for each tile. Which of p8 and the rule wins depends on the core (its L1
// ways, its L2): the CPU rule picks (engine), `resnet tune` measures.
func capPixels(s Shape) Blocking { return chooseBlocking(s, avx512p8) }

// capPixelsSplit is the blocking p8's split kernels ("p8splitk") are built
// from: capPixels for 1x1 layers, whose slices (16 KiB) stay in L1, and
// for 3x3 layers p8's blocking with its L2 reads in the cost (their slices
// exceed L1): wider tiles re-read each slice less often. The same term for
// every p8 blocking changed most 1x1 tiles too, and lost there, so it
// applies here only.
func capPixelsSplit(s Shape) Blocking {
	if s.K == 1 {
		return capPixels(s)
	}
	return chooseBlocking(s, avx512p8Split)
}

// splitKBytes is the size of one input-channel slice of a split 1x1
// kernel's weight panel: what its tile rows re-read, from L1 (16 KiB fits
// Zen 4's 32 KiB L1 with room for the inputs; 64 KiB measured slower).
const splitKBytes = 16 << 10

// splitK3Bytes bounds the slice of a split 3x3 kernel (rounded down to a
// divisor of InC): its tile rows re-read it from L2 while the next slice
// is prefetched, so two slices and the input fit a 1 MiB L2. Smaller
// slices make 4–8 channels by 9 taps, short loops, and each slice re-reads
// its input rows: they measured slower, and so did splitting 3x3 layers
// below 4 MiB of weights.
const splitK3Bytes = 96 << 10

// splitK is b with the reduction split into input-channel slices
// (Blocking.ICBlock), for the layers whose weights stream from memory
// (directStreamsWeights; 3x3 layers only from 4 MiB); ok is false where InC
// has no such divisor. Unsplit, the first tile row of a block reads its
// whole panel from memory and the others re-read it from L2, and the
// memory stream pauses meanwhile (the hardware prefetcher stops). Split,
// the rows re-read a small slice from L1 (1x1) or L2 (3x3) and the stream
// pauses only briefly; MLAS's SGEMM likewise packs B in slices of K.
func splitK(s Shape, t Tier, b Blocking) (Blocking, bool) {
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
	if icb < 4 || icb >= s.InC || s.InC%icb != 0 || icb%t.Group(s.InC) != 0 {
		return b, false
	}
	b.ICBlock = icb
	b.PrefetchNext = true
	// Calls of one tile (a tile row of a small map) spread their
	// prefetches; calls of several ask per tile, which spreads by itself.
	b.SpreadPrefetch = s.OutW/b.TW == 1
	return b, true
}

// panelBytes is the size of one channel block's packed weights for blocks
// of bc output channels: what every tile of the block reads.
func panelBytes(s Shape, bc int) int { return s.K * s.K * s.InC * bc * 4 }

// directStreamsWeights reports whether a direct layer's weights stream
// from memory, 2 MiB or more: such a 1x1 layer prefetches the next
// block's weights (Blocking.PrefetchNext), and such layers get split
// variants (splitK; 3x3 layers from 4 MiB), which prefetch the next slice.
// Smaller layers' panels are read by enough tiles that the first tile's
// wait hardly counts; the layers of one band from 1 MiB prefetch spread
// over their tile rows instead (spreadsPrefetch).
func directStreamsWeights(s Shape) bool {
	return panelBytes(s, s.OutC) >= 2<<20 // all the layer's weights
}

// spreadsPrefetch reports whether a direct layer's unsplit kernels
// prefetch the next block's weights spread over their tile rows
// (Blocking.SpreadPrefetch): layers of 1 MiB of weights or more that run in
// one band of rows, their weights outweighing their input (asm.OneBand, the
// driver's rule), so every tile row reads each panel once and the rows'
// shares cover it. Layers in bands of rows re-read their panels per band
// and gained nothing from it.
func spreadsPrefetch(s Shape) bool {
	return panelBytes(s, s.OutC) >= 1<<20 && asm.OneBand(s)
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
func chooseBlocking(s Shape, t Tier) Blocking { return chooseBlockingV(s, t, 0) }

// chooseBlockingV is chooseBlocking with V fixed to onlyV (0: free), for a
// Winograd layer's last, shorter GEMM, whose channel blocks must be those
// of its main GEMM.
func chooseBlockingV(s Shape, t Tier, onlyV int) Blocking {
	var best Blocking
	bestCost, bestAcc, bestLoads := 0.0, 0, 0.0
	const eps = 1e-9
	g := t.Group(s.InC)
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
				if t.regsNeeded(r, v) > t.Regs || t.MaxPixels > 0 && r > t.MaxPixels ||
					t.PageAliasPixels > 0 && r > t.PageAliasPixels && pageAliased(s) {
					continue
				}
				remH, remW := s.OutH%th, s.OutW%tw
				if remW > 0 && !t.ColumnRemainders {
					continue
				}
				cand := Blocking{TH: th, TW: tw, V: v, RemTH: remH, RemTW: remW}
				cost := t.tilingSlowdown(s, cand)
				if remW > 0 {
					cost *= t.RemainderPenalty
				}
				acc := r * v
				loads := LoadsPerFMA(r, v, g)
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

// pageAliased reports whether the inputs of adjacent output pixels lie a
// multiple of 4 KiB apart, so that all of a tile's input streams share one
// page offset (Tier.PageAliasPixels).
func pageAliased(s Shape) bool { return s.Stride*s.InC*4%4096 == 0 }

// tilingSlowdown is b's modelled slowdown against peak over the output,
// its main and remainder tiles weighted by the pixels they cover.
func (t Tier) tilingSlowdown(s Shape, b Blocking) float64 {
	g := t.Group(s.InC)
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

// Efficiency is the modelled fraction of the FMA peak of b on s, averaged
// over its main and remainder tiles, on the tier's slowest machine.
func (t Tier) Efficiency(s Shape, b Blocking) float64 { return 1 / t.tilingSlowdown(s, b) }

// chooseGEMMBlocking is the blocking of a Winograd layer's product GEMM
// (onlyV as in chooseBlockingV): the rule's, but with the widest channel
// block whose tiling the model still rates as fast, whatever its column
// remainder. Every channel block re-reads all of the chunk's transformed
// inputs, so fewer, wider blocks read them fewer times; the rule alone
// prefers an exact tiling to a remainder (RemainderPenalty, set for the
// direct layers).
func chooseGEMMBlocking(s Shape, t Tier, onlyV int) Blocking {
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
func maxV(t Tier) int {
	if t.ByElement {
		return 8
	}
	return 4
}

// simpler prefers fewer remainder kernels: no column remainder, then TH = 1.
func simpler(a, b Blocking) bool {
	if (a.RemTW == 0) != (b.RemTW == 0) {
		return a.RemTW == 0
	}
	return b.TH != 1 && a.TH == 1
}

// Unroll picks how many input channels one trip of the broadcasting
// kernels' channel loop covers.
func Unroll(inC int) int {
	for _, u := range []int{4, 3, 2} {
		if inC%u == 0 {
			return u
		}
	}
	return 1
}
