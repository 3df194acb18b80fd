// Package plan decides every kernel a network's package carries, for each
// tier, as a value: which convolution kernels (shape, blocking, variant,
// split reduction, prefetching, remainder tiles), which Winograd kernels
// (tile size, chunking, product GEMMs) and which pooling and classifier
// kernels. The backends in gen/kernels only render a Plan (Avo for the
// amd64 tiers, our own emitter for NEON) and one writer turns plans into the
// package's kernel tables. Decisions depend on the network and the tier
// only, never on the machine running the generator: the generator is
// deterministic. Which of a shape's planned variants runs is decided at
// New, on the machine (engine's selector).
//
// As XNNPACK keeps its micro-kernel variants as data and oneDNN's brgemm
// keeps its blocking in one struct its JIT reads, the rules live here and
// nowhere else.
package plan

import (
	"fmt"

	"github.com/resnetgen/resnetgen/asm"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/shape"
)

// Shape is a convolution as its kernel sees it.
type Shape = shape.Conv

// SplitVariant ends the name of a variant whose reduction is split into
// input-channel slices (splitK): "splitk" is the rule's blocking split,
// "p8splitk" the p8 one.
const SplitVariant = "splitk"

// Plan is every kernel of one network on one tier, in the order the
// backends emit them.
type Plan struct {
	Tier Tier
	// Transforms are the Winograd algorithms whose input and output
	// transforms the package needs (F(4,3) before F(2,3)).
	Transforms []WinogradF
	Winograd   []Winograd
	// Conv are the direct kernels: every layer shape in the rule's blocking
	// and its variants, then the Winograd products' GEMM shapes.
	Conv  []Conv
	Pools []Pool
	// Int8 plans only: QMaxPool are the max pools on uint8 activations (C
	// channels each), QInput names the kernel that quantizes the float32
	// CHW input into the stem's uint8 NHWC with 4 channels ("" if none).
	QMaxPool []Pool
	QInput   string
}

// Conv is one convolution kernel to emit (with its remainder kernels where
// the blocking leaves remainders).
type Conv struct {
	Name    string // conv3x3s1_c64k64_h56_avx512_p8
	Variant string // "" for the rule's blocking
	Shape   Shape
	Blocking
}

// Remainders lists the kernels a Conv brings besides its main one, by
// suffix: "_rem" (the last tile row), "_remcol" (the last tile of each
// row), "_remcorner" (both).
func (c Conv) Remainders() (rem, remCol, remCorner bool) {
	return c.RemTH > 0, c.RemTW > 0, c.RemTH > 0 && c.RemTW > 0
}

// Winograd is one Winograd kernel of a 3x3 stride-1 layer: its transforms
// and its products, Chunk tiles at a time, ICBlock input channels a call.
type Winograd struct {
	Name       string // wino4_c64k64_h56_avx512
	Shape      Shape
	F          WinogradF
	Chunk      int
	ICBlock    int
	GEMM, Tail Shape // the products' 1x1 shapes; Tail zero if the chunks divide the tiles
}

// InName and OutName name the input and output transforms of F on tier t.
func InName(f WinogradF, t Tier) string  { return fmt.Sprintf("wino%din_%s", f.M, t.Name) }
func OutName(f WinogradF, t Tier) string { return fmt.Sprintf("wino%dout_%s", f.M, t.Name) }

// Pool is a max pool, global average pool or classifier kernel: the pools
// are specialised on their channels only (the map size is an argument),
// the classifier on its inputs and outputs.
type Pool struct {
	Name  string
	Op    resnet.Op
	C     int // channels (fc: inputs)
	Out   int // fc outputs
	Block int // fc outputs a block of the classifier covers (FCBlock)
}

// ForInt8 plans net's int8 kernels on the int8 tier t: every convolution
// in the tier's rule's blocking, named qconv…_<tier> — a 3-channel stem as
// a 4-channel one (asm.Int8Shape: its input quantized with zero point 128, the
// fourth channel's weights zero) —, the max pools on bytes and the input's
// quantization. Plan.Tier is t; Transforms, Winograd and Pools are empty
// (Winograd is not exact in integers; the average pool and the classifier
// run on float32 kernels).
func ForInt8(net *resnet.Network, t Tier) Plan {
	if !t.Int8 {
		panic("plan.ForInt8 on " + t.Name)
	}
	p := Plan{Tier: t, QInput: "qinput_" + t.Name}
	for _, s := range net.ConvShapes() {
		s = asm.Int8Shape(s)
		b := chooseBlocking(s, t)
		p.Conv = append(p.Conv, Conv{Name: shape.Kernel("q"+s.Name(), t.Name, ""), Shape: s, Blocking: b})
	}
	for _, l := range net.Distinct(resnet.OpMaxPool) {
		p.QMaxPool = append(p.QMaxPool, Pool{Name: fmt.Sprintf("qmaxpool3x3s2_c%d_%s", l.InShape.C, t.Name), Op: resnet.OpMaxPool, C: l.InShape.C})
	}
	return p
}

