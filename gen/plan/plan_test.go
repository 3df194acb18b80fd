package plan

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestP8PanelsFitL2: the p8 variant's channel block panels stay within
// 1 MiB, worked out by hand. A 3x3 layer with 512 input channels and 64
// output channels a block has a 9·512·64·4 = 1,179,648-byte panel, so its
// blocks shrink to 32 channels (576 KiB), with 1×7-pixel tiles on the 7×7
// outputs; 256 input channels (576 KiB at 64 channels) and the 1x1 layers
// (2048·64·4 = 512 KiB) keep 64-channel blocks.
func TestP8PanelsFitL2(t *testing.T) {
	s3 := func(stride, inC, outC, in int) Shape {
		out := (in+2-3)/stride + 1
		return Shape{K: 3, Stride: stride, Pad: 1, InC: inC, OutC: outC, InH: in, InW: in, OutH: out, OutW: out}
	}
	for _, s := range []Shape{s3(2, 512, 512, 14), s3(1, 512, 512, 7)} {
		b := capPixels(s)
		assert.Equal(t, Blocking{TH: 1, TW: 7, V: 2}, b, "%+v", s)
	}
	for _, s := range []Shape{s3(2, 256, 512, 14), s3(1, 256, 256, 14),
		{K: 1, Stride: 1, InC: 2048, OutC: 512, InH: 7, InW: 7, OutH: 7, OutW: 7}} {
		assert.Equal(t, 4, capPixels(s).V, "%+v", s)
	}
}

// TestWinogradChunks: the tiles per chunk, worked out by hand from the
// rule in winogradGEMMs (planes of a tile: α²·4·(InC+OutC) bytes), and the
// input channels of a product call: 128 where U streams (4 MiB or more),
// all of them elsewhere.
func TestWinogradChunks(t *testing.T) {
	sq := func(c, hw int) Shape {
		return Shape{K: 3, Stride: 1, Pad: 1, InC: c, OutC: c, InH: hw, InW: hw, OutH: hw, OutW: hw}
	}
	for _, c := range []struct {
		name        string
		s           Shape
		f           WinogradF
		chunk, tail int
		icb         int
	}{
		// U 0.6 MB: 196 tiles of 18 KiB = 3.5 MiB, 512 KiB chunks: 7, made even: 8 of 25 (the last 21).
		{"56×56×64 F(4,3)", sq(64, 56), F4, 25, 21, 64},
		// U 2.4 MB (2 to 4 MiB): 49 tiles of 36 KiB = 1.7 MiB, 1 MiB chunks: 2 of 25 (the last 24).
		{"28×28×128 F(4,3)", sq(128, 28), F4, 25, 24, 128},
		// U 4 MiB (streams): 49 tiles of 32 KiB in one chunk.
		{"14×14×256 F(2,3)", sq(256, 14), F2, 49, 0, 128},
		// U 9 MiB: 16 tiles of 72 KiB in one chunk.
		{"14×14×256 F(4,3)", sq(256, 14), F4, 16, 0, 128},
		// U 16 MiB: 16 tiles of 64 KiB in one chunk.
		{"7×7×512 F(2,3)", sq(512, 7), F2, 16, 0, 128},
		// The CIFAR layers fit one 512 KiB chunk (64 tiles of 4.5 KiB, 16 of
		// 9 KiB, 4 of 18 KiB) but split into two where each has ≥ 8 tiles.
		{"32×32×16 F(4,3)", sq(16, 32), F4, 32, 0, 16},
		{"16×16×32 F(4,3)", sq(32, 16), F4, 8, 0, 32},
		{"8×8×64 F(4,3)", sq(64, 8), F4, 4, 0, 64},
	} {
		chunk, gemm, tail := winogradGEMMs(c.s, c.f)
		assert.Equal(t, c.chunk, chunk, c.name)
		assert.Equal(t, c.chunk, gemm.OutW, c.name)
		assert.Equal(t, c.tail, tail.OutW, c.name)
		assert.Equal(t, c.icb, gemm.InC, c.name)
		if c.tail > 0 {
			assert.Equal(t, c.icb, tail.InC, c.name)
		}
	}
}

