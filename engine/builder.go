package engine

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/shape"
)

// Builder makes a network's layers from its folded weights and a generated
// package's kernels, packing the weights for the tier and checking every
// layer once. The first error is kept and later calls do nothing, so a
// generated New is one call per layer and a final Err.
type Builder struct {
	ks     *asm.KernelSet
	f      *Folded
	tier   asm.Tier
	cfg    Config
	batch  *Batch
	err    error
	layers []Named
	digest string // of f, once a Shared needs it
	packed int    // bytes packed since the last collect
	// machine is the CPU the rule chooses kernels for.
	machine Machine
	// q is the state of an int8 build (nil for float32).
	q *q8
	// scratch is each worker's working memory, shared by all the
	// Winograd layers.
	scratch []*asm.WinogradScratch
}

// Named is a built layer with its name and kind, in network order.
type Named struct {
	Name, Kind string
	Layer      Layer
	MACs       int64  // multiply-adds per image (convolutions and classifier)
	Kernel     string // the kernel it runs
	// ChosenBy says what chose a convolution's kernel among the package's
	// (Selection.By: "flag", "tuned" or "rule"); "" for other layers.
	ChosenBy string
}

// NewBuilder starts building with the kernels ks (a generated package's
// table) for the tier of cfg. Every layer runs on batch.N images.
func NewBuilder(ks *asm.KernelSet, f *Folded, cfg Config, batch *Batch) *Builder {
	b := &Builder{ks: ks, f: f, tier: cfg.Tier, cfg: cfg, batch: batch, machine: ThisMachine()}
	b.tier, _ = tiersFor(cfg.Tier)
	if cfg.Precision == Int8 {
		b.startInt8()
	} else if f.quantized() {
		b.fail(fmt.Errorf("the weights are int8 (a package generated with -precision int8 -embed): the Model runs in int8 only, not %v", cfg.Precision))
	}
	return b
}

// Geometry is an activation buffer's H, W, C and halo.
type Geometry [4]int

// NewBuffers allocates, for each geometry (a slot of the network's buffer
// plan), one zeroed buffer per image: slots[s][i].
func NewBuffers(images int, geoms []Geometry) [][]asm.Buffer {
	slots := make([][]asm.Buffer, len(geoms))
	for s, g := range geoms {
		slots[s] = make([]asm.Buffer, images)
		for i := range slots[s] {
			slots[s][i] = asm.NewBuffer(g[0], g[1], g[2], g[3])
		}
	}
	return slots
}

// Err is the first error any call met, nil if none.
func (b *Builder) Err() error { return b.err }

// Layers lists the layers built so far, in order.
func (b *Builder) Layers() []Named { return b.layers }

func (b *Builder) fail(err error) bool {
	if b.err == nil && err != nil {
		b.err = err
	}
	return b.err != nil
}

func (b *Builder) add(name, kind, kernel, by string, macs int64, l Layer) {
	if b.fail(l.Check()) {
		return
	}
	b.layers = append(b.layers, Named{Name: name, Kind: kind, Layer: l, MACs: macs, Kernel: kernel, ChosenBy: by})
}

// tensor returns the folded tensor name with the given number of values
// (a convolution's weight only until the next call: see Folded.tensor).
func (b *Builder) tensor(name string, n int) ([]float32, []int, error) {
	t := b.f.tensor(name)
	if t == nil {
		return nil, nil, fmt.Errorf("folded weights have no tensor %s", name)
	}
	if n >= 0 && len(t.Data) != n {
		return nil, nil, fmt.Errorf("folded tensor %s has %d values, want %d", name, len(t.Data), n)
	}
	return t.Data, t.Shape, nil
}

// Input sets dst to load images into bufs (one per image).
func (b *Builder) Input(dst *Input, bufs []asm.Buffer) {
	if b.err != nil {
		return
	}
	*dst = Input{Dst: bufs, Batch: b.batch}
	kernel := ""
	if b.q != nil {
		b.int8Input(dst, bufs)
		if dst.Q != nil {
			kernel = dst.Q.K.Name
		}
	} else {
		b.wrote("input", bufs)
	}
	b.add("input", "input", kernel, "", 0, dst)
}

