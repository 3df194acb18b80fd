package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
)

// BenchmarkConv runs every specialised kernel of every tier on one thread
// and reports GFLOP/s and the fraction of the tier's peak measured by the
// same benchmark: go test ./bench -bench Conv -run '^$'.
func BenchmarkConv(b *testing.B) {
	for _, t := range asm.Tiers() {
		for i := range asm.ConvKernels(t) {
			k := &asm.ConvKernels(t)[i]
			b.Run(k.Name, func(b *testing.B) {
				c := NewConvSetup(k)
				peak := PeakGFLOPs(t, 20*time.Millisecond)
				c.Run()
				b.ResetTimer()
				for range b.N {
					c.Run()
				}
				gf := 2 * float64(k.Shape.MACs()) * float64(b.N) / b.Elapsed().Seconds() / 1e9
				b.ReportMetric(gf, "GFLOP/s")
				b.ReportMetric(gf/peak, "of-peak")
			})
		}
	}
}

func BenchmarkPeak(b *testing.B) {
	for _, t := range asm.Tiers() {
		b.Run(t.String(), func(b *testing.B) {
			for range b.N {
				runProbe(t, 1<<16)
			}
			b.ReportMetric(float64(b.N)*(1<<16)*probeFLOPs[t]/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// The probe and the measurement plumbing, not their speed: a peak is
// positive and a kernel result carries its shape.
func TestMeasurementsAreWellFormed(t *testing.T) {
	for _, tier := range asm.Tiers() {
		assert.Greater(t, PeakGFLOPs(tier, time.Millisecond), 0.0, tier.String())
	}
	k, err := asm.Conv(asm.ConvShape{K: 3, Stride: 1, Pad: 1, InC: 64, OutC: 64, InH: 8, OutH: 8}, asm.Best())
	require.NoError(t, err)
	r := Conv(k, Options{Rounds: 1, MinTime: time.Millisecond, PeakTime: time.Millisecond})
	assert.Equal(t, "conv", r.Op)
	assert.Equal(t, int64(8*8*64*64*9), r.MACs)
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
