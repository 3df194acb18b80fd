package enginetest

import (
	"math"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/shape"
)

// KernelTolerance bounds |fp32 kernel − float64 reference| relative to the
// largest output magnitude. Float32 accumulation of up to 3·3·512 = 4608
// products of unit-variance terms measured ≤ 1.8e-6; 1e-5 leaves room for
// another summation order without hiding a wrong tap (which is O(1)).
const KernelTolerance = 1e-5

// sentinel marks output cells a kernel must not write.
const sentinel = float32(-12345.5)

// Kernels holds every kernel of the package, on every tier this machine
// has, to the float64 reference: every convolution shape of the network
// (with and without residual and ReLU, output halos untouched), RunPart in
// 2, 3 and 5 parts equal to Run bit for bit, the pools and the classifier;
// and runs each with its buffers ending at an unmapped page (see Guarded).
// A tier the machine has but the package has no kernels for fails.
//
// A package with Package.KernelsOf instead proves that each of its kernels
// is the other package's (SharedKernels, on the files in the current
// directory, which go test makes the package's): the other package's
// TestKernels runs them.
func Kernels(t *testing.T, p Package) {
	if p.KernelsOf != "" {
		n, err := SharedKernels(".", p.KernelsOf)
		require.NoError(t, err, "this package's kernels must each be %s's, whose TestKernels runs them "+
			"(gen/family says so); if they now differ on purpose, take KernelsOf out of gen/family's entry for this package", p.KernelsOf)
		t.Logf("each of the %d kernels is %s's: its TestKernels runs them", n, p.KernelsOf)
		return
	}
	Int8Kernels(t, p)
	net := network(t, p)
	tiers := Tiers(t)
	have := map[asm.Tier]bool{}
	for _, tier := range p.Kernels.Tiers() {
		have[tier] = true
	}
	for _, tier := range tiers {
		require.True(t, tier == asm.Purego || have[tier], "this machine has %v but the package has no %v kernels", tier, tier)
	}
	for i, s := range net.ConvShapes() {
		for _, tier := range tiers {
			k, err := p.Kernels.ConvKernel(s, tier)
			require.NoError(t, err)
			ConvKernel(t, k, uint64(i))
			for _, v := range p.Kernels.ConvVariants(s, tier) {
				if v == "" {
					continue
				}
				k, err := p.Kernels.ConvVariant(s, tier, v)
				require.NoError(t, err)
				ConvKernel(t, k, uint64(i))
				if k.ICBlock > 0 {
					// The driver treats a split kernel's first and last
					// slices apart (bias and residual, ReLU): every
					// combination of residual and ReLU (seeds i+1 … i+5
					// with i's cover seed mod 6).
					for d := range uint64(5) {
						ConvKernel(t, k, uint64(i)+1+d)
					}
				}
			}
			for _, m := range p.Kernels.WinogradMs(s, tier) {
				w, err := p.Kernels.WinogradM(s, tier, m)
				require.NoError(t, err)
				WinogradKernel(t, w, uint64(i))
			}
		}
	}
	for _, l := range net.Distinct(resnet.OpMaxPool, resnet.OpGlobalAvgPool, resnet.OpFC) {
		for _, tier := range tiers {
			switch in := l.InShape; l.Op {
			case resnet.OpMaxPool:
				k, err := p.Kernels.MaxPoolKernel(in.C, tier)
				require.NoError(t, err)
				MaxPoolKernel(t, k, in.H, in.W)
			case resnet.OpGlobalAvgPool:
				k, err := p.Kernels.AvgPoolKernel(in.C, tier)
				require.NoError(t, err)
				AvgPoolKernel(t, k, in.H, in.W)
			case resnet.OpFC:
				k, err := p.Kernels.FCKernel(in.C, l.OutShape.C, tier)
				require.NoError(t, err)
				FCKernel(t, k)
			}
		}
	}
	guardedRuns(t, p, net, tiers)
}

