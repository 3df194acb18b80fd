package asm

import "fmt"

// Tier is an instruction set the kernels are written for.
type Tier int

const (
	// Purego is the portable Go implementation, always available.
	Purego Tier = iota
	// AVX2 is AVX2 + FMA, 16 ymm registers of 8 float32.
	AVX2
	// AVX512 is AVX-512F, 32 zmm registers of 16 float32.
	AVX512
)

func (t Tier) String() string {
	switch t {
	case Purego:
		return "purego"
	case AVX2:
		return "avx2"
	case AVX512:
		return "avx512"
	}
	return fmt.Sprintf("Tier(%d)", int(t))
}

// ParseTier is the inverse of Tier.String.
func ParseTier(s string) (Tier, error) {
	for _, t := range []Tier{Purego, AVX2, AVX512} {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown tier %q (want purego, avx2 or avx512)", s)
}

// Tiers lists the tiers this machine and build can run, slowest first.
func Tiers() []Tier { return available }

// Best is the fastest tier this machine and build can run.
func Best() Tier { return available[len(available)-1] }

// Has reports whether t can run here.
func Has(t Tier) bool {
	for _, a := range available {
		if a == t {
			return true
		}
	}
	return false
}
