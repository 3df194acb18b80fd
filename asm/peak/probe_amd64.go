//go:build amd64 && !purego

package peak

import "github.com/resnetgen/resnetgen/asm"

func hasProbe(t asm.Tier) bool {
	return t == asm.AVX512 || t == asm.AVX2 || t == asm.Purego || t == asm.VNNI && asm.Has(asm.VNNI)
}

func run(t asm.Tier, n uint64) {
	switch t {
	case asm.AVX512:
		fmaPeakAVX512(n)
	case asm.AVX2:
		fmaPeakAVX2(n)
	case asm.VNNI:
		vnniPeak(n)
	default:
		peakGo(n)
	}
}
