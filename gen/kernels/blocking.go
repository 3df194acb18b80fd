package kernels

// tier describes one SIMD instruction set the generator targets. A tier
// only needs its vector width and register count for blocking; the
// instruction emission is shared by the amd64 tiers (Avo) and will be
// separate for NEON.
type tier struct {
	Name  string // "avx512", "avx2": the kernel name suffix and the asm.Tier
	Lanes int    // float32 per vector
	Regs  int    // vector registers
	// MaxPixels caps a tile's pixels (0: no cap). Each pixel is an input
	// stream, and on wide layers the streams lie multiples of 4 KiB apart,
	// in one L1 set. Measured here on the 7x7-output layers: AVX2 with
	// 2x7-pixel tiles reached 0.54–0.70 of peak, capped at 12 pixels
	// 0.67–0.73; AVX-512 (half the broadcasts per FMA) fell from 0.88 to
	// 0.62 when capped, so it is not.
	MaxPixels int
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
}

var (
	avx512 = tier{"avx512", 16, 32, 0, true, 1.03}
	avx2   = tier{"avx2", 8, 16, 12, true, 1}
)

// blocking is a register tile: TH×TW output pixels by V vectors of output
// channels held in accumulators while the loop over (ky, kx, ic) runs.
type blocking struct {
	TH, TW, V int
	RemTH     int // rows of the last tile row when TH does not divide the output height; 0 if it does
	RemTW     int // columns of the last tile of a row when TW does not divide the output width; 0 if it does
}

// Throughput model of a core, the same for both amd64 tiers here: two FMA
// pipes and two vector loads a cycle. The FMA latency is 4 cycles on paper;
// 5 matches what we measured: AVX2 tiles of 8 accumulators ran 9 % slower
// than tiles of 12 (interleaved A/B), which a 4-cycle model calls equal.
const (
	fmaPorts   = 2.0
	fmaLatency = 5.0
	loadPorts  = 2.0
)

// cyclesPerFMA estimates the inner loop's cost for R pixels × V vectors: the
// FMA pipes, the loads (V weight vectors + one broadcast per pixel) or the
// latency of R·V accumulator chains, whichever binds.
func cyclesPerFMA(r, v int) float64 {
	fmas := float64(r * v)
	return max(1/fmaPorts, float64(r+v)/fmas/loadPorts, fmaLatency/fmas)
}

// chooseBlocking is the register-blocking rule:
//
//  1. V vectors per tile, with OutC a multiple of V·Lanes.
//  2. The inner step loads V weight vectors and broadcasts one input
//     scalar per pixel into one register, so a tile of R = TH·TW pixels
//     needs R·V accumulators + V + 1 registers ≤ Regs, and R ≤ the tier's
//     MaxPixels where it has one.
//  3. TH ≤ 4 need not divide the output height: the last tile row then
//     uses a second kernel with the remaining rows. TW need not divide the
//     output width where the tier allows ColumnRemainders: the last tile
//     of each row, and the corner, then use narrower kernels, and the
//     tiling's cost is multiplied by the tier's RemainderPenalty.
//  4. Lowest modelled cycles per FMA (cyclesPerFMA, averaged over the main
//     and remainder tile rows); then most accumulators (they amortise the
//     per-tile epilogue and call); then fewest loads per FMA; then TH = 1.
func chooseBlocking(s convShape, t tier) blocking {
	var best blocking
	bestCost, bestAcc, bestLoads := 0.0, 0, 0.0
	const eps = 1e-9
	for v := 4; v >= 1; v-- {
		if s.OutC%(v*t.Lanes) != 0 {
			continue
		}
		maxR := (t.Regs - v - 1) / v
		for th := 1; th <= 4 && th <= s.OutH; th++ {
			for tw := 1; tw <= s.OutW; tw++ {
				r := th * tw
				if r > maxR || t.MaxPixels > 0 && r > t.MaxPixels {
					continue
				}
				remH, remW := s.OutH%th, s.OutW%tw
				if remW > 0 && !t.ColumnRemainders {
					continue
				}
				// Average the modelled cost over the tiles: full, last row,
				// last column, corner, weighted by the pixels they cover.
				fullH, fullW := s.OutH-remH, s.OutW-remW
				cost := cyclesPerFMA(r, v) * float64(fullH*fullW)
				if remH > 0 {
					cost += cyclesPerFMA(remH*tw, v) * float64(remH*fullW)
				}
				if remW > 0 {
					cost += cyclesPerFMA(th*remW, v) * float64(fullH*remW)
				}
				if remH > 0 && remW > 0 {
					cost += cyclesPerFMA(remH*remW, v) * float64(remH*remW)
				}
				cost /= float64(s.OutH * s.OutW)
				if remW > 0 {
					cost *= t.RemainderPenalty
				}
				acc := r * v
				loads := float64(r+v) / float64(r*v)
				cand := blocking{TH: th, TW: tw, V: v, RemTH: remH, RemTW: remW}
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
