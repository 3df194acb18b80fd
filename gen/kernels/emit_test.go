package kernels

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/gen/plan"
	"github.com/resnetgen/resnetgen/resnet"
)

var textLine = regexp.MustCompile(`(?m)^TEXT ·(\w+)\(SB\)`)

// TestPrefetchNextWhereWeightsStream: only the kernels whose weights
// stream from memory prefetch the next weight block, on both amd64 tiers,
// worked out by hand from the shapes. The Winograd products of layers with
// 2 MiB of transformed weights or more: 28×28×128 (F(4,3): 36·128·128
// floats = 2.25 MiB, in chunks of 25 and 24 tiles), 14×14×256 (F(2,3):
// 16·256·256 floats = 4 MiB; F(4,3) 9 MiB) and 7×7×512 (16 MiB), not
// 56×56×64 (0.6 MB). The direct 1x1 layers with 2 MiB of
// weights or more: ResNet-50's 512→1024/2, 1024→512, 512→2048, 2048→512
// and 1024→2048/2, not 256→1024 or 1024→256 (1 MiB); and the split
// variants of the 3x3 layers with 4 MiB of weights or more (9·InC·OutC·4
// bytes: 256→512 4.5 MiB, 512→512 9 MiB; 256→256, 2.25 MiB, not), the
// direct kernels of Winograd layers included. And the layers of 1 MiB or
// more that run in one band, weights ≥ input (spreadsPrefetch): ResNet-50's
// 256→1024 and 1024→256 on 14×14 (262,144 weights against 50,176 and
// 200,704 inputs), 3x3/2 256→256 on 28×28 (589,824 against 200,704) and
// the direct 3x3 256→256 on 14×14; ResNet-18's 3x3/2 128→256 on 28×28
// (294,912 weights, 1.125 MiB, against 100,352) and 3x3 256→256 on
// 14×14. Not the 3x3/2 128→128 on 56×56 (576 KiB) or the 1x1 512→256 on
// 28×28 (512 KiB).
func TestPrefetchNextWhereWeightsStream(t *testing.T) {
	wino := []string{"conv1x1s1_c128k128_h1w24", "conv1x1s1_c128k128_h1w25", // 28×28×128
		"conv1x1s1_c128k256_h1w16", "conv1x1s1_c128k256_h1w49", "conv1x1s1_c128k512_h1w16"} // 128 input channels a call (icBlock)
	split3 := []string{"conv3x3s1_c512k512_h7", "conv3x3s1_c256k256_h14"}
	for _, c := range []struct {
		net  string
		want []string
	}{
		{"resnet18", append([]string{"conv3x3s2_c256k512_h14", "conv3x3s2_c128k256_h28"}, append(split3, wino...)...)},
		{"resnet50", append([]string{"conv1x1s1_c1024k512_h14", "conv1x1s1_c2048k512_h7", "conv1x1s1_c512k2048_h7",
			"conv1x1s2_c1024k2048_h14", "conv1x1s2_c512k1024_h28", "conv3x3s2_c512k512_h14",
			"conv1x1s1_c256k1024_h14", "conv1x1s1_c1024k256_h14", "conv3x3s2_c256k256_h28"},
			append(split3, wino...)...)},
	} {
		files, err := Emit(c.net, resnet.MustBuild(c.net), Options{})
		require.NoError(t, err)
		for _, tier := range []string{"avx512", "avx2"} {
			src := string(files["kernels_"+tier+"_amd64.s"])
			locs := textLine.FindAllStringSubmatchIndex(src, -1)
			require.NotEmpty(t, locs, tier)
			var got []string
			for i, l := range locs {
				end := len(src)
				if i+1 < len(locs) {
					end = locs[i+1][0]
				}
				if strings.Contains(src[l[0]:end], "PREFETCHT1") {
					got = append(got, strings.SplitN(src[l[2]:l[3]], "_"+tier, 2)[0])
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(c.want))
			assert.Equal(t, want, slices.Compact(got), "%s %s", c.net, tier)
			assert.Greater(t, len(locs), 2*len(c.want), "%s %s: the other kernels exist and do not prefetch", c.net, tier)
		}
	}
}

var tableEntry = regexp.MustCompile(`(?s)Name: "(\w+)", Tier: asm\.\w+, Variant: "(\w*)",.*?RemTW: \d+,(?: ICBlock: (\d+),)? Main:`)

// TestSplitKVariants: the split variants (splitK) exist for exactly the
// direct layers whose weights stream (ResNet-50's five 1x1 layers, and its
// two 3x3 shapes with 4 MiB of weights or more: 512→512/2 on 14×14 and
// 512→512 on 7×7, 9 MiB; 256→256, 2.25 MiB, not), named as the engine's
// default rule expects
// (engine.SplitVariant), with slices worked out by hand. 1x1: 16 KiB of
// weights, 16384 / (4 bytes · 64 channels) = 64 input channels for
// AVX-512 blocks of 4 vectors (the p8 tiles), 128 for 2 vectors (the
// rule's tiles on these shapes), on AVX2 (8 lanes, blocks of 2 vectors)
// 256. 3x3: at most 96 KiB, rounded down to a divisor of InC: 98304 / (4 ·
// 9 · 32) = 85 → 64 input channels for AVX-512 blocks of 2 vectors (both
// tilings here), AVX2 98304 / (4 · 9 · 16) = 170 → 128. Nothing else is
// split.
func TestSplitKVariants(t *testing.T) {
	files, err := Emit("resnet50", resnet.MustBuild("resnet50"), Options{})
	require.NoError(t, err)
	got := map[string]string{}
	for _, m := range tableEntry.FindAllStringSubmatch(string(files["kernels_amd64.go"]), -1) {
		if m[3] != "" {
			got[m[1]] = m[2] + " " + m[3]
		}
	}
	assert.True(t, strings.HasSuffix(plan.SplitVariant, engine.SplitVariant))
	want := map[string]string{}
	for _, s := range []string{"conv1x1s2_c512k1024_h28", "conv1x1s1_c1024k512_h14", "conv1x1s2_c1024k2048_h14", "conv1x1s1_c512k2048_h7", "conv1x1s1_c2048k512_h7"} {
		want[s+"_avx512_splitk"] = "splitk 128"
		want[s+"_avx512_p8splitk"] = "p8splitk 64"
		want[s+"_avx2_splitk"] = "splitk 256"
	}
	for _, s := range []string{"conv3x3s2_c512k512_h14", "conv3x3s1_c512k512_h7"} { // 2 vectors a block in both
		want[s+"_avx512_splitk"] = "splitk 64"
		want[s+"_avx512_p8splitk"] = "p8splitk 64"
		want[s+"_avx2_splitk"] = "splitk 128"
	}
	assert.Equal(t, want, got)
}

// A split 3x3 kernel's slice exceeds L1 and every tile re-reads it from
// L2: p8's split of ResNet-18's 3x3/2 256→512 takes 1×7-pixel tiles of 2
// vectors (64 B of weights per input channel and tap for 14 FMAs), not
// p8's own 4×1 of 4 vectors (256 B for 16), which the L2 term rates at
// 64·2/24/4 = 1.33× peak against 0.76× for 7 pixels; slices of 98304 /
// (4·9·32) = 85 → 64 channels (a divisor of 256). 1x1 splits keep p8's
// tiles (TestSplitKVariants), as does the unsplit p8 kernel.
func TestSplit3x3TilesReadL2(t *testing.T) {
	files, err := Emit("resnet18", resnet.MustBuild("resnet18"), Options{})
	require.NoError(t, err)
	table := string(files["kernels_amd64.go"])
	entry := func(name string) string {
		i := strings.Index(table, `Name: "`+name+`"`)
		require.GreaterOrEqual(t, i, 0, name)
		line := table[i:]
		return line[:strings.Index(line, " Main:")]
	}
	assert.Contains(t, entry("conv3x3s2_c256k512_h14_avx512_p8splitk"), "TH: 1, TW: 7, V: 2, Lanes: 16, RemTH: 0, RemTW: 0, ICBlock: 64,")
	assert.Contains(t, entry("conv3x3s2_c256k512_h14_avx512_p8"), "TH: 4, TW: 1, V: 4,")
	assert.Contains(t, entry("conv3x3s2_c256k512_h14_avx512_splitk"), "TH: 2, TW: 7, V: 2, Lanes: 16, RemTH: 1, RemTW: 0, ICBlock: 64,")
}

// A split kernel of one-tile calls, or a layer of one band
// (spreadsPrefetch), shares the prefetching of the next slice or panel
// among its calls: the call of tile row r asks from line r·chunk on, at
// least twice what covers its chunk, so every line past the first chunk is
// asked for by two calls, and none by more than five. p8's split of ResNet-50's 3x3/2
// 512→512 (7 tile rows of 1×7 pixels, 2 vectors, 64-channel slices):
// 9·64·32·4 B = 1152 lines, 165 a row (0x2940 B), 2·⌈165/144⌉ = 4 lines in
// each of the 144 unrolled iterations of a call. p8's split 1x1 kernels
// (seven 4×1 tiles a call on 7×7) keep their per-tile lines.
func TestSpreadPrefetchCoversNextPanel(t *testing.T) {
	r50, r18 := resnet.MustBuild("resnet50"), resnet.MustBuild("resnet18")
	p50, p18 := plan.For(r50, plan.AVX512), plan.For(r18, plan.AVX512)
	for _, tc := range []struct {
		p    plan.Plan
		name string
	}{
		{p50, "conv3x3s2_c512k512_h14_avx512_p8splitk"},
		{p50, "conv3x3s2_c512k512_h14_avx512_splitk"},
		{p50, "conv3x3s1_c512k512_h7_avx512_p8splitk"},
		{p18, "conv3x3s2_c256k512_h14_avx512_p8splitk"},
		{p50, "conv1x1s1_c2048k512_h7_avx512_splitk"},
		{p50, "conv1x1s1_c256k1024_h14_avx512_p8"}, // unsplit, 7 tiles a call
		{p50, "conv3x3s2_c256k256_h28_avx512_p8"},
	} {
		c := planned(t, tc.p, tc.name)
		s, b := c.Shape, c.Blocking
		require.True(t, b.PrefetchNext && b.SpreadPrefetch, tc.name)
		if b.ICBlock > 0 {
			require.Equal(t, 1, s.OutW/b.TW, "one tile a call: %s", tc.name)
		}
		icb := s.InC
		if b.ICBlock > 0 {
			icb = b.ICBlock
		}
		chunk, perIter := spreadPrefetch(s, b, plan.AVX512, s.OutW/b.TW)
		require.Positive(t, perIter)
		lines := s.K * s.K * icb * b.V * plan.AVX512.Lanes * 4 / 64
		asked := make([]int, lines)
		for r := range (s.OutH + b.TH - 1) / b.TH {
			n := s.OutW / b.TW * s.K * s.K * icb / plan.Unroll(icb) * perIter
			for l := r * chunk; l < r*chunk+n && l < lines; l++ {
				asked[l]++
			}
		}
		assertSpreadCovers(t, tc.name, asked, chunk)
	}
	c := planned(t, p50, "conv3x3s2_c512k512_h14_avx512_p8splitk")
	chunk, perIter := spreadPrefetch(c.Shape, c.Blocking, plan.AVX512, 1)
	assert.Equal(t, [2]int{165, 4}, [2]int{chunk, perIter})
	files, err := Emit("resnet50", r50, Options{})
	require.NoError(t, err)
	assert.Contains(t, string(files["kernels_avx512_amd64.s"]), "IMUL3Q $0x00002940")
	c = planned(t, p50, "conv1x1s1_c2048k512_h7_avx512_p8splitk")
	require.Equal(t, 7, c.Shape.OutW/c.TW)
	require.False(t, c.SpreadPrefetch)
	_, perIter = spreadPrefetch(c.Shape, c.Blocking, plan.AVX512, 7)
	assert.Zero(t, perIter, "seven tiles a call")
}

// assertSpreadCovers checks how often a spreading kernel's calls ask for
// each line of the next panel (asked): at least twice, once in the first
// row's chunk, and at most five times.
func assertSpreadCovers(t *testing.T, name string, asked []int, chunk int) {
	t.Helper()
	for l, k := range asked {
		least := 2
		if l < chunk {
			least = 1
		}
		if !assert.True(t, k >= least && k <= 5, "%s: line %d of %d asked for %d times", name, l, len(asked), k) {
			break
		}
	}
}

// planned is the kernel of plan p named name.
func planned(t *testing.T, p plan.Plan, name string) plan.Conv {
	for _, c := range p.Conv {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("the %s plan has no kernel %s", p.Tier.Name, name)
	return plan.Conv{}
}
