package asm

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/shape"
)

// A kernel table entry is checked before the driver runs it, and a lookup
// names what is missing. The entries' micro-kernels are never called, so
// the checks run in every build, purego and emulated ones included: for
// the test's length the SIMD tier counts as available.
func TestKernelSetChecksEntries(t *testing.T) {
	for _, simd := range []Tier{AVX2, AVX512, NEON} {
		withTier(t, simd)
		s := testShape(3, 1, 32, 32, 8, 6)
		noop := func(in, w, bias, res, out *float32, inRow, outRow, resRow, flags, n uintptr) {}
		set := &KernelSet{Conv: []ConvKernel{
			{Name: "ok", Tier: simd, Shape: s, TH: 3, TW: 6, V: 1, Lanes: 16, RemTH: 2, Main: noop, Rem: noop},
			{Name: "norem", Tier: simd, Shape: testShape(3, 1, 32, 32, 9, 6), TH: 2, TW: 6, V: 1, Lanes: 16, RemTH: 1, Main: noop},
			{Name: "badrem", Tier: simd, Shape: testShape(3, 1, 32, 32, 10, 6), TH: 3, TW: 4, V: 1, Lanes: 16, RemTH: 1, Main: noop, Rem: noop},
			{Name: "badblock", Tier: simd, Shape: testShape(3, 1, 32, 48, 10, 6), TH: 1, TW: 6, V: 2, Lanes: 16, Main: noop},
		}}
		assert.Equal(t, []Tier{simd}, set.Tiers())
		k, err := set.ConvKernel(s, simd)
		require.NoError(t, err)
		assert.Equal(t, "ok", k.Name)
		_, err = set.ConvKernel(testShape(3, 1, 32, 32, 9, 6), simd)
		assert.ErrorContains(t, err, "remainder kernel is missing")
		_, err = set.ConvKernel(testShape(3, 1, 32, 32, 10, 6), simd)
		assert.ErrorContains(t, err, "the 3x4 tile leaves 1, 2")
		_, err = set.ConvKernel(testShape(3, 1, 32, 48, 10, 6), simd)
		assert.ErrorContains(t, err, "does not fit 48 output channels")
		_, err = set.ConvKernel(testShape(1, 1, 32, 32, 8, 6), simd)
		assert.ErrorContains(t, err, "no "+simd.String()+" kernel for conv1x1s1_c32k32_h8w6")
		_, err = set.MaxPoolKernel(64, simd)
		assert.ErrorContains(t, err, "max-pool kernel for 64 channels")
		_, err = set.FCKernel(512, 10, simd)
		assert.ErrorContains(t, err, "classifier kernel for 512→10")
	}
}

// withTier makes tier t available until the test ends (tests here run
// one at a time: none calls t.Parallel).
func withTier(t *testing.T, tier Tier) {
	t.Helper()
	if Has(tier) {
		return
	}
	old := tiers
	tiers = append(slices.Clone(tiers), tier)
	t.Cleanup(func() { tiers = old })
	require.True(t, Has(tier))
}

func testShape(k, stride, inC, outC, inH, inW int) shape.Conv {
	pad := k / 2
	out := func(n int) int { return (n+2*pad-k)/stride + 1 }
	return shape.Conv{K: k, Stride: stride, Pad: pad, InC: inC, OutC: outC, InH: inH, InW: inW, OutH: out(inH), OutW: out(inW)}
}
