package bench

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/asm/peak"
)

// KernelResult is one kernel's single-thread speed; the JSON keys are a contract.
type KernelResult struct {
	Name       string  `json:"name"`
	Tier       string  `json:"tier"`
	Op         string  `json:"op"`
	Kernel     int     `json:"kernel"`
	Stride     int     `json:"stride"`
	InH        int     `json:"in_h"`
	InW        int     `json:"in_w"`
	InC        int     `json:"in_c"`
	OutC       int     `json:"out_c"`
	MACs       int64   `json:"macs"`
	GFLOPs     float64 `json:"gflops"`
	PeakGFLOPs float64 `json:"peak_gflops"`
	Efficiency float64 `json:"efficiency"`
}

// Options set how long each measurement runs.
type Options struct {
	Rounds   int           // interleaved peak/kernel rounds; medians are reported
	MinTime  time.Duration // per kernel measurement
	PeakTime time.Duration // per peak measurement
	Progress io.Writer     // one line per kernel, or nil
	// WeightBytes: each run reads its weights from the next of enough
	// copies to fill this many bytes (at most 4096 copies), so that they
	// are as cold as in a network whose weights total this much: at batch
	// 1 a layer's weights were last read a whole Forward ago (ResNet-50's
	// 100 MB come from memory, a CIFAR net's 1 MB from L2). 0: every run
	// rereads one copy, warm in L2 or L3.
	WeightBytes int
	// TieMargin (Tune): a candidate replaces New's default rule only when
	// its median runs more than this fraction faster (0: the fastest wins;
	// `resnet tune` passes DefaultTieMargin unless told otherwise).
	TieMargin float64
}

// weightCopies returns packed and enough copies of it to fill bytes (at
// most 4096 in all).
func weightCopies(packed []float32, bytes int) [][]float32 {
	copies := [][]float32{packed}
	n := min(4096, (bytes+4*len(packed)-1)/(4*len(packed)))
	for len(copies) < n {
		copies = append(copies, slices.Clone(packed))
	}
	return copies
}

// rotation returns a function that runs f on the next of ws each call.
func rotation(ws [][]float32, f func(w []float32)) func() {
	next := 0
	return func() {
		f(ws[next])
		next = (next + 1) % len(ws)
	}
}

func (o *Options) defaults() {
	if o.Rounds < 1 {
		o.Rounds = 5
	}
	if o.MinTime <= 0 {
		o.MinTime = 40 * time.Millisecond
	}
	if o.PeakTime <= 0 {
		o.PeakTime = 15 * time.Millisecond
	}
}

// ConvSetup holds random data for one run of a convolution kernel.
type ConvSetup struct {
	K            *asm.ConvKernel
	In, Out, Res asm.Buffer
	Packed, Bias []float32
}

// NewConvSetup prepares buffers for k: an input with the halo the layer
// needs, a residual and a haloed output, packed random weights.
func NewConvSetup(k *asm.ConvKernel) *ConvSetup {
	s := k.Shape
	rng := rand.New(rand.NewPCG(1, 2))
	c := &ConvSetup{K: k,
		In:  asm.NewBuffer(s.InH, s.InW, s.InC, s.Pad),
		Out: asm.NewBuffer(s.OutH, s.OutW, s.OutC, 1),
		Res: asm.NewBuffer(s.OutH, s.OutW, s.OutC, 1),
	}
	for _, d := range [][]float32{c.In.Data, c.Res.Data} {
		for i := range d {
			d[i] = float32(rng.NormFloat64())
		}
	}
	w := make([]float32, s.OutC*s.InC*s.K*s.K)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.05)
	}
	var err error
	if c.Packed, err = k.PackWeights(w); err != nil {
		panic(err)
	}
	c.Bias = make([]float32, s.OutC)
	return c
}

