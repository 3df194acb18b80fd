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

// int8Tiers: VNNI needs AVX-512 F, DQ (VXORPS on zmm), BW and VNNI (the
// int8 kernels' byte moves and VPDPBUSD); the AVX2 int8 kernels need AVX2 only.
var int8Tiers = func() []Tier {
	t := []Tier{Purego}
	if cpu.X86.HasAVX2 {
		t = append(t, AVX2)
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI {
		t = append(t, VNNI)
	}
	return t
}()
