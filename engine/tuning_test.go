package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/resnetgen/resnetgen/asm"
)

// The direct variant New picks without a tuning cache, per CPU family:
// p8 on AVX-512 on Zen 4 everywhere, on Zen 5 except ResNet-50's 2048→512
// on 7×7 (measured there in the network: slower than the generator's
// blocking), the generator's blocking on AVX2 and on other CPUs.
func TestDefaultVariantByFamily(t *testing.T) {
	wide := asm.ConvShape{K: 1, Stride: 1, InC: 2048, OutC: 512, InH: 7, InW: 7, OutH: 7, OutW: 7}
	expand := asm.ConvShape{K: 1, Stride: 1, InC: 512, OutC: 2048, InH: 7, InW: 7, OutH: 7, OutW: 7}
	deep := asm.ConvShape{K: 1, Stride: 1, InC: 1024, OutC: 256, InH: 14, InW: 14, OutH: 14, OutW: 14}
	for _, c := range []struct {
		family string
		tier   asm.Tier
		s      asm.ConvShape
		want   string
	}{
		{"AuthenticAMD/25", asm.AVX512, wide, "p8"},
		{"AuthenticAMD/25", asm.AVX512, deep, "p8"},
		{"AuthenticAMD/26", asm.AVX512, wide, ""},
		{"AuthenticAMD/26", asm.AVX512, expand, "p8"},
		{"AuthenticAMD/26", asm.AVX512, deep, "p8"},
		{"AuthenticAMD/26", asm.AVX2, deep, ""},
		{"AuthenticAMD/25", asm.AVX2, deep, ""},
		{"GenuineIntel/6", asm.AVX512, deep, ""},
		{"", asm.AVX512, deep, ""},
	} {
		assert.Equal(t, c.want, defaultVariantOn(c.family, c.tier, c.s), "%s %v %s", c.family, c.tier, c.s.Name())
	}
}

// Without a cache New runs Winograd in the package's first tile size where
// it has one, else the family's direct variant: what `resnet tune` keeps
// unless a candidate clearly beats it.
func TestDefaultCandidate(t *testing.T) {
	s3 := asm.ConvShape{K: 3, Stride: 1, Pad: 1, InC: 256, OutC: 256, InH: 14, InW: 14, OutH: 14, OutW: 14}
	assert.Equal(t, "winograd/2", DefaultCandidate(asm.AVX512, s3, []int{2, 4}))
	assert.Equal(t, "winograd/4", DefaultCandidate(asm.AVX2, s3, []int{4}))
	assert.Equal(t, "direct", DefaultCandidate(asm.AVX2, s3, nil))
	want := Candidate(false, defaultVariant(asm.AVX512, s3), 0) // this CPU's family decides
	assert.Equal(t, want, DefaultCandidate(asm.AVX512, s3, nil))
}
