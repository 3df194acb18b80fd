//go:build amd64 && !purego

package asm

import "golang.org/x/sys/cpu"

// tiers is read once. The AVX-512 kernels use F and DQ (VXORPS on zmm is a
// DQ instruction: every AVX-512 CPU but Xeon Phi has it); x/sys/cpu also
// checks that the OS saves zmm state. The AVX2 kernels also use FMA.
var tiers = func() []Tier {
	t := []Tier{Purego}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		t = append(t, AVX2)
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
		t = append(t, AVX512)
	}
	return t
}()