// FCBlock is the number of outputs one block of the classifier covers.
func FCBlock(t Tier) int { return 4 * t.Lanes }

// For plans net's kernels on tier t.
func For(net *resnet.Network, t Tier) Plan {
	p := Plan{Tier: t}
	layers := net.ConvShapes()
	shapes := append([]Shape(nil), layers...)
	usedF := map[int]bool{}
	forcedV := map[Shape]int{}   // a tail GEMM takes its main GEMM's V
	prefetch := map[Shape]bool{} // GEMMs of layers whose weights come from memory (prefetchesWeights)
	for _, s := range layers {
		if !winogradFits(s, t) {
			continue
		}
		for _, f := range winoFor(s) {
			usedF[f.M] = true
			chunk, g, tail := winogradGEMMs(s, f)
			p.Winograd = append(p.Winograd, Winograd{Name: shape.Kernel(s.WinogradName(f.M), t.Name, ""), Shape: s, F: f,
				Chunk: chunk, ICBlock: icBlock(s, f), GEMM: g, Tail: tail})
			for _, gs := range []Shape{g, tail} {
				if gs == (Shape{}) {
					continue
				}
				if !contains(shapes, gs) {
					shapes = append(shapes, gs)
				}
				if prefetchesWeights(s, f) {
					prefetch[gs] = true
				}
			}
			if tail != (Shape{}) {
				forcedV[tail] = chooseGEMMBlocking(g, t, 0).V
			}
		}
	}
	for _, f := range []WinogradF{F4, F2} {
		if usedF[f.M] {
			p.Transforms = append(p.Transforms, f)
		}
	}
	add := func(s Shape, variant string, b Blocking) {
		p.Conv = append(p.Conv, Conv{Name: shape.Kernel(s.Name(), t.Name, variant), Variant: variant, Shape: s, Blocking: b})
	}
	for i, s := range shapes {
		layer := i < len(layers)
		// A layer's blocking (V forced where a tail GEMM has a layer's
		// shape), or a Winograd GEMM's.
		choose := chooseBlockingV
		if !layer {
			choose = chooseGEMMBlocking
		}
		b := choose(s, t, forcedV[s])
		// A second candidate where the tier has one and it differs (never
		// for the Winograd GEMMs).
		var alt Blocking
		hasAlt := t.Alternative != nil && layer
		if hasAlt {
			alt = t.Alternative(s)
			hasAlt = alt != b
		}
		b.PrefetchNext = prefetch[s] || directStreamsWeights(s) && s.K == 1
		if layer && spreadsPrefetch(s) {
			b.PrefetchNext, b.SpreadPrefetch = true, true
		}
		alt.PrefetchNext, alt.SpreadPrefetch = b.PrefetchNext, b.SpreadPrefetch
		add(s, "", b)
		if hasAlt {
			add(s, t.AlternativeName, alt)
		}
		// The layers whose weights stream also get each blocking with its
		// reduction split (splitK), as variants "splitk" and "p8splitk".
		if !layer || !directStreamsWeights(s) {
			continue
		}
		sb, ok := splitK(s, t, b)
		if ok {
			add(s, SplitVariant, sb)
		}
		if hasAlt {
			if t.SplitAlternative != nil {
				alt = t.SplitAlternative(s)
			}
			// Not where it equals the rule's split: New then takes that.
			if sa, ok := splitK(s, t, alt); ok && sa != sb {
				add(s, t.AlternativeName+SplitVariant, sa)
			}
		}
	}
	p.Pools = pools(net, t)
	return p
}

// pools lists the distinct max-pool, average-pool and classifier kernels
// of net, in layer order.
func pools(net *resnet.Network, t Tier) []Pool {
	var out []Pool
	seen := map[[3]int]bool{}
	for _, l := range net.Distinct(resnet.OpMaxPool, resnet.OpGlobalAvgPool, resnet.OpFC) {
		p := Pool{Op: l.Op, C: l.InShape.C}
		switch l.Op {
		case resnet.OpMaxPool:
			p.Name = fmt.Sprintf("maxpool3x3s2_c%d_%s", p.C, t.Name)
		case resnet.OpGlobalAvgPool:
			p.Name = fmt.Sprintf("avgpool_c%d_%s", p.C, t.Name)
		case resnet.OpFC:
			p.Out, p.Block = l.OutShape.C, FCBlock(t)
			p.Name = fmt.Sprintf("fc_c%dk%d_%s", p.C, p.Out, t.Name)
		}
		key := [3]int{int(p.Op), p.C, p.Out}
		if !seen[key] {
			seen[key] = true
			out = append(out, p)
		}
	}
	return out
}

func contains(list []Shape, s Shape) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
