package kernels

import (
	"sort"

	"github.com/resnetgen/resnetgen/gen/plan"
	"github.com/resnetgen/resnetgen/resnet"
)

// NEONModel describes one NEON convolution kernel of a plan: the tile, the
// inner loop's FMAs per load, and the modelled fraction of the FMA peak on
// Neoverse N1 and V1 averaged over the kernel's main and remainder tiles.
type NEONModel struct {
	Name            string
	TH, TW, V       int
	RemTH, RemTW    int
	ICBlock         int
	FMAsPerLoad     float64
	N1, V1          float64
	GroupOfChannels int
}

// ModelNEON returns the NEON plan's convolution kernels (layers, their
// variants and the Winograd products) of the nets with their modelled
// speed, each once, sorted by name.
func ModelNEON(nets ...*resnet.Network) []NEONModel {
	seen := map[string]bool{}
	var out []NEONModel
	for _, net := range nets {
		for _, c := range plan.For(net, plan.NEON).Conv {
			if seen[c.Name] {
				continue
			}
			seen[c.Name] = true
			s, b := c.Shape, c.Blocking
			g := plan.NEON.Group(s.InC)
			avg := func(m plan.Machine) float64 {
				fullH, fullW := s.OutH-b.RemTH, s.OutW-b.RemTW
				cyc := 0.0
				for _, part := range []struct{ r, px int }{
					{b.TH * b.TW, fullH * fullW}, {b.RemTH * b.TW, b.RemTH * fullW},
					{b.TH * b.RemTW, fullH * b.RemTW}, {b.RemTH * b.RemTW, b.RemTH * b.RemTW},
				} {
					if part.px > 0 {
						cyc += float64(part.px) / m.Efficiency(part.r, b.V, g)
					}
				}
				return float64(s.OutH*s.OutW) / cyc
			}
			out = append(out, NEONModel{Name: c.Name, TH: b.TH, TW: b.TW, V: b.V, RemTH: b.RemTH, RemTW: b.RemTW, ICBlock: b.ICBlock,
				FMAsPerLoad: 1 / plan.LoadsPerFMA(b.TH*b.TW, b.V, g), N1: avg(plan.NeoverseN1), V1: avg(plan.NeoverseV1), GroupOfChannels: g})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
