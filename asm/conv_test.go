package asm_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/engine/enginetest"
	"github.com/resnetgen/resnetgen/shape"
)

// The specialised kernels live in the generated packages, whose tests hold
// every one of them to the reference (enginetest.Kernels). Here: the
// portable kernel, which takes any shape, and the kernel table's checks.

func convShape(k, stride, inC, outC, inH, inW int) shape.Conv {
	pad := k / 2
	out := func(n int) int { return (n+2*pad-k)/stride + 1 }
	return shape.Conv{K: k, Stride: stride, Pad: pad, InC: inC, OutC: outC, InH: inH, InW: inW, OutH: out(inH), OutW: out(inW)}
}

func TestPortableConvMatchesReference(t *testing.T) {
	for i, s := range []shape.Conv{
		convShape(7, 2, 3, 64, 38, 30),  // a stem on a rectangular image
		convShape(3, 1, 64, 64, 14, 14), // a basic block's 3x3
		convShape(3, 2, 32, 64, 15, 9),  // odd sides, stride 2
		convShape(1, 1, 256, 64, 7, 5),  // a bottleneck's reduce
		convShape(1, 2, 64, 128, 9, 16), // a projection shortcut
		convShape(3, 1, 3, 24, 6, 4),    // channels that are not a multiple of 16
		convShape(3, 2, 16, 8, 1, 1),    // a 1x1 map
		convShape(1, 1, 5, 3, 2, 3),     // nothing a multiple of anything
		{K: 3, Stride: 1, Pad: 0, InC: 4, OutC: 8, InH: 5, InW: 6, OutH: 3, OutW: 4}, // no padding
	} {
		k, err := asm.PortableConv(s)
		require.NoError(t, err, "%+v", s)
		assert.Equal(t, asm.Purego, k.Tier)
		enginetest.ConvKernel(t, k, uint64(i))
	}
}

func TestConvShapeNames(t *testing.T) {
	assert.Equal(t, "conv3x3s1_c64k64_h56", convShape(3, 1, 64, 64, 56, 56).Name())
	assert.Equal(t, "conv7x7s2_c3k64_h192w160", convShape(7, 2, 3, 64, 192, 160).Name())
}

func TestConvRejectsBadArguments(t *testing.T) {
	_, err := asm.PortableConv(shape.Conv{K: 3, Stride: 1, Pad: 1, InC: 64, OutC: 64, InH: 56, InW: 56, OutH: 55, OutW: 56})
	assert.ErrorContains(t, err, "invalid convolution shape")
	_, err = asm.PortableConv(shape.Conv{K: 3, Stride: 1, Pad: 0, InC: 1, OutC: 1, InH: 2, InW: 2, OutH: 0, OutW: 0})
	assert.ErrorContains(t, err, "invalid convolution shape", "a kernel larger than its padded input")
	s := convShape(3, 1, 64, 64, 56, 48)
	k, err := asm.PortableConv(s)
	require.NoError(t, err)
	_, err = k.PackWeights(make([]float32, 10))
	assert.ErrorContains(t, err, "10 weights, want 64×64×3×3")
	packed := make([]float32, 64*64*9)
	bias := make([]float32, 64)
	err = k.Run(asm.NewBuffer(56, 48, 64, 0), asm.NewBuffer(56, 48, 64, 0), nil, packed, bias, true)
	assert.ErrorContains(t, err, "input is 56x48x64 with halo 0, want 56x48x64 with halo ≥ 1")
	short := asm.NewBuffer(56, 48, 64, 1)
	short.Data = short.Data[:100]
	err = k.Run(short, asm.NewBuffer(56, 48, 64, 0), nil, packed, bias, true)
	assert.ErrorContains(t, err, "input holds 100 floats")
	err = k.Run(asm.NewBuffer(56, 48, 64, 1), asm.NewBuffer(48, 56, 64, 0), nil, packed, bias, true)
	assert.ErrorContains(t, err, "output is 48x56x64", "height and width swapped")
	res := asm.NewBuffer(56, 47, 64, 0)
	err = k.Run(asm.NewBuffer(56, 48, 64, 1), asm.NewBuffer(56, 48, 64, 0), &res, packed, bias, true)
	assert.ErrorContains(t, err, "residual is 56x47x64")
	err = k.Run(asm.NewBuffer(56, 48, 64, 1), asm.NewBuffer(56, 48, 64, 0), nil, packed, bias[:3], true)
	assert.ErrorContains(t, err, "3 biases")
}

