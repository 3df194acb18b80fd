//go:build (!amd64 && !arm64) || purego

package asm

// tiers: the portable kernels only (amd64 and arm64 have their own files).
var tiers = []Tier{Purego}

// int8Tiers: the portable int8 kernel.
var int8Tiers = []Tier{Purego}
