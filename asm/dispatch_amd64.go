//go:build amd64 && !purego

package asm

import "golang.org/x/sys/cpu"

// available is read once. The AVX-512 kernels use F and DQ (VXORPS on zmm
// is a DQ instruction: every AVX-512 CPU but Xeon Phi has it); x/sys/cpu
// also checks that the OS saves zmm state. The AVX2 kernels also use FMA.
var available = func() []Tier {
	t := []Tier{Purego}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		t = append(t, AVX2)
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
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

func maxPools(t Tier) []MaxPoolKernel {
	switch t {
	case AVX512:
		return maxPoolAVX512
	case AVX2:
		return maxPoolAVX2
	}
	return nil
}

func avgPools(t Tier) []AvgPoolKernel {
	switch t {
	case AVX512:
		return avgPoolAVX512
	case AVX2:
		return avgPoolAVX2
	}
	return nil
}

func fcs(t Tier) []FCKernel {
	switch t {
	case AVX512:
		return fcAVX512
	case AVX2:
		return fcAVX2
	}
	return nil
}
