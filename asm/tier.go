package asm

import (
	"fmt"
	"strings"
)

// Tier is an instruction set the kernels are written for.
type Tier int

const (
	// Purego is the portable Go implementation, always available.
	Purego Tier = iota
	// AVX2 is AVX2 + FMA, 16 ymm registers of 8 float32.
	AVX2
	// AVX512 is AVX-512F (+DQ), 32 zmm registers of 16 float32.
	AVX512
	// NEON is arm64's Advanced SIMD, 32 registers of 4 float32.
	NEON
)

var tierNames = []string{"purego", "avx2", "avx512", "neon"}

func (t Tier) String() string {
	if t >= 0 && int(t) < len(tierNames) {
		return tierNames[t]
	}
	return fmt.Sprintf("Tier(%d)", int(t))
}

// ParseTier is the inverse of Tier.String.
func ParseTier(s string) (Tier, error) {
	for i, n := range tierNames {
		if n == s {
			return Tier(i), nil
		}
	}
	return 0, fmt.Errorf("unknown tier %q (want %s)", s, strings.Join(tierNames, ", "))
}

// Tiers lists the tiers this machine and build can run, slowest first.
func Tiers() []Tier { return tiers }

// Best is the fastest tier this machine and build can run.
func Best() Tier { return tiers[len(tiers)-1] }

// Has reports whether t can run here.
func Has(t Tier) bool {
	for _, a := range tiers {
		if a == t {
			return true
		}
	}
	return false
}
