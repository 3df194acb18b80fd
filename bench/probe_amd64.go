//go:build amd64 && !purego

package bench

import "github.com/resnetgen/resnetgen/asm"

func runProbe(t asm.Tier, n uint64) {
	switch t {
	case asm.AVX512:
		fmaPeakAVX512(n)
	case asm.AVX2:
		fmaPeakAVX2(n)
	default:
		peakGo(n)
	}
}