// ConvKernel holds one convolution kernel to the float64 reference on
// random data (seed picks the data and whether the residual and ReLU are
// on): the output's interior within KernelTolerance, its halo untouched,
// and RunPart in 2, 3 and 5 parts equal to Run bit for bit.
func ConvKernel(t *testing.T, k *asm.ConvKernel, seed uint64) {
	t.Helper()
	c := cachedConvCase(k.Shape, seed)
	packed, err := k.PackWeights(c.oihw)
	require.NoError(t, err)
	halo := 1 + int(seed%2)
	out := asm.NewBuffer(c.s.OutH, c.s.OutW, c.s.OutC, halo)
	c.check(t, k, out, packed)
	for _, parts := range []int{2, 3, 5} {
		split := asm.NewBuffer(c.s.OutH, c.s.OutW, c.s.OutC, halo)
		for i := range split.Data {
			split.Data[i] = sentinel
		}
		require.NoError(t, k.Check(c.in, split, c.resArg(), packed, c.bias))
		for part := 0; part < parts; part++ {
			k.RunPart(c.in, split, c.resArg(), packed, c.bias, c.relu, part, parts)
		}
		require.Equal(t, out.Data, split.Data, "%s in %d parts", k.Name, parts)
	}
}

// WinogradTolerance bounds |Winograd F(4,3) − float64 reference| relative
// to the largest output magnitude: its transforms multiply by up to 8 and
// by 1/24 and add 36 terms twice, so float32 rounding is larger than the
// direct kernel's (measured up to 2.3e-5 on the family's shapes).
const WinogradTolerance = 1e-4

// WinogradKernel holds a Winograd kernel to the float64 reference as
// ConvKernel does the direct one (within WinogradTolerance), its halo
// untouched, and RunPart in 2, 3 and 5 parts (whole chunks, or channel
// blocks when the chunks are fewer than the parts) equal to one part.
func WinogradKernel(t *testing.T, k *asm.WinogradKernel, seed uint64) {
	t.Helper()
	c := cachedConvCase(k.Shape, seed)
	packed, err := k.PackWeights(c.oihw)
	require.NoError(t, err)
	halo := 1 + int(seed%2)
	run := func(parts int) asm.Buffer {
		out := asm.NewBuffer(c.s.OutH, c.s.OutW, c.s.OutC, halo)
		for i := range out.Data {
			out.Data[i] = sentinel
		}
		require.NoError(t, k.Check(c.in, out, c.resArg(), packed, c.bias))
		for part := 0; part < parts; part++ {
			k.RunPart(c.in, out, c.resArg(), packed, c.bias, c.relu, k.NewScratch(1), part, parts)
		}
		return out
	}
	out := run(1)
	s := c.s
	worst := 0.0
	for y := -out.Halo; y < s.OutH+out.Halo; y++ {
		for x := -out.Halo; x < s.OutW+out.Halo; x++ {
			for ch := 0; ch < s.OutC; ch++ {
				got := out.Data[out.Index(y, x, ch)]
				if y < 0 || x < 0 || y >= s.OutH || x >= s.OutW {
					require.Equal(t, sentinel, got, "%s wrote the halo at (%d,%d,%d)", k.Name, y, x, ch)
					continue
				}
				worst = math.Max(worst, math.Abs(float64(got)-c.want[(y*s.OutW+x)*s.OutC+ch]))
			}
		}
	}
	t.Logf("%s: max error %.2g of max |out| %.3g (%.2g)", k.Name, worst, c.scale, worst/c.scale)
	require.LessOrEqual(t, worst/c.scale, WinogradTolerance, "%s: max error %.3g of max |out| %.3g", k.Name, worst, c.scale)
	for _, parts := range []int{2, 3, 5} {
		require.Equal(t, out.Data, run(parts).Data, "%s in %d parts", k.Name, parts)
	}
}

// convCase is one shape's random data and its float64 reference result.
type convCase struct {
	s          shape.Conv
	in, res    asm.Buffer // res has a halo of 1 (as a block input feeding a 3x3 would)
	oihw, bias []float32
	relu       bool
	withRes    bool
	want       []float64 // NHWC interior of the expected output
	scale      float64   // max |want|
}

