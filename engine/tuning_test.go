package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/resnetgen/resnetgen/asm"
)

// The direct variant New picks without a tuning cache, per CPU family and
// the variants the package has: p8 on AVX-512 on Zen 4 and Zen 5, the
// generator's blocking on AVX2 and on other CPUs; in either the split
// kernel where the package has one (a 1x1 layer whose weights stream),
// the rule's where p8 equals it.
func TestDefaultVariantByFamily(t *testing.T) {
	both := []string{"", "p8", "splitk", "p8splitk"}
	ruleOnly := []string{"", "splitk"} // p8 equals the rule's blocking
	plain := []string{"", "p8"}
	for _, c := range []struct {
		family string
		tier   asm.Tier
		have   []string
		want   string
	}{
		{"AuthenticAMD/25", asm.AVX512, plain, "p8"},
		{"AuthenticAMD/25", asm.AVX512, both, "p8splitk"},
		{"AuthenticAMD/26", asm.AVX512, both, "p8splitk"},
		{"AuthenticAMD/26", asm.AVX512, ruleOnly, "splitk"},
		{"AuthenticAMD/26", asm.AVX512, plain, "p8"},
		{"AuthenticAMD/26", asm.AVX512, []string{""}, "p8"}, // New falls back to "" (builder.Conv)
		{"AuthenticAMD/26", asm.AVX2, ruleOnly, "splitk"},
		{"AuthenticAMD/25", asm.AVX2, []string{""}, ""},
		{"GenuineIntel/6", asm.AVX512, plain, ""},
		{"GenuineIntel/6", asm.AVX512, both, "splitk"},
		{"", asm.AVX512, plain, ""},
	} {
		assert.Equal(t, c.want, defaultVariantOn(c.family, c.tier, c.have), "%s %v %v", c.family, c.tier, c.have)
	}
}

// Without a cache New runs Winograd in the package's first tile size where
// it has one, else the family's direct variant: what `resnet tune` keeps
// unless a candidate clearly beats it.
func TestDefaultCandidate(t *testing.T) {
	assert.Equal(t, "winograd/2", DefaultCandidate(asm.AVX512, []int{2, 4}, []string{"", "p8"}))
	assert.Equal(t, "winograd/4", DefaultCandidate(asm.AVX2, []int{4}, []string{""}))
	assert.Equal(t, "direct", DefaultCandidate(asm.AVX2, nil, []string{""}))
	assert.Equal(t, "direct/splitk", DefaultCandidate(asm.AVX2, nil, []string{"", "splitk"}))
	want := Candidate(false, defaultVariant(asm.AVX512, []string{"", "p8"}), 0) // this CPU's family decides
	assert.Equal(t, want, DefaultCandidate(asm.AVX512, nil, []string{"", "p8"}))
}
