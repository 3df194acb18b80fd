package resnet

import (
	"fmt"
	"sort"
)

// ConvShape is what a specialised convolution kernel depends on: square
// kernel, stride, padding, channels and the square input and output sides.
// (asm.ConvShape has the same fields, so one converts to the other.)
type ConvShape struct {
	K, Stride, Pad int
	InC, OutC      int
	InH, OutH      int
}

// ConvShape returns a conv layer's shape.
func (l *Layer) ConvShape() ConvShape {
	return ConvShape{l.Kernel, l.Stride, l.Pad, l.InShape.C, l.OutShape.C, l.InShape.H, l.OutShape.H}
}

// FamilyConvShapes returns the distinct convolution shapes of every
// catalogued network (both bottleneck variants, the plain nets and the
// CIFAR nets), largest maps first, in a fixed order.
func FamilyConvShapes() []ConvShape {
	seen := map[ConvShape]bool{}
	for _, l := range DistinctLayers(OpConv) {
		if l.InShape.H != l.InShape.W {
			panic(fmt.Sprintf("%s: non-square input %v", l.Name, l.InShape))
		}
		seen[l.ConvShape()] = true
	}
	out := make([]ConvShape, 0, len(seen))
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

// DistinctLayers returns, for the given ops, one layer of each distinct
// shape (op, kernel, stride, padding, input and output shape) among every
// catalogued network, in catalogue order. Kernel generators and tests use
// it to cover the family once per shape.
func DistinctLayers(ops ...Op) []Layer {
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
	for _, name := range Names() {
		for _, l := range MustBuild(name).Layers {
			k := key{l.Op, l.Kernel, l.Stride, l.Pad, l.InShape, l.OutShape}
			if want[l.Op] && !seen[k] {
				seen[k] = true
				out = append(out, l)
			}
		}
	}
	return out
}