func fill(b asm.Buffer, rng *rand.Rand, nonNegative bool) {
	for y := 0; y < b.H; y++ {
		for x := 0; x < b.W; x++ {
			for ch := 0; ch < b.C; ch++ {
				v := rng.NormFloat64()
				if nonNegative {
					v = math.Abs(v)
				}
				b.Data[b.Index(y, x, ch)] = float32(v)
			}
		}
	}
}

// planes converts an NHWC buffer's interior to CHW float64 planes.
func planes(b asm.Buffer) resnet.Planes {
	p := resnet.NewPlanes(resnet.Shape{C: b.C, H: b.H, W: b.W})
	for c := 0; c < b.C; c++ {
		for y := 0; y < b.H; y++ {
			for x := 0; x < b.W; x++ {
				p.Data[(c*b.H+y)*b.W+x] = float64(b.Data[b.Index(y, x, c)])
			}
		}
	}
	return p
}

var (
	casesMu sync.Mutex
	cases   = map[caseKey]*convCase{}
)

type caseKey struct {
	s    shape.Conv
	seed uint64
}

// cachedConvCase computes each shape's reference once for all tiers (the
// float64 reference is the slow part).
func cachedConvCase(s shape.Conv, seed uint64) *convCase {
	casesMu.Lock()
	defer casesMu.Unlock()
	k := caseKey{s, seed}
	if c, ok := cases[k]; ok {
		return c
	}
	c := newConvCase(s, seed)
	cases[k] = c
	return c
}

func newConvCase(s shape.Conv, seed uint64) *convCase {
	rng := rand.New(rand.NewPCG(seed, 99))
	c := &convCase{s: s, relu: seed%2 == 0, withRes: seed%3 != 2}
	c.in = asm.NewBuffer(s.InH, s.InW, s.InC, s.Pad)
	fill(c.in, rng, false)
	c.res = asm.NewBuffer(s.OutH, s.OutW, s.OutC, 1)
	fill(c.res, rng, false)
	c.oihw = make([]float32, s.OutC*s.InC*s.K*s.K)
	std := 1 / math.Sqrt(float64(s.InC*s.K*s.K))
	for i := range c.oihw {
		c.oihw[i] = float32(rng.NormFloat64() * std)
	}
	c.bias = make([]float32, s.OutC)
	for i := range c.bias {
		c.bias[i] = float32(rng.NormFloat64())
	}
	w64 := make([]float64, len(c.oihw))
	for i, v := range c.oihw {
		w64[i] = float64(v)
	}
	o := resnet.Conv2D(planes(c.in), w64, s.OutC, s.K, s.Stride, s.Pad)
	c.want = make([]float64, s.OutH*s.OutW*s.OutC)
	for y := 0; y < s.OutH; y++ {
		for x := 0; x < s.OutW; x++ {
			for ch := 0; ch < s.OutC; ch++ {
				v := o.At(ch, y, x) + float64(c.bias[ch])
				if c.withRes {
					v += float64(c.res.Data[c.res.Index(y, x, ch)])
				}
				if c.relu {
					v = math.Max(v, 0)
				}
				c.want[(y*s.OutW+x)*s.OutC+ch] = v
				c.scale = math.Max(c.scale, math.Abs(v))
			}
		}
	}
	return c
}

func (c *convCase) resArg() *asm.Buffer {
	if c.withRes {
		return &c.res
	}
	return nil
}

