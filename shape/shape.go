// Package shape names what a specialised convolution kernel is specialised
// on. It is a leaf: package resnet (which describes networks) and package
// asm (which runs kernels) both use it, and neither imports the other.
package shape

import "fmt"

// Conv is a convolution as its kernel sees it: a K×K kernel, stride and
// padding, channels, and the input and output sizes.
type Conv struct {
	K, Stride, Pad int
	InC, OutC      int
	InH, InW       int
	OutH, OutW     int
}

// MACs is the number of multiply-adds of one image.
func (s Conv) MACs() int64 { return int64(s.OutH*s.OutW*s.OutC) * int64(s.InC*s.K*s.K) }

// WeightBytes is the size of the layer's float32 weights.
func (s Conv) WeightBytes() int { return 4 * s.K * s.K * s.InC * s.OutC }

// Valid reports whether the fields describe a convolution: positive sizes,
// a kernel that fits the padded input, and the output size the others imply.
func (s Conv) Valid() bool {
	out := func(in int) int { return (in+2*s.Pad-s.K)/s.Stride + 1 }
	return s.K >= 1 && s.Stride >= 1 && s.Pad >= 0 && s.InC >= 1 && s.OutC >= 1 && s.InH >= 1 && s.InW >= 1 &&
		s.InH+2*s.Pad >= s.K && s.InW+2*s.Pad >= s.K && s.OutH == out(s.InH) && s.OutW == out(s.InW)
}

// Name is the kernel name of the shape without tier or variant:
// conv3x3s1_c64k64_h56 for a square 56×56 input, conv3x3s1_c64k64_h48w40
// for a 48-high, 40-wide one. Kernel tables, tuning caches and benchmarks
// all key on it.
func (s Conv) Name() string {
	return fmt.Sprintf("conv%dx%ds%d_c%dk%d_%s", s.K, s.K, s.Stride, s.InC, s.OutC, s.size())
}

// WinogradName names the shape's Winograd F(m×m,3×3) kernel without its
// tier: wino4_c64k64_h56.
func (s Conv) WinogradName(m int) string {
	return fmt.Sprintf("wino%d_c%dk%d_%s", m, s.InC, s.OutC, s.size())
}

func (s Conv) size() string {
	if s.InW != s.InH {
		return fmt.Sprintf("h%dw%d", s.InH, s.InW)
	}
	return fmt.Sprintf("h%d", s.InH)
}

func (s Conv) String() string {
	return fmt.Sprintf("conv %dx%d/%d %d→%d on %dx%d", s.K, s.K, s.Stride, s.InC, s.OutC, s.InH, s.InW)
}

// Kernel names one generated kernel: the shape's name, the tier and, for a
// blocking other than the generator's rule, the variant
// (conv3x3s1_c64k64_h56_avx512_p8).
func Kernel(name, tier, variant string) string {
	if variant == "" {
		return name + "_" + tier
	}
	return name + "_" + tier + "_" + variant
}
