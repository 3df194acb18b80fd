package bench

import (
	"maps"
	"slices"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
)

// TuneResult is one shape's choice on one tier.
type TuneResult struct {
	Key     string // engine.TuningKey
	Measure engine.Measure
}

// Tune measures, for every convolution shape of net that has more than one
// candidate on tier t in ks (a Winograd kernel, or an alternative direct
// blocking), each candidate on one thread in interleaved rounds, and picks
// the fastest, or New's default where none beats it by more than
// o.TieMargin (pickBest). The weights rotate through copies as large as net's (Options.
// WeightBytes), so they are as cold as in net at batch 1: warm, the
// kernels that reread one weight panel from L2 win where the network sees
// the opposite (on Zen 5, ResNet-50's 512→2048 on 7×7: tiles of 2×7
// pixels by 32 channels 1.14× faster than 4×1 by 64 warm, 0.83–0.94× as
// fast cold in two tunings; in the network 0.87–0.89×).
func Tune(ks *asm.KernelSet, net *resnet.Network, t asm.Tier, o Options) ([]TuneResult, error) {
	var out []TuneResult
	for _, s := range net.ConvShapes() {
		cs := s
		type cand struct {
			name string
			run  func(Options) KernelResult
		}
		var cands []cand
		for _, v := range ks.ConvVariants(cs, t) {
			k, err := ks.ConvVariant(cs, t, v)
			if err != nil {
				return nil, err
			}
			cands = append(cands, cand{engine.Candidate(false, v, 0), func(o Options) KernelResult { return Conv(k, o) }})
		}
		for _, m := range ks.WinogradMs(cs, t) {
			w, err := ks.WinogradM(cs, t, m)
			if err != nil {
				return nil, err
			}
			cands = append(cands, cand{engine.Candidate(true, "", m), func(o Options) KernelResult { return Winograd(w, o) }})
		}
		if len(cands) < 2 {
			continue
		}
		// Interleave: one round of each candidate in turn, o.Rounds times.
		one := o
		one.Rounds, one.WeightBytes = 1, 4*int(net.Params())
		gf := make([][]float64, len(cands))
		for range max(1, o.Rounds) {
			for i, c := range cands {
				gf[i] = append(gf[i], c.run(one).GFLOPs)
			}
		}
		m := engine.Measure{GFLOPs: map[string]float64{}}
		for i, c := range cands {
			m.GFLOPs[c.name] = median(gf[i])
		}
		m.Best = pickBest(m.GFLOPs, engine.ThisMachine().RuleCandidate(t, cs, ks.WinogradMs(cs, t), ks.ConvVariants(cs, t)), o.TieMargin)
		out = append(out, TuneResult{Key: engine.TuningKey(t, cs), Measure: m})
	}
	return out, nil
}

// TuneFamily tunes every shape of the generated family packages on tier t,
// each shape once.
func TuneFamily(t asm.Tier, o Options) ([]TuneResult, error) {
	var out []TuneResult
	seen := map[string]bool{}
	for _, info := range all.Networks {
		net, err := info.Network()
		if err != nil {
			return nil, err
		}
		rs, err := Tune(info.Kernels, net, t, o)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if !seen[r.Key] {
				seen[r.Key] = true
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// DefaultTieMargin is how much faster (in median GFLOP/s) a candidate must
// run than New's default rule for `resnet tune` to pick it. On a Zen 5
// (EPYC family 26 model 2), AVX-512, 5 rounds per shape: two tunings of
// the family without a margin picked differently on 11 of its 36 shapes
// (their direct-against-p8 ratios replayed with a margin: 13 of 34 flips
// with none, 7 with 3 %, 5 with 5 %, 3 with 8 %); two tunings with 5 %
// differed on 1. Most shapes' candidates differ by less than the host's
// noise, and there the default, measured in whole networks, is the
// steadier choice.
const DefaultTieMargin = 0.05

// pickBest returns the fastest candidate by median GFLOP/s if it beats the
// default candidate def by more than margin (a fraction), else def; if
// the measurements lack def (its variant is not in the package: New runs
// "direct"), "direct" stands for it, and failing that any candidate may
// win outright. Ties go to the name that sorts first, so the pick does not
// depend on map order.
func pickBest(gflops map[string]float64, def string, margin float64) string {
	names := slices.Sorted(maps.Keys(gflops))
	best := ""
	for _, c := range names {
		if best == "" || gflops[c] > gflops[best] {
			best = c
		}
	}
	if _, ok := gflops[def]; !ok {
		def = "direct"
	}
	if g, ok := gflops[def]; ok && gflops[best] <= g*(1+margin) {
		return def
	}
	return best
}