// TestGEMMBlockingWidestBlock: a Winograd GEMM takes the widest channel
// block the model rates at peak (chooseGEMMBlocking), worked out by hand
// for AVX-512 (32 registers, two loads and two FMAs a cycle, latency 5):
// 49 tiles by 256 channels — the rule's 1×7 tiles of 2 vectors (exact, 14
// accumulators) give way to 1×5 of 4 vectors (20 accumulators; the 1×4
// remainder's 16 accumulators still cover the latency), not 1×6 (its 1×1
// remainder, 4 accumulators, is latency-bound); 16 tiles by 512 channels
// keep 1×4 of 4 vectors (already the widest), and 25 by 64 keep 1×5 of 4.
// On AVX2 (16 registers) 4 vectors fit only 2 pixels (8 accumulators,
// latency-bound), so the 49-tile GEMM keeps the rule's blocking.
func TestGEMMBlockingWidestBlock(t *testing.T) {
	gemm := func(inC, outC, tiles int) Shape {
		return Shape{K: 1, Stride: 1, InC: inC, OutC: outC, InH: 1, InW: tiles, OutH: 1, OutW: tiles}
	}
	for _, c := range []struct {
		s    Shape
		t    Tier
		want Blocking
	}{
		{gemm(128, 256, 49), AVX512, Blocking{TH: 1, TW: 5, V: 4, RemTW: 4}},
		{gemm(128, 512, 16), AVX512, Blocking{TH: 1, TW: 4, V: 4}},
		{gemm(64, 64, 25), AVX512, Blocking{TH: 1, TW: 5, V: 4}},
		{gemm(128, 256, 49), AVX2, chooseBlocking(gemm(128, 256, 49), AVX2)},
	} {
		assert.Equal(t, c.want, chooseGEMMBlocking(c.s, c.t, 0), "%+v on %s", c.s, c.t.Name)
	}
	rule := chooseBlocking(gemm(128, 256, 49), AVX512)
	assert.Equal(t, Blocking{TH: 1, TW: 7, V: 2}, rule, "the rule's own choice, which the GEMM rule widens")
	assert.Equal(t, rule, chooseGEMMBlocking(gemm(128, 256, 49), AVX512, 2), "a forced V (a tail GEMM) is kept")
}

// A split 3x3 kernel's slice exceeds L1 and every tile re-reads it from
// L2: 64 bytes of weights per input channel and tap for V·r FMAs, two FMA
// pipes, 24 bytes a cycle from L2: 4 pixels are L2-bound (64·2/24/4 =
// 1.33× peak), 7 are not (0.76×); only the split 3x3 blockings count it.
func TestSplit3x3TilesReadL2(t *testing.T) {
	assert.InDelta(t, 4.0/3, avx512p8Split.l2Slowdown(4), 1e-9)
	assert.InDelta(t, 64*2/24.0/7, avx512p8Split.l2Slowdown(7), 1e-9)
	assert.Zero(t, avx512p8.l2Slowdown(4), "only the split 3x3 blockings count L2 reads")
}

// TestNEONPageAliasCap: on NEON, tiles of layers whose input pixels lie a
// multiple of 4 KiB apart (Tier.PageAliasPixels) keep to 4 pixels, worked
// out by hand. 1024 channels at stride 1 (4 KiB) on 14×14, and 512 at
// stride 2 on 28×28 → 14×14: 2×2 pixels × 4 vectors (exact, 16
// accumulators, (4+16)/64 loads an FMA: at peak on N1 and V1) where the
// uncapped rule takes 2×5 × 2 vectors (20 accumulators, remainder column
// of 4). 2048 channels on 7×7 already had 4×1. 512 channels at stride 1 (2
// KiB apart) are not capped; nor are the other tiers (AVX2 has its own
// MaxPixels).
func TestNEONPageAliasCap(t *testing.T) {
	s1 := func(inC, outC, hw int) Shape {
		return Shape{K: 1, Stride: 1, InC: inC, OutC: outC, InH: hw, InW: hw, OutH: hw, OutW: hw}
	}
	s2 := Shape{K: 1, Stride: 2, InC: 512, OutC: 1024, InH: 28, InW: 28, OutH: 14, OutW: 14}
	uncapped := NEON
	uncapped.PageAliasPixels = 0
	for _, s := range []Shape{s1(1024, 256, 14), s1(1024, 512, 14), s2} {
		assert.Equal(t, Blocking{TH: 2, TW: 2, V: 4}, chooseBlocking(s, NEON), "%+v", s)
		assert.Equal(t, Blocking{TH: 2, TW: 5, V: 2, RemTW: 4}, chooseBlocking(s, uncapped), "%+v", s)
		assert.InDelta(t, 1, NEON.Efficiency(s, chooseBlocking(s, NEON)), 1e-9, "%+v", s)
	}
	assert.Equal(t, Blocking{TH: 4, TW: 1, V: 4, RemTH: 3}, chooseBlocking(s1(2048, 512, 7), NEON))
	assert.Equal(t, chooseBlocking(s1(512, 256, 28), uncapped), chooseBlocking(s1(512, 256, 28), NEON), "2 KiB apart")
	assert.Greater(t, chooseBlocking(s1(512, 256, 28), NEON).TH*chooseBlocking(s1(512, 256, 28), NEON).TW, 4)
	for _, tier := range []Tier{AVX512, AVX2} {
		assert.Zero(t, tier.PageAliasPixels, tier.Name)
	}
}
