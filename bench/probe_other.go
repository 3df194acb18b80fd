//go:build !amd64 || purego

package bench

import "github.com/resnetgen/resnetgen/asm"

func runProbe(_ asm.Tier, n uint64) { peakGo(n) }
