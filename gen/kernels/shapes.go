package main

import (
	"fmt"
	"sort"

	"github.com/resnetgen/resnetgen/resnet"
)

// convShape is what a specialised convolution kernel is specialised on.
type convShape struct {
	K, Stride, Pad, InC, OutC, InH, OutH int
}

func (s convShape) MACs() int64 {
	return int64(s.OutH*s.OutH*s.OutC) * int64(s.InC*s.K*s.K)
}

// shapes collects the distinct convolution shapes of every catalogued
// network (both bottleneck variants, the plain nets, the CIFAR nets), in a
// fixed order so the generator's output is deterministic.
func shapes() []convShape {
	seen := map[convShape]bool{}
	for _, name := range resnet.Names() {
		a, err := resnet.Lookup(name)
		if err != nil {
			panic(err)
		}
		net, err := resnet.Build(a)
		if err != nil {
			panic(err)
		}
		for _, l := range net.Layers {
			if l.Op != resnet.OpConv {
				continue
			}
			if l.InShape.H != l.InShape.W {
				panic(fmt.Sprintf("%s %s: non-square input %v", name, l.Name, l.InShape))
			}
			seen[convShape{l.Kernel, l.Stride, l.Pad, l.InShape.C, l.OutShape.C, l.InShape.H, l.OutShape.H}] = true
		}
	}
	out := make([]convShape, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		for _, d := range [][2]int{{b.InH, a.InH}, {a.K, b.K}, {a.Stride, b.Stride}, {a.InC, b.InC}, {a.OutC, b.OutC}} {
			if d[0] != d[1] {
				return d[0] < d[1]
			}
		}
		return false
	})
	return out
}
