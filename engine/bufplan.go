package engine

import (
	"sort"

	"github.com/resnetgen/resnetgen/resnet"
)

// values is the number of values a buffer of geometry g spans, halo
// included.
func (g Geometry) values() int { return (g[0] + 2*g[3]) * (g[1] + 2*g[3]) * g[2] }

// BufferPlan assigns every activation value of a network to a buffer slot.
// The generator writes it out as a package's buffer table (gen/graph);
// Interpret builds a network from it directly.
type BufferPlan struct {
	Slots []Geometry // slot geometry; a slot only ever holds values of its geometry
	Slot  []int      // value → slot, −1 for values the head keeps itself
	Geom  []Geometry // value → geometry (halo included)
	Body  []resnet.Layer
	Head  resnet.Layer // the global average pool; the classifier follows it
	FC    resnet.Layer
}

// consumerHalo is the halo a layer needs on the value it reads as input.
// The max pool reads a zero halo as padding; that equals PyTorch's −inf
// padding because its input follows a ReLU (see asm.MaxPoolKernel).
func consumerHalo(l resnet.Layer) int {
	switch l.Op {
	case resnet.OpConv:
		return l.Pad
	case resnet.OpMaxPool:
		return 1
	}
	return 0
}

// PlanBuffers gives each value the largest halo its readers need, then
// assigns slots in layer order: a value's slot is freed after its last
// reader, and a new value reuses a free slot of exactly its geometry (so
// halos, zeroed once, stay zero) or gets a new one. A layer writes the slot
// of a value it reads only when that value is its residual, it is the last
// to read it, and the geometries are equal: then the output takes the
// residual's slot. Every kernel reads a residual element only to compute
// the output element at the same place, before storing it, so this is
// safe; and it saves memory traffic: the residual's lines are in cache
// when the output is stored, where a separate output buffer's lines would
// first be read from memory (ResNet-50's 1x1 expansions with cold
// activations on Zen 4, each alone: 10–12 % faster in place).
func PlanBuffers(net *resnet.Network) BufferPlan {
	n := len(net.Layers)
	p := BufferPlan{
		Body: net.Layers[:n-2],
		Head: net.Layers[n-2],
		FC:   net.Layers[n-1],
	}
	if p.Head.Op != resnet.OpGlobalAvgPool || p.FC.Op != resnet.OpFC {
		panic("network does not end in average pool + classifier")
	}
	halo := make([]int, len(net.Values))
	last := make([]int, len(net.Values)) // index of the last layer reading each value
	for i, l := range net.Layers {
		halo[l.In] = max(halo[l.In], consumerHalo(l))
		last[l.In] = i
		if l.Residual != resnet.NoValue {
			last[l.Residual] = max(last[l.Residual], i)
		}
	}
	p.Geom = make([]Geometry, len(net.Values))
	for v, s := range net.Values {
		p.Geom[v] = Geometry{s.H, s.W, s.C, halo[v]}
	}
	p.Slot = make([]int, len(net.Values))
	for v := range p.Slot {
		p.Slot[v] = -1
	}
	var free []int
	take := func(v int) {
		for i, s := range free {
			if p.Slots[s] == p.Geom[v] {
				p.Slot[v] = s
				free = append(free[:i], free[i+1:]...)
				return
			}
		}
		p.Slots = append(p.Slots, p.Geom[v])
		p.Slot[v] = len(p.Slots) - 1
	}
	take(0)
	live := map[int]bool{0: true}
	for i, l := range p.Body {
		if r := l.Residual; r != resnet.NoValue && last[r] == i && r != l.In && p.Geom[r] == p.Geom[l.Out] {
			// In place: the output overwrites the residual it is the last
			// to read.
			p.Slot[l.Out] = p.Slot[r]
			delete(live, r)
		} else {
			take(l.Out)
		}
		live[l.Out] = true
		// Values whose last reader is this layer are free from the next one.
		for v := range live {
			if last[v] <= i && v != l.Out {
				delete(live, v)
				free = append(free, p.Slot[v])
			}
		}
		sort.Ints(free)
	}
	return p
}

// Floats is the activation memory of the plan, in values (floats).
func (p BufferPlan) Floats() int {
	t := 0
	for _, g := range p.Slots {
		t += g.values()
	}
	return t
}
