//go:build arm64 && !purego

package asm

// tiers: NEON (Advanced SIMD) is part of every ARMv8-A core, so arm64
// always has it.
var tiers = []Tier{Purego, NEON}

// int8Tiers: the portable int8 kernel (a NEON SDOT/UDOT tier is for later).
var int8Tiers = []Tier{Purego}
