package jpeg

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

// A block with only its DC coefficient, worked by hand through islow's
// arithmetic: pass 1 gives c·q·2² for every sample, pass 2 descales by
// 2⁵ with rounding, and 128 is added: (80·4 + 16) >> 5 = 10 → 138.
func TestIDCTDCByHand(t *testing.T) {
	var coef [64]int16
	var quant [64]uint16
	for i := range quant {
		quant[i] = 1
	}
	for _, c := range []struct {
		dc   int16
		want uint8
	}{
		{80, 138},   // (320+16)>>5 = 10
		{-80, 118},  // (−320+16)>>5 = −10 (arithmetic shift rounds down)
		{4, 129},    // (16+16)>>5 = 1
		{3, 128},    // (12+16)>>5 = 0
		{1100, 255}, // (4400+16)>>5 = 138, +128 > 255: clamped
		{-1100, 0},  // (−4400+16)>>5 = −137, +128 < 0: clamped
	} {
		coef[0] = c.dc
		out := make([]uint8, 64)
		idct(&coef, &quant, out, 8)
		for i, v := range out {
			assert.Equal(t, c.want, v, "DC %d, sample %d", c.dc, i)
		}
	}
}

// libjpeg's range-limit table: descaled values in [−128, 127] map to
// value+128, up to 511 saturate at 255, down to −512 at 0.
func TestRangeLimit(t *testing.T) {
	for _, c := range []struct{ x, want int }{
		{0, 128}, {127, 255}, {-128, 0}, {128, 255}, {511, 255}, {-129, 0}, {-512, 0}, {-1, 127},
	} {
		assert.Equal(t, uint8(c.want), rangeLimit[c.x&1023], "x = %d", c.x)
	}
}

// TestIDCTAccuracy holds islow to the exact inverse DCT in float64 in the
// manner of IEEE 1180: random 8×8 sample blocks in [−256, 255] are
// transformed forward exactly and rounded to integer coefficients; the
// integer IDCT of those must be within 1 of the rounded exact IDCT, with
// a small mean square error. (IEEE 1180 asks peak ≤ 1, MSE per position
// ≤ 0.06, overall ≤ 0.02; we compare after libjpeg's +128 and clamping,
// which can only shrink errors.)
func TestIDCTAccuracy(t *testing.T) {
	var basis [8][8]float64 // basis[u][x] = C(u)/2 · cos((2x+1)uπ/16)
	for u := range 8 {
		cu := 1.0
		if u == 0 {
			cu = 1 / math.Sqrt2
		}
		for x := range 8 {
			basis[u][x] = cu / 2 * math.Cos(float64(2*x+1)*float64(u)*math.Pi/16)
		}
	}
	var quant [64]uint16
	for i := range quant {
		quant[i] = 1
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const blocks = 10000
	var sqErr [64]float64
	peak := 0.0
	for range blocks {
		var px [64]float64
		for i := range px {
			px[i] = float64(rng.IntN(512) - 256)
		}
		// The forward DCT: coefficient (u, v) from sample (x, y); the
		// inverse swaps the roles (the basis is orthonormal).
		exactCoef := transform(&basis, &px, false)
		var coef [64]int16
		for i, c := range exactCoef {
			exactCoef[i] = math.Round(c)
			coef[i] = int16(exactCoef[i])
		}
		out := make([]uint8, 64)
		idct(&coef, &quant, out, 8)
		exact := transform(&basis, &exactCoef, true)
		for y := range 8 {
			for x := range 8 {
				s := exact[8*y+x]
				want := math.Min(math.Max(math.Round(s)+128, 0), 255)
				e := float64(out[8*y+x]) - want
				peak = math.Max(peak, math.Abs(e))
				sqErr[8*y+x] += e * e
			}
		}
	}
	total, worst := 0.0, 0.0
	for _, s := range sqErr {
		total += s / blocks
		worst = math.Max(worst, s/blocks)
	}
	t.Logf("peak error %.0f, worst per-position MSE %.4f, overall MSE %.4f", peak, worst, total/64)
	assert.LessOrEqual(t, peak, 1.0)
	assert.LessOrEqual(t, worst, 0.06)
	assert.LessOrEqual(t, total/64, 0.02)
}

// transform applies the separable 2-D DCT-II (forward) or its inverse with
// the given 1-D basis[frequency][position]; both index row-major.
func transform(basis *[8][8]float64, in *[64]float64, inverse bool) [64]float64 {
	var out [64]float64
	for i := range 8 {
		for j := range 8 {
			s := 0.0
			for k := range 8 {
				for l := range 8 {
					if inverse { // out (y=i, x=j) from in (v=k, u=l)
						s += basis[l][j] * basis[k][i] * in[8*k+l]
					} else { // out (v=i, u=j) from in (y=k, x=l)
						s += basis[j][l] * basis[i][k] * in[8*k+l]
					}
				}
			}
			out[8*i+j] = s
		}
	}
	return out
}
