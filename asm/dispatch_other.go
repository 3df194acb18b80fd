//go:build !amd64 || purego

package asm

// tiers: the portable kernels only (NEON is added by dispatch_arm64.go).
var tiers = []Tier{Purego}
