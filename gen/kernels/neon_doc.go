package kernels

import (
	"fmt"
	"sort"
	"strings"

	"github.com/resnetgen/resnetgen/gen/plan"
	"github.com/resnetgen/resnetgen/resnet"
)

// NEONModel describes one NEON convolution kernel of a plan: what it is
// for, the tile, the inner loop's FMAs per load, and the modelled fraction
// of the FMA peak on Neoverse N1 and V1 averaged over the kernel's main and
// remainder tiles.
type NEONModel struct {
	Name            string
	Variant         string // "" (the rule's blocking) or "splitk"
	Product         string // for a Winograd product's GEMM, the Winograd kernels it serves
	TH, TW, V       int
	RemTH, RemTW    int
	ICBlock         int
	Prefetch        string // "", "per tile" or "spread" (Blocking.PrefetchNext, SpreadPrefetch)
	FMAsPerLoad     float64
	N1, V1          float64
	GroupOfChannels int
}

// NEONWinograd describes one NEON Winograd kernel of a plan: its algorithm,
// chunking and products, and its products' modelled fraction of the FMA
// peak (the GEMMs over the chunks, weighted by their tiles; the transforms
// are not modelled).
type NEONWinograd struct {
	Name        string
	Layer       string // the direct kernel's shape name
	M, Alpha    int
	Tiles       int
	Chunk       int // tiles a chunk
	Chunks      int
	ICBlock     int // input channels a product call
	UBytes      int // the transformed weights
	GEMM, Tail  string
	Default     bool    // New's choice for the layer (the first listed)
	Mults       float64 // multiplications against the direct convolution's: α²/(9m²)
	ProductsN1  float64
	ProductsV1  float64
	PrefetchesU bool
}

// modelConv is c's NEONModel.
func modelConv(c plan.Conv) NEONModel {
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
	pf := ""
	switch {
	case b.PrefetchNext && b.SpreadPrefetch:
		pf = "spread"
	case b.PrefetchNext:
		pf = "per tile"
	}
	return NEONModel{Name: c.Name, Variant: c.Variant, TH: b.TH, TW: b.TW, V: b.V, RemTH: b.RemTH, RemTW: b.RemTW, ICBlock: b.ICBlock,
		Prefetch: pf, FMAsPerLoad: 1 / plan.LoadsPerFMA(b.TH*b.TW, b.V, g), N1: avg(plan.NeoverseN1), V1: avg(plan.NeoverseV1), GroupOfChannels: g}
}

