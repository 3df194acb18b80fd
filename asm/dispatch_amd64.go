//go:build amd64 && !purego

package asm

import "golang.org/x/sys/cpu"

// available is read once: AVX-512 needs the F subset (and the OS saving zmm
// state, which x/sys/cpu checks); AVX2 kernels also use FMA.
var available = func() []Tier {
	t := []Tier{Purego}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		t = append(t, AVX2)
	}
	if cpu.X86.HasAVX512F {
		t = append(t, AVX512)
	}
	return t
}()

func specialised(t Tier) []ConvKernel {
	switch t {
	case AVX512:
		return convAVX512
	case AVX2:
		return convAVX2
	}
	return nil
}