// Conv sets dst to the convolution layer name (its folded weight, OIHW with
// a square kernel K, and bias), with the given stride and padding K/2, from
// the images' in to their out buffers, adding res if it is not nil, then
// ReLU if relu.
func (b *Builder) Conv(dst *Conv, name string, stride int, ins, outs, res []asm.Buffer, relu bool) {
	if b.err != nil {
		return
	}
	in, out := ins[0], outs[0]
	dims, err := b.shape(name + ".weight")
	if b.fail(err) {
		return
	}
	if len(dims) != 4 || dims[0] != out.C || dims[1] != in.C || dims[2] != dims[3] {
		b.fail(fmt.Errorf("%s: weight %v does not fit %d→%d channels", name, dims, in.C, out.C))
		return
	}
	k := dims[2]
	bias, _, err := b.tensor(name+".bias", out.C)
	if b.fail(err) {
		return
	}
	s := shape.Conv{K: k, Stride: stride, Pad: k / 2, InC: in.C, OutC: out.C, InH: in.H, InW: in.W, OutH: out.H, OutW: out.W}
	if b.q != nil {
		b.int8Conv(dst, name, s, bias, ins, outs, res, relu)
		return
	}
	defer b.wrote(name, outs)
	sel := b.choose(s, b.ks.WinogradMs(s, b.tier))
	if sel.Winograd {
		wk, err := b.ks.WinogradM(s, b.tier, sel.M)
		if b.fail(err) {
			return
		}
		// Only the transformed weights: a Winograd layer never runs the
		// direct kernel, whose packed copy would double the layer's memory
		// (ResNet-18 held 40 MB of such dead weights before).
		wp, err := b.pack1(name, wk.Name, func(w []float32) ([]float32, error) { return wk.PackWeights(w) })
		if b.fail(err) {
			return
		}
		*dst = Conv{Name: name, In: ins, Out: outs, Res: res, Bias: bias, ReLU: relu, Batch: b.batch, W: wk, WPacked: wp}
		// One scratch per worker for all the Winograd layers
		// (asm.WinogradKernel.FitScratch).
		for len(b.scratch) < b.cfg.Workers {
			b.scratch = append(b.scratch, &asm.WinogradScratch{})
		}
		for _, sc := range b.scratch {
			wk.FitScratch(sc, b.cfg.Batch)
		}
		dst.Scratch = b.scratch
		b.add(name, "winograd", wk.Name, sel.By, s.MACs(), dst)
		return
	}
	kern, err := b.ks.ConvVariant(s, b.tier, sel.Variant)
	if sel.Variant != "" && err != nil {
		kern, err = b.ks.ConvKernel(s, b.tier) // the cache named a variant this package lacks
	}
	if b.fail(err) {
		return
	}
	packed, err := b.pack1(name, kern.Name, func(w []float32) ([]float32, error) { return kern.PackWeights(w) })
	if b.fail(err) {
		return
	}
	act := 4 * (in.Len() + out.Len())
	*dst = Conv{Name: name, K: kern, In: ins, Out: outs, Res: res, Packed: packed, Bias: bias, ReLU: relu,
		Batch: b.batch, WeightsFirst: 4*len(packed) > act}
	b.add(name, "conv", kern.Name, sel.By, s.MACs(), dst)
}

// Selection is how New runs one convolution and what decided it.
type Selection struct {
	Winograd bool
	M        int    // Winograd's tile size
	Variant  string // the direct kernel's variant ("" the plan's rule)
	// By is what decided: "flag" (WithConv), "tuned" (this CPU's entry in
	// the tuning cache) or "rule" (the CPU rule, Machine.Rule).
	By string
}

// choose is the one selector of a convolution's kernel, among the Winograd
// tile sizes ms and the direct variants the package has for s: a flag
// (WithConv(Direct), WithConv(Winograd)) over this CPU's tuning cache over
// the CPU rule. Nothing here depends on the worker count, so 1 and N
// workers compute the same logits.
func (b *Builder) choose(s shape.Conv, ms []int) Selection {
	w, m, variant := b.machine.Rule(b.tier, s, ms, b.ks.ConvVariants(s, b.tier))
	sel := Selection{Winograd: w, M: m, Variant: variant, By: "rule"}
	if best, ok := tuned(b.tier, s); ok {
		sel.By = "tuned"
		if v, isDirect := strings.CutPrefix(best, "direct"); isDirect {
			sel.Winograd, sel.M, sel.Variant = false, 0, strings.TrimPrefix(v, "/")
		} else if strings.HasPrefix(best, "winograd") && len(ms) > 0 {
			sel.Winograd = true
			if n, err := strconv.Atoi(strings.TrimPrefix(best, "winograd/")); err == nil && slices.Contains(ms, n) {
				sel.M = n
			}
		}
	}
	switch b.cfg.Conv {
	case Direct:
		sel.Winograd, sel.M, sel.By = false, 0, "flag"
	case Winograd:
		sel.Winograd, sel.By = len(ms) > 0, "flag"
	}
	if sel.Winograd && sel.M == 0 {
		sel.M = ms[0]
	}
	return sel
}

// MaxPool sets dst to the 3x3/2 max pool from the images' in to their out
// buffers.
func (b *Builder) MaxPool(dst *MaxPool, name string, in, out []asm.Buffer) {
	if b.err != nil {
		return
	}
	if b.q != nil && b.int8MaxPool(dst, name, in, out) {
		return
	}
	k, err := b.ks.MaxPoolKernel(in[0].C, b.tier)
	if b.fail(err) {
		return
	}
	*dst = MaxPool{K: k, In: in, Out: out, Batch: b.batch}
	b.wrote(name, out)
	b.add(name, "maxpool", k.Name, "", 0, dst)
}

