//go:build arm64 && !purego

package asm

// tiers: NEON (Advanced SIMD) is part of every ARMv8-A core, so arm64
// always has it.
var tiers = []Tier{Purego, NEON}