// Winograd measures a Winograd F(4,3) kernel on one thread. Its GFLOP/s
// are "effective": the direct convolution's multiply-adds (2·MACs) divided
// by the time, so they compare with the direct kernel's and can exceed
// the FMA peak.
func Winograd(k *asm.WinogradKernel, o Options) KernelResult {
	c := NewConvSetup(&asm.ConvKernel{Name: k.Name, Shape: k.Shape, TH: 1, TW: 1, V: 1, Lanes: 1})
	packed, err := k.PackWeights(c.Packed)
	if err != nil {
		panic(err)
	}
	sc := k.NewScratch(1)
	s := k.Shape
	r := KernelResult{Name: k.Name, Op: "winograd", Kernel: 3, Stride: 1, InH: s.InH, InW: s.InW, InC: s.InC, OutC: s.OutC}
	return measure(r, k.Tier, s.MACs(), rotation(weightCopies(packed, o.WeightBytes), func(w []float32) {
		k.RunPart(c.In, c.Out, &c.Res, w, c.Bias, true, sc, 0, 1)
	}), o)
}

// timeRuns runs f until at least d has passed and returns seconds per run.
func timeRuns(f func(), d time.Duration) float64 {
	f() // warm caches and pages
	n := 0
	start := time.Now()
	for {
		f()
		n++
		if el := time.Since(start); el >= d {
			return el.Seconds() / float64(n)
		}
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Conv measures one convolution kernel on one thread against its tier's
// peak, in interleaved rounds (the machines are noisy: interleaving puts
// both under the same conditions).
func Conv(k *asm.ConvKernel, o Options) KernelResult {
	c := NewConvSetup(k)
	s := k.Shape
	r := KernelResult{Name: k.Name, Op: "conv", Kernel: s.K, Stride: s.Stride, InH: s.InH, InW: s.InW, InC: s.InC, OutC: s.OutC}
	return measure(r, k.Tier, s.MACs(), rotation(weightCopies(c.Packed, o.WeightBytes), func(w []float32) {
		if err := c.K.Run(c.In, c.Out, &c.Res, w, c.Bias, true); err != nil {
			panic(err)
		}
	}), o)
}

// QConv measures one int8 convolution kernel on one thread: its "GFLOP/s"
// are int8 operations (2·MACs ÷ time: GOP/s), against the VNNI probe
// (VPDPBUSD) for every int8 tier, so an AVX2 or portable kernel reads as a
// fraction of what VNNI could do on this machine (where it has VNNI;
// elsewhere against the tier's float32 probe). Random uint8 inputs, int8
// weights, a uint8 residual and ReLU.
func QConv(k *asm.QConvKernel, o Options) KernelResult {
	s := k.Shape
	rng := rand.New(rand.NewPCG(1, 2))
	in := asm.NewQBuffer(s.InH, s.InW, s.InC, s.Pad)
	out := asm.NewQBuffer(s.OutH, s.OutW, s.OutC, 1)
	res := asm.NewQBuffer(s.OutH, s.OutW, s.OutC, 1)
	for _, d := range [][]byte{in.Data, res.Data} {
		for i := range d {
			d[i] = byte(rng.IntN(256))
		}
	}
	w := make([]int8, s.OutC*s.InC*s.K*s.K)
	for i := range w {
		w[i] = int8(rng.IntN(255) - 127)
	}
	packed, err := k.PackWeights(w)
	if err != nil {
		panic(err)
	}
	e := asm.QEpilogue{Scale: make([]float32, s.OutC), Bias: make([]float32, s.OutC), ResScale: 0.01, OutInv: 10, ReLU: true}
	for i := range e.Scale {
		e.Scale[i] = 1e-5
	}
	copies := [][]byte{packed}
	for n := min(4096, (o.WeightBytes+len(packed)-1)/len(packed)); len(copies) < n; {
		copies = append(copies, slices.Clone(packed))
	}
	next := 0
	r := KernelResult{Name: k.Name, Tier: k.Tier.String(), Op: "int8 conv", Kernel: s.K, Stride: s.Stride, InH: s.InH, InW: s.InW, InC: s.InC, OutC: s.OutC}
	probe := asm.VNNI
	if !asm.Has(asm.VNNI) {
		probe = k.Tier
	}
	return measure(r, probe, s.MACs(), func() {
		if err := k.Run(in, out, &res, copies[next], &e, false); err != nil {
			panic(err)
		}
		next = (next + 1) % len(copies)
	}, o)
}

// measure runs f in interleaved rounds against the tier's peak and fills
// in the speed fields of r; work is the multiply-adds (or equivalent
// single operations) of one run.
func measure(r KernelResult, t asm.Tier, work int64, f func(), o Options) KernelResult {
	o.defaults()
	var gf, pk []float64
	for range o.Rounds {
		pk = append(pk, peak.GFLOPs(t, o.PeakTime))
		gf = append(gf, 2*float64(work)/timeRuns(f, o.MinTime)/1e9)
	}
	if r.Tier == "" {
		r.Tier = t.String()
	}
	r.MACs = work
	r.GFLOPs, r.PeakGFLOPs = median(gf), median(pk)
	r.Efficiency = r.GFLOPs / r.PeakGFLOPs
	if o.Progress != nil {
		unit := "GFLOP/s"
		if t == asm.VNNI {
			unit = "GOP/s"
		}
		fmt.Fprintf(o.Progress, "%-36s %-7s %7.1f %-7s %.2f of peak\n", r.Name, r.Tier, r.GFLOPs, unit, r.Efficiency)
	}
	return r
}

func randomFill(xs []float32, seed uint64, nonNegative bool) {
	rng := rand.New(rand.NewPCG(seed, 3))
	for i := range xs {
		v := rng.NormFloat64()
		if nonNegative && v < 0 {
			v = -v
		}
		xs[i] = float32(v)
	}
}

// MaxPool measures a max-pool kernel on an h×w input. Its "MACs" are the 9
// comparisons per output value; it is bound by memory, not by the FMA pipes.
func MaxPool(k *asm.MaxPoolKernel, h, w int, o Options) KernelResult {
	in := asm.NewBuffer(h, w, k.C, 1)
	out := asm.NewBuffer(asm.PooledSide(h), asm.PooledSide(w), k.C, 1)
	randomFill(in.Data, 1, true)
	r := KernelResult{Name: k.Name, Op: "maxpool", Kernel: 3, Stride: 2, InH: h, InW: w, InC: k.C, OutC: k.C}
	return measure(r, k.Tier, int64(9*out.H*out.W*k.C), func() {
		if err := k.Run(in, out); err != nil {
			panic(err)
		}
	}, o)
}

// AvgPool measures a global average pool on an h×w input; its "MACs" are
// the additions.
func AvgPool(k *asm.AvgPoolKernel, h, w int, o Options) KernelResult {
	in := asm.NewBuffer(h, w, k.C, 0)
	out := make([]float32, k.C)
	randomFill(in.Data, 2, false)
	r := KernelResult{Name: k.Name, Op: "avgpool", Kernel: h, Stride: 1, InH: h, InW: w, InC: k.C, OutC: k.C}
	return measure(r, k.Tier, int64(h*w*k.C), func() {
		if err := k.Run(in, out); err != nil {
			panic(err)
		}
	}, o)
}

// FC measures the classifier (In·Out multiply-adds, weights streamed once).
func FC(k *asm.FCKernel, o Options) KernelResult {
	w, b, in := make([]float32, k.In*k.Out), make([]float32, k.Out), make([]float32, k.In)
	randomFill(w, 3, false)
	randomFill(in, 4, false)
	pw, pb, err := k.Pack(w, b)
	if err != nil {
		panic(err)
	}
	out := make([]float32, k.Padded())
	r := KernelResult{Name: k.Name, Op: "fc", Kernel: 1, Stride: 1, InH: 1, InW: 1, InC: k.In, OutC: k.Out}
	return measure(r, k.Tier, int64(k.In*k.Out), func() {
		if err := k.Run(in, pw, pb, out); err != nil {
			panic(err)
		}
	}, o)
}

// Combine merges passes over the same kernel list: each field is the median
// over the passes (the efficiency the median of the per-pass ratios).
func Combine(passes [][]KernelResult) []KernelResult {
	if len(passes) == 0 {
		return nil
	}
	out := make([]KernelResult, len(passes[0]))
	for i := range out {
		var gf, peak, eff []float64
		for _, p := range passes {
			gf = append(gf, p[i].GFLOPs)
			peak = append(peak, p[i].PeakGFLOPs)
			eff = append(eff, p[i].Efficiency)
		}
		out[i] = passes[0][i]
		out[i].GFLOPs, out[i].PeakGFLOPs, out[i].Efficiency = median(gf), median(peak), median(eff)
	}
	return out
}