// ModelNEON returns the NEON plan's convolution kernels (layers, their
// variants and the Winograd products) of the nets with their modelled
// speed, each once, sorted by name.
func ModelNEON(nets ...*resnet.Network) []NEONModel {
	seen := map[string]int{}
	var out []NEONModel
	for _, net := range nets {
		p := plan.For(net, plan.NEON)
		products := map[plan.Shape][]string{}
		for _, w := range p.Winograd {
			for _, g := range []plan.Shape{w.GEMM, w.Tail} {
				products[g] = append(products[g], w.Name)
			}
		}
		for _, c := range p.Conv {
			i, ok := seen[c.Name]
			if !ok {
				i = len(out)
				seen[c.Name] = i
				out = append(out, modelConv(c))
			}
			out[i].Product = joinNew(out[i].Product, products[c.Shape]...)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// joinNew appends to the comma-separated list the names it lacks.
func joinNew(list string, names ...string) string {
	for _, n := range names {
		if n == "" || strings.Contains(", "+list+",", ", "+n+",") {
			continue
		}
		if list != "" {
			list += ", "
		}
		list += n
	}
	return list
}

// ModelNEONWinograd returns the NEON plan's Winograd kernels of the nets,
// each once, sorted by name.
func ModelNEONWinograd(nets ...*resnet.Network) []NEONWinograd {
	seen := map[string]bool{}
	var out []NEONWinograd
	for _, net := range nets {
		p := plan.For(net, plan.NEON)
		gemms := map[plan.Shape]NEONModel{}
		for _, c := range p.Conv {
			if c.Variant == "" {
				gemms[c.Shape] = modelConv(c)
			}
		}
		first := map[plan.Shape]bool{}
		for _, w := range p.Winograd {
			isDefault := !first[w.Shape]
			first[w.Shape] = true
			if seen[w.Name] {
				continue
			}
			seen[w.Name] = true
			s := w.Shape
			tiles := ((s.OutH + w.F.M - 1) / w.F.M) * ((s.OutW + w.F.M - 1) / w.F.M)
			chunks := (tiles + w.Chunk - 1) / w.Chunk
			g := gemms[w.GEMM]
			full := tiles / w.Chunk * w.Chunk
			n1, v1 := float64(full)/g.N1, float64(full)/g.V1
			tail := ""
			if w.Tail != (plan.Shape{}) {
				t := gemms[w.Tail]
				n1 += float64(tiles-full) / t.N1
				v1 += float64(tiles-full) / t.V1
				tail = t.Name
			}
			out = append(out, NEONWinograd{Name: w.Name, Layer: s.Name(), M: w.F.M, Alpha: w.F.Alpha, Tiles: tiles, Chunk: w.Chunk, Chunks: chunks,
				ICBlock: w.ICBlock, UBytes: w.F.Alpha * w.F.Alpha * 4 * s.InC * s.OutC, GEMM: g.Name, Tail: tail, Default: isDefault,
				Mults: float64(w.F.Alpha*w.F.Alpha) / float64(9*w.F.M*w.F.M), ProductsN1: float64(tiles) / n1, ProductsV1: float64(tiles) / v1,
				PrefetchesU: g.Prefetch != ""})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NEONDoc is docs/neon.md: the NEON plan of the nets' shapes (every
// kernel: layers, their split variants, the Winograd products and the
// Winograd layers) with what the cost rule models for it on Neoverse N1
// and V1 (no arm64 machine is at hand to measure).
func NEONDoc(nets ...*resnet.Network) []byte {
	var b strings.Builder
	b.WriteString(`# NEON kernels: the plan and its modelled speed

Written by gen/family (go generate ./...) from gen/plan's NEON plan; do not edit. No arm64 machine is
reachable from the project, so no NEON speed has been measured: the figures are the cost rule's
(gen/plan), for each kernel of the family's packages. The kernels are tested for correctness under
qemu-aarch64 (every kernel against the float64 reference, with buffers ending at unmapped pages and
RunPart splits; whole networks).

The inner loop loads 4 input channels of a pixel with one 128-bit load and multiplies them by element
(FMLA Vd.4S, Vn.4S, Vm.S[i]): per group of 4 channels a tile of R pixels × V vectors makes R input and
4·V weight loads for 4·R·V FMAs. The 3-channel stems load one channel at a time (into lane 0). A tile
needs R·V accumulators, R input and V weight registers of the 32.

The model: Neoverse N1 (Graviton2, Ampere Altra) has 2 FMA pipes and 2 load ports, V1 (Graviton3) 4
and 3; FMLA latency 4 on both. A tile's cost is the largest of FMAs ÷ pipes, loads ÷ ports and
latency ÷ accumulators; "N1" and "V1" are the modelled fractions of each core's FMA peak, averaged
over the layer's full and remainder tiles. V1 needs 16 independent accumulators to hide its latency,
which the 7×7 and remainder tiles do not always have. Both cores have a 64 KiB 4-way L1D whose set
index reaches above the 4 KiB page: layers whose input pixels lie a multiple of 4 KiB apart (1024
channels, or 512 at stride 2) keep to tiles of 4 pixels (gen/plan's PageAliasPixels), which the model
rates at peak. The two cores share that geometry, so NEON has one blocking per shape: no second
blocking to choose between per core, as AVX-512's p8 is.

Split kernels ("splitk", the layers whose weights stream from memory) reduce over a slice of the input
channels a call; New takes them by default on arm64. Kernels whose weights stream prefetch the next
weights into L2 (PRFM PLDL2KEEP): "per tile" asks for one line in four of the next panel a tile, so
four consecutive tiles ask for all of it; "spread" shares the next panel among the tile rows of a
layer run in one band.

## Direct kernels and Winograd products

| kernel | for | tile (TH×TW px × V·4 channels) | remainders (rows, cols) | channels per input load | input channels a call | prefetch | FMAs per load | N1 | V1 |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
`)
	for _, m := range ModelNEON(nets...) {
		role := "layer"
		switch {
		case m.Product != "":
			role = "products of " + m.Product
		case m.Variant != "":
			role = "variant " + m.Variant
		}
		icb := "all"
		if m.ICBlock > 0 {
			icb = fmt.Sprint(m.ICBlock)
		}
		pf := m.Prefetch
		if pf == "" {
			pf = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %d×%d × %d | %d, %d | %d | %s | %s | %.1f | %.2f | %.2f |\n",
			m.Name, role, m.TH, m.TW, m.V*4, m.RemTH, m.RemTW, m.GroupOfChannels, icb, pf, m.FMAsPerLoad, m.N1, m.V1)
	}
	b.WriteString(`
## Winograd layers

Every 3x3 stride-1 layer whose channels come in whole vectors has a Winograd kernel: F(4×4,3×3)
(36 multiplications per tile and channel pair for the direct 144), or F(2×2,3×3) (16 for 36) where
F(4,3)'s transformed weights U would pass 16 MiB, and both from 4 MiB with F(2,3) first. New runs the
first listed for a layer ("default") unless a tuning cache or WithConv says otherwise. Per chunk of
tiles, the input transform writes α² planes, the products are α² GEMMs (1x1 kernels over the chunk's
tiles, listed above), and the output transform fuses bias, residual and ReLU. "mults" is the products'
multiplications against the direct convolution's; "products N1/V1" the GEMMs' modelled fraction of
peak, weighted by their tiles. The transforms (FADD, FSUB and FMLA/FMLS by element on one vector of 4
channels at a time) are not modelled.

| kernel | layer | F | default | tiles | chunk × chunks | input channels a product call | U | GEMM (tail) | U prefetched | mults | products N1 | products V1 |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
`)
	for _, w := range ModelNEONWinograd(nets...) {
		gemm := w.GEMM
		if w.Tail != "" {
			gemm += " (" + w.Tail + ")"
		}
		yes := func(v bool) string {
			if v {
				return "yes"
			}
			return "—"
		}
		fmt.Fprintf(&b, "| %s | %s | F(%d,3) | %s | %d | %d × %d | %d | %.2f MiB | %s | %s | %.2f | %.2f | %.2f |\n",
			w.Name, w.Layer, w.M, yes(w.Default), w.Tiles, w.Chunk, w.Chunks, w.ICBlock, float64(w.UBytes)/(1<<20), gemm, yes(w.PrefetchesU), w.Mults, w.ProductsN1, w.ProductsV1)
	}
	return []byte(b.String())
}