// check runs k into out (its halo filled with the sentinel) and compares
// the interior with the reference.
func (c *convCase) check(t *testing.T, k *asm.ConvKernel, out asm.Buffer, packed []float32) {
	t.Helper()
	for i := range out.Data {
		out.Data[i] = sentinel
	}
	require.NoError(t, k.Run(c.in, out, c.resArg(), packed, c.bias, c.relu))
	s := c.s
	worst := 0.0
	for y := -out.Halo; y < s.OutH+out.Halo; y++ {
		for x := -out.Halo; x < s.OutW+out.Halo; x++ {
			for ch := 0; ch < s.OutC; ch++ {
				got := out.Data[out.Index(y, x, ch)]
				if y < 0 || x < 0 || y >= s.OutH || x >= s.OutW {
					require.Equal(t, sentinel, got, "%s wrote the halo at (%d,%d,%d)", k.Name, y, x, ch)
					continue
				}
				worst = math.Max(worst, math.Abs(float64(got)-c.want[(y*s.OutW+x)*s.OutC+ch]))
			}
		}
	}
	require.LessOrEqual(t, worst/c.scale, KernelTolerance, "%s: max error %.3g of max |out| %.3g", k.Name, worst, c.scale)
}

// MaxPoolKernel holds a max-pool kernel to the reference on an h×w input
// (after a ReLU: non-negative), its output halo untouched, RunPart in 3
// parts equal to Run.
func MaxPoolKernel(t *testing.T, k *asm.MaxPoolKernel, h, w int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(h*w), 12))
	in := asm.NewBuffer(h, w, k.C, 1)
	fill(in, rng, true) // after a ReLU
	out := asm.NewBuffer(asm.PooledSide(h), asm.PooledSide(w), k.C, 1)
	for i := range out.Data {
		out.Data[i] = sentinel
	}
	require.NoError(t, k.Run(in, out))
	want := resnet.MaxPool(planes(in), 3, 2, 1)
	for c := 0; c < out.C; c++ {
		for y := -1; y <= out.H; y++ {
			for x := -1; x <= out.W; x++ {
				got := out.Data[out.Index(y, x, c)]
				if y < 0 || x < 0 || y == out.H || x == out.W {
					require.Equal(t, sentinel, got, "%s wrote the halo", k.Name)
				} else {
					require.Equal(t, float32(want.At(c, y, x)), got, "%s at %d,%d,%d", k.Name, c, y, x)
				}
			}
		}
	}
	split := asm.NewBuffer(out.H, out.W, out.C, 1)
	for part := 0; part < 3; part++ {
		k.RunPart(in, split, part, 3)
	}
	for i := range split.Data {
		if out.Data[i] == sentinel {
			out.Data[i] = 0
		}
	}
	require.Equal(t, out.Data, split.Data, "%s in 3 parts", k.Name)
}

// AvgPoolKernel holds a global average pool to the reference on an h×w
// input whose halo holds noise (which the pool must not read).
func AvgPoolKernel(t *testing.T, k *asm.AvgPoolKernel, h, w int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(h*w), 13))
	in := asm.NewBuffer(h, w, k.C, 1)
	for i := range in.Data {
		in.Data[i] = float32(rng.NormFloat64())
	}
	out := make([]float32, k.C)
	require.NoError(t, k.Run(in, out))
	want := resnet.GlobalAvgPool(planes(in))
	for c := range out {
		require.InDelta(t, want.Data[c], out[c], KernelTolerance*4, "%s channel %d", k.Name, c)
	}
}

// FCKernel holds a classifier kernel to the reference, its padding outputs
// zero, RunPart in 3 parts equal to Run.
func FCKernel(t *testing.T, k *asm.FCKernel) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(k.In*k.Out), 14))
	w, b, in := make([]float32, k.Out*k.In), make([]float32, k.Out), make([]float32, k.In)
	w64, b64, in64 := make([]float64, len(w)), make([]float64, len(b)), make([]float64, len(in))
	for _, p := range []struct {
		f []float32
		d []float64
	}{{w, w64}, {b, b64}, {in, in64}} {
		for i := range p.f {
			p.f[i] = float32(rng.NormFloat64())
			p.d[i] = float64(p.f[i])
		}
	}
	pw, pb, err := k.Pack(w, b)
	require.NoError(t, err)
	out := make([]float32, k.Padded())
	require.NoError(t, k.Run(in, pw, pb, out))
	want := resnet.Linear(in64, w64, b64)
	scale := maxAbs(want)
	for o := range want {
		require.InDelta(t, want[o], out[o], KernelTolerance*scale, "%s output %d", k.Name, o)
	}
	for _, v := range out[len(want):] {
		require.Zero(t, v, "%s: padding outputs", k.Name)
	}
	split := make([]float32, k.Padded())
	for part := 0; part < 3; part++ {
		k.RunPart(in, pw, pb, split, part, 3)
	}
	require.Equal(t, out, split, "%s in 3 parts", k.Name)
	require.ErrorContains(t, k.Run(in[:1], pw, pb, out), "input 1")
}

