package resnet

import (
	"sort"

	"github.com/resnetgen/resnetgen/shape"
)

// ConvShape returns a conv layer's shape.
func (l *Layer) ConvShape() shape.Conv {
	return shape.Conv{K: l.Kernel, Stride: l.Stride, Pad: l.Pad, InC: l.InShape.C, OutC: l.OutShape.C, InH: l.InShape.H, InW: l.InShape.W, OutH: l.OutShape.H, OutW: l.OutShape.W}
}

// ConvShapes returns the distinct convolution shapes of the network, largest
// maps first, in a fixed order: one specialised kernel each.
func (n *Network) ConvShapes() []shape.Conv {
	seen := map[shape.Conv]bool{}
	for i := range n.Layers {
		if n.Layers[i].Op == OpConv {
			seen[n.Layers[i].ConvShape()] = true
		}
	}
	return sortShapes(seen)
}

// FamilyConvShapes returns the distinct convolution shapes of every
// catalogued network (both bottleneck variants, the plain nets and the
// CIFAR nets) at their own input sizes, in the order of ConvShapes.
func FamilyConvShapes() []shape.Conv {
	seen := map[shape.Conv]bool{}
	for _, l := range DistinctLayers(OpConv) {
		seen[l.ConvShape()] = true
	}
	return sortShapes(seen)
}

func sortShapes(seen map[shape.Conv]bool) []shape.Conv {
	out := make([]shape.Conv, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		for _, d := range [][2]int{{b.InH * b.InW, a.InH * a.InW}, {b.InW, a.InW}, {a.K, b.K}, {a.Stride, b.Stride}, {a.InC, b.InC}, {a.OutC, b.OutC}} {
			if d[0] != d[1] {
				return d[0] < d[1]
			}
		}
		return false
	})
	return out
}

// Distinct returns, for the given ops, the first layer of each distinct
// shape (op, kernel, stride, padding, input and output shape) in the
// network, in layer order.
func (n *Network) Distinct(ops ...Op) []Layer { return distinct([]*Network{n}, ops) }

// DistinctLayers is Distinct over every catalogued network, in catalogue
// order. Tests use it to cover the family once per shape.
func DistinctLayers(ops ...Op) []Layer {
	var nets []*Network
	for _, name := range Names() {
		nets = append(nets, MustBuild(name))
	}
	return distinct(nets, ops)
}

func distinct(nets []*Network, ops []Op) []Layer {
	type key struct {
		op             Op
		k, stride, pad int
		in, out        Shape
	}
	want := map[Op]bool{}
	for _, op := range ops {
		want[op] = true
	}
	seen := map[key]bool{}
	var out []Layer
	for _, n := range nets {
		for _, l := range n.Layers {
			k := key{l.Op, l.Kernel, l.Stride, l.Pad, l.InShape, l.OutShape}
			if want[l.Op] && !seen[k] {
				seen[k] = true
				out = append(out, l)
			}
		}
	}
	return out
}
