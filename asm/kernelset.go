package asm

import (
	"fmt"

	"github.com/resnetgen/resnetgen/shape"
)

// KernelSet is the specialised kernels a generated package brings for the
// shapes of its network, on every SIMD tier it was generated for. Lookups
// on the Purego tier return the portable kernels, which take any shape; a
// nil or empty set (a build without SIMD kernels) has only those.
type KernelSet struct {
	Conv     []ConvKernel
	Winograd []WinogradKernel
	MaxPool  []MaxPoolKernel
	AvgPool  []AvgPoolKernel
	FC       []FCKernel
	// Int8 is set in the tables of a package generated with int8 kernels
	// (resnetgen -precision int8), QConv its int8 convolutions (every
	// convolution but the stem's) on this build's SIMD int8 tiers: none on
	// arm64 and in purego builds, where the portable int8 kernel runs.
	Int8     bool
	QConv    []QConvKernel
	QMaxPool []QMaxPoolKernel
	QInput   []QInputKernel
}

func available(t Tier) error {
	if !Has(t) {
		return fmt.Errorf("tier %v is not available on this machine and build (have %v)", t, Tiers())
	}
	return nil
}

// lookup finds the kernel of tier t that match accepts in list, or on the
// Purego tier makes the portable one; missing describes the kernel for the
// error when there is none.
func lookup[K any](t Tier, list []K, tier func(*K) Tier, match func(*K) bool, portable func() (*K, error), missing string) (*K, error) {
	if err := available(t); err != nil {
		return nil, err
	}
	if t == Purego {
		return portable()
	}
	for i := range list {
		if k := &list[i]; tier(k) == t && match(k) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no %v %s: the package was generated for other shapes (run go generate)", t, missing)
}

// ConvKernel returns the kernel for shape s on tier t (the generator's
// rule's blocking; see ConvVariant).
func (ks *KernelSet) ConvKernel(s shape.Conv, t Tier) (*ConvKernel, error) {
	return ks.ConvVariant(s, t, "")
}

// ConvVariants lists the variants the set has for shape s on tier t ("" first).
func (ks *KernelSet) ConvVariants(s shape.Conv, t Tier) []string {
	var out []string
	for _, k := range ks.list().Conv {
		if k.Tier == t && k.Shape == s {
			out = append(out, k.Variant)
		}
	}
	return out
}

// ConvVariant returns the kernel variant v for shape s on tier t.
func (ks *KernelSet) ConvVariant(s shape.Conv, t Tier, v string) (*ConvKernel, error) {
	what := "kernel for " + s.Name()
	if v != "" {
		what = fmt.Sprintf("kernel for %s (variant %s)", s.Name(), v)
	}
	k, err := lookup(t, ks.list().Conv, func(k *ConvKernel) Tier { return k.Tier },
		func(k *ConvKernel) bool { return k.Shape == s && k.Variant == v }, func() (*ConvKernel, error) { return PortableConv(s) },
		what)
	if err != nil {
		return nil, err
	}
	return k, k.validate()
}

// WinogradKernel returns the first Winograd kernel listed for the 3x3
// stride-1 shape s on tier t (see WinogradM), with its GEMM kernels; an
// error if the set has none (the portable tier has none: it runs the
// direct convolution).
func (ks *KernelSet) WinogradKernel(s shape.Conv, t Tier) (*WinogradKernel, error) {
	return ks.WinogradM(s, t, 0)
}

// WinogradMs lists the tile sizes m of the Winograd kernels F(m×m,3×3) the
// set has for shape s on tier t.
func (ks *KernelSet) WinogradMs(s shape.Conv, t Tier) []int {
	var out []int
	for _, k := range ks.list().Winograd {
		if k.Tier == t && k.Shape == s {
			out = append(out, k.M)
		}
	}
	return out
}

// WinogradM returns the Winograd kernel F(m×m,3×3) for shape s on tier t
// (m 0: the first listed).
func (ks *KernelSet) WinogradM(s shape.Conv, t Tier, m int) (*WinogradKernel, error) {
	if err := available(t); err != nil {
		return nil, err
	}
	for _, entry := range ks.list().Winograd {
		if entry.Tier != t || entry.Shape != s || m != 0 && entry.M != m {
			continue
		}
		// A copy: the table is a generated package's variable, shared by
		// every Model that package makes, concurrently.
		k := &entry
		var err error
		if k.gemm, err = ks.ConvKernel(k.GEMMShape, t); err != nil {
			return nil, fmt.Errorf("%s: %w", k.Name, err)
		}
		if k.TailShape != (shape.Conv{}) {
			if k.tail, err = ks.ConvKernel(k.TailShape, t); err != nil {
				return nil, fmt.Errorf("%s: %w", k.Name, err)
			}
		}
		return k, k.validate()
	}
	return nil, fmt.Errorf("no %v Winograd kernel F(%d,3) for %s", t, m, s.Name())
}

// QConvKernel returns the int8 kernel for shape s on tier t (an int8 tier:
// Int8Tiers).
func (ks *KernelSet) QConvKernel(s shape.Conv, t Tier) (*QConvKernel, error) {
	k, err := lookup(t, ks.list().QConv, func(k *QConvKernel) Tier { return k.Tier },
		func(k *QConvKernel) bool { return k.Shape == s }, func() (*QConvKernel, error) { return PortableQConv(s) },
		"int8 kernel for "+s.Name())
	if err != nil {
		return nil, err
	}
	return k, k.validate()
}

// QMaxPoolKernel returns the uint8 max pool of c channels on int8 tier t.
func (ks *KernelSet) QMaxPoolKernel(c int, t Tier) (*QMaxPoolKernel, error) {
	return lookup(t, ks.list().QMaxPool, func(k *QMaxPoolKernel) Tier { return k.Tier },
		func(k *QMaxPoolKernel) bool { return k.C == c && k.F != nil }, func() (*QMaxPoolKernel, error) { return PortableQMaxPool(c) },
		fmt.Sprintf("uint8 max-pool kernel for %d channels", c))
}

// QInputKernel returns the input quantizer on int8 tier t.
func (ks *KernelSet) QInputKernel(t Tier) (*QInputKernel, error) {
	return lookup(t, ks.list().QInput, func(k *QInputKernel) Tier { return k.Tier },
		func(k *QInputKernel) bool { return k.F != nil && k.Lanes > 0 }, func() (*QInputKernel, error) { return PortableQInput(), nil },
		"input quantizer")
}

// HasInt8 reports whether the set's package was generated with int8 kernels.
func (ks *KernelSet) HasInt8() bool { return ks.list().Int8 }

// MaxPoolKernel returns the 3x3/2 max pool of c channels on tier t.
func (ks *KernelSet) MaxPoolKernel(c int, t Tier) (*MaxPoolKernel, error) {
	return lookup(t, ks.list().MaxPool, func(k *MaxPoolKernel) Tier { return k.Tier },
		func(k *MaxPoolKernel) bool { return k.C == c && k.F != nil }, func() (*MaxPoolKernel, error) { return PortableMaxPool(c) },
		fmt.Sprintf("max-pool kernel for %d channels", c))
}

// AvgPoolKernel returns the global average pool of c channels on tier t.
func (ks *KernelSet) AvgPoolKernel(c int, t Tier) (*AvgPoolKernel, error) {
	return lookup(t, ks.list().AvgPool, func(k *AvgPoolKernel) Tier { return k.Tier },
		func(k *AvgPoolKernel) bool { return k.C == c && k.F != nil }, func() (*AvgPoolKernel, error) { return PortableAvgPool(c) },
		fmt.Sprintf("average-pool kernel for %d channels", c))
}

// FCKernel returns the in→out classifier on tier t.
func (ks *KernelSet) FCKernel(in, out int, t Tier) (*FCKernel, error) {
	return lookup(t, ks.list().FC, func(k *FCKernel) Tier { return k.Tier },
		func(k *FCKernel) bool { return k.In == in && k.Out == out && k.F != nil && k.Block > 0 },
		func() (*FCKernel, error) { return PortableFC(in, out) },
		fmt.Sprintf("classifier kernel for %d→%d", in, out))
}

// list is ks, or an empty set for a nil ks.
func (ks *KernelSet) list() *KernelSet {
	if ks == nil {
		return &KernelSet{}
	}
	return ks
}

// Tiers lists the SIMD tiers the set has kernels for, in Tier order.
func (ks *KernelSet) Tiers() []Tier {
	var out []Tier
	for _, t := range []Tier{AVX2, AVX512, NEON} {
		for _, k := range ks.list().Conv {
			if k.Tier == t {
				out = append(out, t)
				break
			}
		}
	}
	return out
}
