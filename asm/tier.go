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
	// VNNI is AVX-512 with the VNNI extension (VPDPBUSD: 4 uint8 × 4 int8
	// products summed into each of 16 int32 lanes): the int8 kernels' tier.
	// It is not in Tiers(), which lists the float32 tiers; Int8Tiers lists
	// it where the CPU has it.
	VNNI
)

var tierNames = []string{"purego", "avx2", "avx512", "neon", "vnni"}

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

// Tiers lists the float32 tiers this machine and build can run, slowest
// first.
func Tiers() []Tier { return tiers }

// Best is the fastest float32 tier this machine and build can run.
func Best() Tier { return tiers[len(tiers)-1] }

// Int8Tiers lists the tiers of int8 kernels this machine and build can run,
// slowest first: the portable kernel everywhere; AVX2 (exact: widened to
// int16 and multiplied with VPMADDWD, never the saturating VPMADDUBSW) and
// VNNI on amd64. arm64 runs the portable int8 kernel.
func Int8Tiers() []Tier { return int8Tiers }

// BestInt8 is the fastest int8 tier this machine and build can run.
func BestInt8() Tier { return int8Tiers[len(int8Tiers)-1] }

// Has reports whether t can run here (for one precision or the other).
func Has(t Tier) bool {
	for _, a := range append(tiers, int8Tiers...) {
		if a == t {
			return true
		}
	}
	return false
}
