package engine

import (
	"slices"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/shape"
)

// The CPU rule: how New runs a convolution when neither a flag nor a
// tuning cache says, from the machine's features and caches (Machine) and
// the layer's shape and weights. It chooses among what the package's plan
// emitted (gen/plan): Winograd in the plan's first tile size, or the direct
// kernel in one of its variants. It is held to the tuning files of our
// machines (testdata/tuning-*.json): on every shape its choice runs within
// `resnet tune`'s tie margin of the fastest measured there.

// Rule is the rule's choice for shape s on tier t among the Winograd tile
// sizes ms (the plan's order) and the direct variants the package has:
// Winograd F(m×m,3×3) if winograd, else the direct kernel's variant
// (variant is the direct choice in either case, for WithConv(Direct)).
func (m Machine) Rule(t asm.Tier, s shape.Conv, ms []int, variants []string) (winograd bool, wm int, variant string) {
	variant = m.ruleVariant(t, s, variants)
	if len(ms) > 0 && m.winogradPays(t, s, ms[0]) {
		return true, ms[0], variant
	}
	return false, 0, variant
}

// RuleCandidate is Rule as a tuning candidate name ("winograd/2",
// "direct/p8splitk"): what `resnet tune` keeps unless a candidate clearly
// beats it.
func (m Machine) RuleCandidate(t asm.Tier, s shape.Conv, ms []int, variants []string) string {
	w, wm, v := m.Rule(t, s, ms, variants)
	return Candidate(w, v, wm)
}

// l2 is the core's L2, or 1 MiB (the smallest of our machines) if unknown.
func (m Machine) l2() int {
	if m.L2 > 0 {
		return m.L2
	}
	return 1 << 20
}

// ruleVariant is the direct variant:
//
//   - split (SplitVariant) where the layer's weights exceed the core's L2:
//     then they stream from memory at every image, and the split kernels
//     keep the stream steady (gen/plan's splitK). The plan emits split
//     variants from 2 MiB (1x1) and 4 MiB (3x3): on a 1 MiB L2 all of
//     them; on a 2 MiB L2 the 2 MiB layers stay in L2 and run whole.
//   - "p8" (AVX-512 tiles of at most 8 pixels and panels of at most 1 MiB)
//     where the core's L2 is 1 MiB or less: the caps are sized for such a
//     core (Zen 4, Zen 5; an 8-way L1 on Zen 4). With a larger L2 the plan's
//     rule, except the 1x1 stride-1 layers on maps of 56×56 or more with at
//     most 256 channels either side: p8's 64-channel blocks make half as
//     many passes over a band's input and write each output pixel's block
//     as one 256-byte run (the Xeon fixture: 1.10–1.15× the rule's speed on
//     those, level on the 28×28 ones).
func (m Machine) ruleVariant(t asm.Tier, s shape.Conv, variants []string) string {
	base := ""
	bigMap := s.K == 1 && s.Stride == 1 && s.OutH*s.OutW >= 56*56 && s.InC <= 256 && s.OutC <= 256
	if t == asm.AVX512 && (m.l2() <= 1<<20 || bigMap) {
		base = "p8"
	}
	if s.WeightBytes() > m.l2() {
		// The plan emits no p8 split where it equals the rule's: then the
		// rule's split is p8's.
		for _, v := range []string{base + SplitVariant, SplitVariant} {
			if slices.Contains(variants, v) {
				return v
			}
		}
	}
	if slices.Contains(variants, base) {
		return base
	}
	return ""
}

// winogradPays reports whether the rule's model times Winograd F(wm×wm,3×3)
// below the direct kernel on shape s: each takes the longer of computing
// and streaming its weights from memory (where they exceed the L2), the
// direct kernel at 0.9 of the tier's peak, Winograd wm²·9/α² times fewer
// multiplications (4 for F(4,3), 2.25 for F(2,3)) discounted by its
// transforms, c/(c + TransformChannels) for c the smaller channel count:
// the transforms' work per output grows with the channels, the products'
// with their square. Its weights are α²/9 times the direct ones (4 for
// F(4,3), 16/9 for F(2,3)).
func (m Machine) winogradPays(t asm.Tier, s shape.Conv, wm int) bool {
	alpha := float64(wm + 2)
	stream := func(bytes int) float64 {
		if bytes <= m.l2() {
			return 0
		}
		return float64(bytes) / (m.StreamGBs * 1e9)
	}
	compute := 2 * float64(s.MACs()) / (0.9 * peakGFLOPs(t, m) * 1e9)
	direct := max(compute, stream(s.WeightBytes()))
	c := float64(min(s.InC, s.OutC))
	gain := float64(9*wm*wm) / (alpha * alpha) * c / (c + m.TransformChannels)
	wino := max(compute/gain, stream(int(alpha*alpha)*4*s.InC*s.OutC))
	return wino < direct
}

// peakGFLOPs is a core's FMA peak on tier t as the rule models it, at
// 3.5 GHz: two FMA pipes of the tier's width (Zen 4 runs AVX-512 at half
// its width); NEON as Neoverse V1 (four 128-bit pipes).
func peakGFLOPs(t asm.Tier, m Machine) float64 {
	switch t {
	case asm.AVX512:
		if m.Vendor == "AuthenticAMD" && m.Family == 25 {
			return 112
		}
		return 224
	case asm.AVX2:
		return 112
	case asm.NEON:
		return 112
	}
	return 16
}
