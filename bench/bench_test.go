package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/asm/peak"
	"github.com/resnetgen/resnetgen/shape"

	_ "github.com/resnetgen/resnetgen/engine/enginetest" // New ignores this machine's tuning cache, here and in the processes the tests start
)

// BenchmarkKernels runs every kernel of the generated family packages on
// every tier on one thread and reports GFLOP/s and the fraction of the
// tier's peak measured by the same benchmark:
// go test ./bench -run '^$' -bench Kernels.
func BenchmarkKernels(b *testing.B) {
	for _, t := range asm.Tiers() {
		jobs, err := FamilyKernels(t)
		require.NoError(b, err)
		for _, j := range jobs {
			b.Run(j.Name, func(b *testing.B) {
				r := j.Run(Options{Rounds: 1, MinTime: time.Duration(b.N) * time.Millisecond})
				b.ReportMetric(r.GFLOPs, "GFLOP/s")
				b.ReportMetric(r.Efficiency, "of-peak")
			})
		}
	}
}

func BenchmarkPeak(b *testing.B) {
	for _, t := range asm.Tiers() {
		b.Run(t.String(), func(b *testing.B) {
			for range b.N {
				peak.Trip(t, 1<<16)
			}
			b.ReportMetric(float64(b.N)*(1<<16)*peak.FLOPsPerTrip(t)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// The probe and the measurement plumbing, not their speed: a peak is
// positive, the family's kernels are listed once each, and a kernel result
// carries its shape.
func TestMeasurementsAreWellFormed(t *testing.T) {
	for _, tier := range asm.Tiers() {
		assert.Greater(t, peak.GFLOPs(tier, time.Millisecond), 0.0, tier.String())
		jobs, err := FamilyKernels(tier)
		require.NoError(t, err)
		names := map[string]bool{}
		for _, j := range jobs {
			assert.False(t, names[j.Name], "%s listed twice", j.Name)
			names[j.Name] = true
		}
		if tier != asm.Purego {
			assert.GreaterOrEqual(t, len(jobs), 38+7, "every conv shape of the family, pools and classifiers")
		}
	}
	k, err := asm.PortableConv(shape.Conv{K: 3, Stride: 1, Pad: 1, InC: 64, OutC: 64, InH: 8, InW: 6, OutH: 8, OutW: 6})
	require.NoError(t, err)
	r := Conv(k, Options{Rounds: 1, MinTime: time.Millisecond, PeakTime: time.Millisecond})
	assert.Equal(t, "conv", r.Op)
	assert.Equal(t, int64(8*6*64*64*9), r.MACs)
	assert.Equal(t, 6, r.InW)
	assert.Greater(t, r.GFLOPs, 0.0)
	assert.InDelta(t, r.GFLOPs/r.PeakGFLOPs, r.Efficiency, 1e-12)
	assert.Equal(t, []float64{2}, []float64{median([]float64{3, 1, 2})})
}

func TestCombineTakesMedians(t *testing.T) {
	pass := func(gf, peak float64) []KernelResult {
		return []KernelResult{{Name: "k", GFLOPs: gf, PeakGFLOPs: peak, Efficiency: gf / peak}}
	}
	got := Combine([][]KernelResult{pass(100, 200), pass(180, 200), pass(150, 100)})
	assert.Equal(t, []KernelResult{{Name: "k", GFLOPs: 150, PeakGFLOPs: 200, Efficiency: 0.9}}, got)
	assert.Nil(t, Combine(nil))
}

// Cold weights: the copies fill the byte budget (4096 at most, one when
// the budget is 0), each holds the packed weights in its own memory, and a
// rotation hands them out in turn, coming back to the first.
func TestWeightCopiesRotate(t *testing.T) {
	packed := []float32{1, 2, 3, 4, 5} // 20 bytes
	for _, c := range []struct{ bytes, want int }{{0, 1}, {20, 1}, {21, 2}, {100, 5}, {1 << 30, 4096}} {
		ws := weightCopies(packed, c.bytes)
		require.Len(t, ws, c.want, "%d bytes", c.bytes)
		for i, w := range ws {
			assert.Equal(t, packed, w, "copy %d", i)
			if i > 0 {
				assert.NotSame(t, &ws[0][0], &w[0], "copy %d shares the original's memory", i)
			}
		}
	}
	ws := weightCopies(packed, 60)
	var seen []*float32
	run := rotation(ws, func(w []float32) { seen = append(seen, &w[0]) })
	for range 4 {
		run()
	}
	assert.Equal(t, []*float32{&ws[0][0], &ws[1][0], &ws[2][0], &ws[0][0]}, seen)
}

// Tune keeps New's default unless a candidate's median beats it by more
// than the margin; a default the package lacks stands as "direct".
func TestPickBestKeepsDefaultWithinMargin(t *testing.T) {
	g := map[string]float64{"direct": 104, "direct/p8": 100, "winograd/2": 90}
	assert.Equal(t, "direct/p8", pickBest(g, "direct/p8", 0.05), "4 % faster is within the margin")
	assert.Equal(t, "direct", pickBest(g, "direct/p8", 0.03), "4 % faster beats a 3 % margin")
	assert.Equal(t, "direct", pickBest(g, "direct/p8", 0), "no margin: the fastest")
	assert.Equal(t, "direct", pickBest(g, "winograd/2", 0.05), "16 % faster")
	g = map[string]float64{"direct": 100, "winograd/4": 103}
	assert.Equal(t, "direct", pickBest(g, "direct/p8", 0.05), "p8 not in the package: direct is the default")
	assert.Equal(t, "winograd/4", pickBest(g, "direct/p8", 0.01))
	assert.Equal(t, "winograd/4", pickBest(map[string]float64{"winograd/2": 1, "winograd/4": 2}, "direct/p8", 0.05))
	assert.Equal(t, "direct", pickBest(map[string]float64{"direct": 5, "direct/p8": 5}, "winograd/4", 0), "a tie goes to the first name")
}