// guardedRuns runs every kernel of every tier with each of its buffers
// flush against an unmapped page, at the end and then at the start, with
// the smallest halos allowed (so the first and last pixels read or written
// are the buffer's first and last floats). A fault becomes a panic that
// names the kernel instead of a crash.
func guardedRuns(t *testing.T, p Package, net *resnet.Network, tiers []asm.Tier) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	for _, tier := range tiers {
		for _, atEnd := range []bool{true, false} {
			g := newGuard(t, atEnd)
			for _, s := range net.ConvShapes() {
				cs := s
				if tier == asm.Purego && s.OutH*s.OutW > 32*32 {
					continue // the portable kernel is bounds-checked Go; keep the slow tier short
				}
				in := g.buffer(s.InH, s.InW, s.InC, s.Pad)
				out := g.buffer(s.OutH, s.OutW, s.OutC, 0)
				res := g.buffer(s.OutH, s.OutW, s.OutC, 0)
				packed := g.floats(s.OutC * s.InC * s.K * s.K)
				bias := g.floats(s.OutC)
				variants := p.Kernels.ConvVariants(cs, tier)
				if tier == asm.Purego {
					variants = []string{""}
				}
				for _, v := range variants {
					k, err := p.Kernels.ConvVariant(cs, tier, v)
					require.NoError(t, err)
					require.NotPanics(t, func() { require.NoError(t, k.Run(in, out, &res, packed, bias, true)) }, k.Name)
				}
				for _, m := range p.Kernels.WinogradMs(cs, tier) {
					w, err := p.Kernels.WinogradM(cs, tier, m)
					require.NoError(t, err)
					wp := g.floats((w.M + 2) * (w.M + 2) * s.OutC * s.InC) // the transformed weights
					sc := w.NewScratch(1)
					require.NotPanics(t, func() {
						require.NoError(t, w.Check(in, out, &res, wp, bias))
						w.RunPart(in, out, &res, wp, bias, true, sc, 0, 1)
					}, w.Name)
				}
			}
			for _, l := range net.Distinct(resnet.OpMaxPool, resnet.OpGlobalAvgPool, resnet.OpFC) {
				switch l.Op {
				case resnet.OpMaxPool:
					k, err := p.Kernels.MaxPoolKernel(l.InShape.C, tier)
					require.NoError(t, err)
					in := g.buffer(l.InShape.H, l.InShape.W, l.InShape.C, 1)
					out := g.buffer(l.OutShape.H, l.OutShape.W, l.OutShape.C, 0)
					require.NotPanics(t, func() { require.NoError(t, k.Run(in, out)) }, k.Name)
				case resnet.OpGlobalAvgPool:
					k, err := p.Kernels.AvgPoolKernel(l.InShape.C, tier)
					require.NoError(t, err)
					in := g.buffer(l.InShape.H, l.InShape.W, l.InShape.C, 0)
					o := g.floats(l.InShape.C)
					require.NotPanics(t, func() { require.NoError(t, k.Run(in, o)) }, k.Name)
				case resnet.OpFC:
					k, err := p.Kernels.FCKernel(l.InShape.C, l.OutShape.C, tier)
					require.NoError(t, err)
					n := k.Padded()
					x, w, b, o := g.floats(k.In), g.floats(n*k.In), g.floats(n), g.floats(n)
					require.NotPanics(t, func() { require.NoError(t, k.Run(x, w, b, o)) }, k.Name)
				}
			}
			g.free()
		}
	}
}