// The portable tier needs no table: a nil set has only the portable
// kernels. (The table's own checks, on every SIMD tier in every build:
// kernelset_internal_test.go.)
func TestKernelSetLookups(t *testing.T) {
	s := convShape(3, 1, 32, 32, 8, 6)
	var set *asm.KernelSet
	k, err := set.ConvKernel(s, asm.Purego)
	require.NoError(t, err, "the portable tier needs no table")
	assert.Equal(t, "conv3x3s1_c32k32_h8w6_purego", k.Name)
	_, err = set.ConvKernel(s, asm.Tier(7))
	assert.ErrorContains(t, err, "not available")
	assert.Empty(t, set.Tiers())
}

func TestParseTier(t *testing.T) {
	for _, tier := range []asm.Tier{asm.Purego, asm.AVX2, asm.AVX512, asm.NEON, asm.VNNI} {
		got, err := asm.ParseTier(tier.String())
		require.NoError(t, err)
		assert.Equal(t, tier, got)
	}
	_, err := asm.ParseTier("sse")
	assert.ErrorContains(t, err, `unknown tier "sse" (want purego, avx2, avx512, neon, vnni)`)
	assert.True(t, asm.Has(asm.Purego))
	assert.Equal(t, asm.Purego, asm.Tiers()[0])
	assert.Equal(t, asm.Purego, asm.Int8Tiers()[0])
	assert.NotContains(t, asm.Tiers(), asm.VNNI, "Tiers lists the float32 tiers")
}

// TestWinogradSharesWeights: a batch shares a one-chunk layer's
// transformed weights when they reach 512 KiB and outweigh the batch's
// transformed tiles and products (16 planes · tiles · (InC+OutC) floats an
// image for F(2,3)), worked out by hand for ResNet's deep layers.
func TestWinogradSharesWeights(t *testing.T) {
	w14 := &asm.WinogradKernel{Shape: convShape(3, 1, 256, 256, 14, 14), M: 2, Chunk: 49} // 49 tiles: 1.6 MB of planes an image
	u14 := 16 * 256 * 256 * 4                                                             // 4 MiB
	assert.False(t, w14.SharesWeights(u14, 1), "one image has nothing to share")
	assert.True(t, w14.SharesWeights(u14, 2), "4 MiB ≥ 3.2 MB")
	assert.False(t, w14.SharesWeights(u14, 3), "4 MiB < 4.8 MB")
	w7 := &asm.WinogradKernel{Shape: convShape(3, 1, 512, 512, 7, 7), M: 2, Chunk: 16} // 16 tiles: 1 MiB an image
	u7 := 16 * 512 * 512 * 4                                                           // 16 MiB
	assert.True(t, w7.SharesWeights(u7, 8))
	assert.True(t, w7.SharesWeights(u7, 16), "16 MiB ≥ 16 MiB")
	assert.False(t, w7.SharesWeights(u7, 17))
	c64 := &asm.WinogradKernel{Shape: convShape(3, 1, 64, 64, 8, 8), M: 4, Chunk: 4} // 4 tiles, F(4,3): 72 KiB of planes an image
	assert.True(t, c64.SharesWeights(36*64*64*4, 2), "576 KiB ≥ 512 KiB and ≥ 144 KiB")
	c60 := &asm.WinogradKernel{Shape: convShape(3, 1, 60, 60, 8, 8), M: 4, Chunk: 4}
	assert.False(t, c60.SharesWeights(36*60*60*4, 2), "506 KiB stays cached")
	chunked := &asm.WinogradKernel{Shape: convShape(3, 1, 256, 256, 14, 14), M: 2, Chunk: 25}
	assert.False(t, chunked.SharesWeights(u14, 2), "two chunks an image")
}

