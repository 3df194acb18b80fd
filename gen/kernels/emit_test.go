package kernels

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet"
)

var textLine = regexp.MustCompile(`(?m)^TEXT ·(\w+)\(SB\)`)

// TestPrefetchNextWhereWeightsStream: in ResNet-18 only the products of
// the Winograd layers whose transformed weights reach 4 MiB prefetch the
// next weight block — 14×14×256 (F(2,3): 16·256·256 floats = 4 MiB; F(4,3)
// 9 MiB) and 7×7×512 (16 MiB) — worked out by hand from the shapes, on
// both amd64 tiers; the 56×56×64 and 28×28×128 products (0.6 and 2.25 MiB)
// and the direct kernels do not.
func TestPrefetchNextWhereWeightsStream(t *testing.T) {
	files, err := Emit("resnet18", resnet.MustBuild("resnet18"))
	require.NoError(t, err)
	for _, tier := range []string{"avx512", "avx2"} {
		src := string(files["kernels_"+tier+"_amd64.s"])
		locs := textLine.FindAllStringSubmatchIndex(src, -1)
		require.NotEmpty(t, locs, tier)
		var got []string
		gemms := 0
		for i, l := range locs {
			end := len(src)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			name := src[l[2]:l[3]]
			if strings.Contains(name, "_h1w") {
				gemms++
			}
			if strings.Contains(src[l[0]:end], "PREFETCHT1") {
				got = append(got, strings.TrimSuffix(strings.SplitN(name, "_"+tier, 2)[0], "_remcol"))
			}
		}
		slices.Sort(got)
		want := []string{"conv1x1s1_c256k256_h1w16", "conv1x1s1_c256k256_h1w49", "conv1x1s1_c512k512_h1w16"}
		assert.Equal(t, want, slices.Compact(got), tier)
		assert.Greater(t, gemms, len(want), "%s: the other Winograd products exist and do not prefetch", tier)
	}
}