// Shortcut sets dst to the option-A shortcut from the images' in to their
// out buffers.
func (b *Builder) Shortcut(dst *Shortcut, name string, stride int, in, out []asm.Buffer) {
	if b.err != nil {
		return
	}
	if len(in) != len(out) {
		b.fail(fmt.Errorf("%s: %d input and %d output buffers", name, len(in), len(out)))
		return
	}
	if b.q != nil && b.int8Shortcut(dst, name, stride, in, out) {
		return
	}
	b.wrote(name, out)
	*dst = Shortcut{Batch: b.batch}
	for i := range in {
		dst.S = append(dst.S, asm.SubsamplePad{In: in[i], Out: out[i], Stride: stride})
	}
	b.add(name, "shortcut", "subsample-pad", "", 0, dst)
}

// pack returns what pack makes of layer's weights for kernel: from the
// Shared of the Config when there is one (packing them there the first
// time), else freshly packed.
func (b *Builder) pack(layer, kernel string, pack func() ([][]float32, error)) ([][]float32, error) {
	pack0 := pack
	pack = func() ([][]float32, error) { // counting what it packs, for collect
		p, err := pack0()
		for _, s := range p {
			b.packed += 4 * len(s)
		}
		return p, err
	}
	sh := b.cfg.Shared
	if sh == nil {
		return pack()
	}
	if b.digest == "" {
		b.digest = b.f.digest()
	}
	return sh.get(b.digest+"\x00"+layer+"\x00"+kernel, pack)
}

// collect runs a garbage collection once the Builder has packed, since
// the last one, an eighth of the live heap (16 MB at least). Packing makes
// garbage as fast as it makes packed weights: the checkpoint's tensors
// once packed (when the caller no longer holds them) and the Winograd
// transform's planes. The collector lets the heap grow to twice what was
// live at its last cycle, so a load would peak near twice its live memory;
// collecting as it goes keeps the peak near what is live. A load's heap is
// float arrays, with no pointers to mark, so these collections are short;
// the eighth keeps their number small in a process with a large heap.
func (b *Builder) collect() {
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	step := uint64(16 << 20)
	if live[0].Value.Kind() == metrics.KindUint64 {
		step = max(step, live[0].Value.Uint64()/8)
	}
	if uint64(b.packed) >= step {
		b.packed = 0
		runtime.GC()
	}
}

// pack1 packs the folded weight of the convolution layer, which it folds
// only if b.pack needs it packed, then lets go of the layer's tensors.
func (b *Builder) pack1(layer, kernel string, pack func(w []float32) ([]float32, error)) ([]float32, error) {
	p, err := b.pack(layer, kernel, func() ([][]float32, error) {
		w, _, err := b.tensor(layer+".weight", -1)
		if err != nil {
			return nil, err
		}
		p, err := pack(w)
		return [][]float32{p}, err
	})
	if err != nil {
		return nil, err
	}
	b.release(layer)
	return p[0], nil
}

// release lets go of a packed layer's tensors in f (unless the Config keeps
// them: Interpret's network for a calibration, after which the same f
// builds the int8 network) and collects as it goes (collect).
func (b *Builder) release(layer string) {
	if !b.cfg.keepWeights {
		b.f.release(layer)
	}
	b.collect()
}

// shape returns the shape of the folded tensor name.
func (b *Builder) shape(name string) ([]int, error) {
	s := b.f.shape(name)
	if s == nil {
		return nil, fmt.Errorf("folded weights have no tensor %s", name)
	}
	return s, nil
}

// Head sets pool and fc to the global average pool of the images' in
// buffers and the classifier name (name.weight, [classes][C], and
// name.bias).
func (b *Builder) Head(pool *AvgPool, fc *FC, name string, ins []asm.Buffer, classes int) {
	if b.err != nil {
		return
	}
	in := ins[0]
	ak, err := b.ks.AvgPoolKernel(in.C, b.tier)
	if b.fail(err) {
		return
	}
	fk, err := b.ks.FCKernel(in.C, classes, b.tier)
	if b.fail(err) {
		return
	}
	w, _, err := b.tensor(name+".weight", classes*in.C)
	if b.fail(err) {
		return
	}
	bias, _, err := b.tensor(name+".bias", classes)
	if b.fail(err) {
		return
	}
	p, err := b.pack(name, fk.Name, func() ([][]float32, error) {
		pw, pb, err := fk.Pack(w, bias)
		return [][]float32{pw, pb}, err
	})
	if b.fail(err) {
		return
	}
	b.release(name)
	pw, pb := p[0], p[1]
	pooled, logits := make([][]float32, len(ins)), make([][]float32, len(ins))
	for i := range ins {
		pooled[i], logits[i] = make([]float32, in.C), make([]float32, fk.Padded())
	}
	*pool = AvgPool{K: ak, In: ins, Out: pooled, Batch: b.batch}
	if b.q != nil {
		if h := b.q.held[slotKey(ins)]; h.quantized {
			pool.QIn, pool.QScale = b.twinOf(ins), h.scale
		}
	}
	b.add("avgpool", "avgpool", ak.Name, "", 0, pool)
	*fc = FC{K: fk, In: pooled, W: pw, B: pb, Out: logits, Classes: classes, Batch: b.batch}
	b.add(name, "fc", fk.Name, "", int64(in.C*classes), fc)
}
