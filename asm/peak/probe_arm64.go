//go:build arm64 && !purego

package peak

import "github.com/resnetgen/resnetgen/asm"

func hasProbe(t asm.Tier) bool { return t == asm.NEON || t == asm.Purego }

func run(t asm.Tier, n uint64) {
	if t == asm.NEON {
		fmaPeakNEON(n)
		return
	}
	peakGo(n)
}