// written reports, per output pixel and channel, whether part 0 of 2 wrote
// it (out starts as NaN; the layer's inputs and weights are ones).
func writtenByFirstOfTwo(t *testing.T, s shape.Conv) (rows, chans map[int]bool) {
	k, err := asm.PortableConv(s)
	require.NoError(t, err)
	in, out := asm.NewBuffer(s.InH, s.InW, s.InC, s.Pad), asm.NewBuffer(s.OutH, s.OutW, s.OutC, 0)
	for y := range s.InH {
		for x := range s.InW {
			for c := range s.InC {
				in.Data[in.Index(y, x, c)] = 1
			}
		}
	}
	nan := float32(math.NaN())
	for i := range out.Data {
		out.Data[i] = nan
	}
	oihw := make([]float32, s.OutC*s.InC*s.K*s.K)
	for i := range oihw {
		oihw[i] = 1
	}
	packed, err := k.PackWeights(oihw)
	require.NoError(t, err)
	k.RunPart(in, out, nil, packed, make([]float32, s.OutC), false, 0, 2)
	rows, chans = map[int]bool{}, map[int]bool{}
	for y := range s.OutH {
		for x := range s.OutW {
			for c := range s.OutC {
				if v := out.Data[out.Index(y, x, c)]; v == v {
					rows[y], chans[c] = true, true
				}
			}
		}
	}
	return rows, chans
}

// Two workers split a layer with a big output map by rows (each keeps its
// rows of the map, as the Winograd layers and pools there do) and one with
// a small map by output-channel blocks (each reads half the weights).
func TestRunPartSplitsBigMapsByRowsSmallOnesByChannels(t *testing.T) {
	rows, chans := writtenByFirstOfTwo(t, convShape(1, 1, 16, 32, 28, 28))
	assert.Len(t, rows, 14, "28×28 map: part 0 of 2 computes the top half")
	assert.Len(t, chans, 32, "28×28 map: every channel of its rows")
	rows, chans = writtenByFirstOfTwo(t, convShape(1, 1, 16, 32, 14, 14))
	assert.Len(t, rows, 14, "14×14 map: every row")
	assert.Len(t, chans, 16, "14×14 map: the first of two channel blocks")
	for c := range 16 {
		assert.True(t, chans[c], "channel %d", c)
	}
}

// bandsOverFirstPanel runs the layer through a stand-in micro-kernel that
// records which weights each call reads, and returns how many separate
// sweeps read the first channel block's panel: the number of row bands
// (each band runs every block over its rows, reading all the weights).
func bandsOverFirstPanel(t *testing.T, k *asm.ConvKernel) int {
	s := k.Shape
	packed := make([]float32, s.OutC*s.InC*s.K*s.K)
	sweeps, onFirst := 0, false
	call := func(in, w, bias, res, out *float32, inRow, outRow, resRow, flags, n uintptr) {
		if w == &packed[0] && !onFirst {
			sweeps++
		}
		onFirst = w == &packed[0]
	}
	k.Main, k.Rem = call, call
	in, out := asm.NewBuffer(s.InH, s.InW, s.InC, s.Pad), asm.NewBuffer(s.OutH, s.OutW, s.OutC, 0)
	require.NoError(t, k.Run(in, out, nil, packed, make([]float32, s.OutC), false))
	return sweeps
}

// A layer whose weights outweigh its input reads them once (one band of
// rows); one with small weights on a big map goes down in bands that keep
// their rows in L2. Before, ResNet-50's 2048→512 on 7×7 (4 MiB, tiles of
// 4 rows) ran in two bands.
func TestBandsReadBigWeightsOnce(t *testing.T) {
	big := &asm.ConvKernel{Shape: convShape(1, 1, 2048, 512, 7, 7), TH: 4, TW: 1, V: 4, Lanes: 16, RemTH: 3}
	assert.Equal(t, 1, bandsOverFirstPanel(t, big), "4 MiB of weights, 400 KB of input")
	// 64 KiB of weights, 800 KB of input: bands of 512 KiB ÷ 70 KiB a row = 7 rows.
	small := &asm.ConvKernel{Shape: convShape(1, 1, 64, 256, 56, 56), TH: 1, TW: 8, V: 4, Lanes: 16}
	assert.Equal(t, 8, bandsOverFirstPanel(t, small))
}
