package main

// tier describes one SIMD instruction set the generator targets. A tier
// only needs its vector width and register count for blocking; the
// instruction emission is shared by the amd64 tiers (Avo) and will be
// separate for NEON.
type tier struct {
	Name  string // "avx512", "avx2": the kernel name suffix and the asm.Tier
	Lanes int    // float32 per vector
	Regs  int    // vector registers
}

var (
	avx512 = tier{"avx512", 16, 32}
	avx2   = tier{"avx2", 8, 16}
)

// blocking is a register tile: TH×TW output pixels by V vectors of output
// channels held in accumulators while the loop over (ky, kx, ic) runs.
type blocking struct {
	TH, TW, V int
	RemTH     int // rows of the last tile row when TH does not divide the output height; 0 if it does
}

// chooseBlocking is the register-blocking rule:
//
//  1. V vectors per tile, with OutC a multiple of V·Lanes.
//  2. The inner step loads V weight vectors and broadcasts one input
//     scalar per pixel into one register, so a tile of R = TH·TW pixels
//     needs R·V accumulators + V + 1 registers ≤ Regs.
//  3. TW divides the output width (a column remainder costs a whole
//     narrow tile per row); TH ≤ 4 need not divide the height: the last
//     tile row then uses a second kernel with the remaining rows.
//  4. Most accumulators first (they hide FMA latency and amortise the
//     weight loads); then fewest loads per FMA, (R+V)/(R·V); then TH = 1
//     (no remainder kernel); then wider V.
func chooseBlocking(s convShape, t tier) blocking {
	var best blocking
	bestAcc, bestLoads := 0, 0.0
	for v := 4; v >= 1; v-- {
		if s.OutC%(v*t.Lanes) != 0 {
			continue
		}
		maxR := (t.Regs - v - 1) / v
		for th := 1; th <= 4 && th <= s.OutH; th++ {
			for tw := 1; tw <= s.OutH; tw++ {
				r := th * tw
				if s.OutH%tw != 0 || r > maxR {
					continue
				}
				acc := r * v
				loads := float64(r+v) / float64(r*v)
				better := acc > bestAcc ||
					acc == bestAcc && loads < bestLoads-1e-9 ||
					acc == bestAcc && loads < bestLoads+1e-9 && best.TH != 1 && th == 1
				if better {
					best = blocking{TH: th, TW: tw, V: v, RemTH: s.OutH % th}
					bestAcc, bestLoads = acc, loads
				}
			}
		}
	}
	if bestAcc == 0 {
		panic("no blocking")
	}
	return best
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
