//go:build (!amd64 && !arm64) || purego

package peak

import "github.com/resnetgen/resnetgen/asm"

func hasProbe(t asm.Tier) bool { return t == asm.Purego }

func run(t asm.Tier, n uint64) { peakGo(n) }
