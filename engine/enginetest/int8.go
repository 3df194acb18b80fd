package enginetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/quant"
	"github.com/resnetgen/resnetgen/shape"
)

// Int8Tiers returns the int8 tiers to test: every int8 tier this machine
// and build has (asm.Int8Tiers), or, where RESNET_TEST_TIERS is set, those
// of them it names. RESNET_REQUIRE_TIERS is checked as Tiers checks it (a
// required "vnni" must be available here).
func Int8Tiers(t testing.TB) []asm.Tier {
	t.Helper()
	return int8TiersToTest(t, false)
}

// int8TiersToTest is Int8Tiers, or with bestOnly its last (unless
// RESNET_TEST_TIERS names tiers), as tiersToTest is for float32; the
// report lists what it returns.
func int8TiersToTest(t testing.TB, bestOnly bool) []asm.Tier {
	t.Helper()
	requireTiers(t)
	only := os.Getenv("RESNET_TEST_TIERS")
	var out []asm.Tier
	for _, tier := range asm.Int8Tiers() {
		if only == "" || slices.Contains(strings.Split(only, ","), tier.String()) {
			out = append(out, tier)
		}
	}
	if bestOnly && only == "" {
		out = out[len(out)-1:]
	}
	if path := os.Getenv("RESNET_TIER_REPORT"); path != "" {
		report(t, path, fmt.Sprintf("%s (int8): %v\n", t.Name(), out))
	}
	return out
}

// bytes is a guarded byte slice: the floats' memory, its last (atEnd) or
// first n bytes.
func (g *guard) bytes(n int) []byte {
	f := g.floats((n + 3) / 4)
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), len(f)*4)
	if g.atEnd {
		return b[len(b)-n:]
	}
	return b[:n]
}

func (g *guard) qbuffer(h, w, c, halo int) asm.QBuffer {
	b := asm.QBuffer{H: h, W: w, C: c, Halo: halo}
	b.Data = g.bytes(b.Len())
	return b
}

// qcase is one int8 convolution's random data: uint8 inputs (a third of
// them zero, as after a ReLU), int8 weights in [−127, 127], per-channel
// scales and biases, and, by seed, a uint8 or int8 residual or none, a
// ReLU or a signed output.
type qcase struct {
	s    shape.Conv
	in   asm.QBuffer
	res  *asm.QBuffer
	oihw []int8
	e    asm.QEpilogue
	// ref are the exact accumulators (quant.Conv), CHW.
	ref quant.Planes
}

func newQCase(g *guard, s shape.Conv, seed uint64) *qcase {
	rng := rand.New(rand.NewPCG(seed, 0x1f))
	c := &qcase{s: s}
	c.in = g.qbuffer(s.InH, s.InW, s.InC, s.Pad+int(seed%2))
	clear(c.in.Data)
	inPlanes := quant.NewPlanes(s.InC, s.InH, s.InW)
	for y := 0; y < s.InH; y++ {
		for x := 0; x < s.InW; x++ {
			for ch := 0; ch < s.InC; ch++ {
				v := 0
				if rng.IntN(3) > 0 {
					v = rng.IntN(256)
				}
				c.in.Data[c.in.Index(y, x, ch)] = byte(v)
				inPlanes.Data[(ch*s.InH+y)*s.InW+x] = int32(v)
			}
		}
	}
	c.oihw = make([]int8, s.OutC*s.InC*s.K*s.K)
	for i := range c.oihw {
		c.oihw[i] = int8(rng.IntN(255) - 127)
	}
	c.ref = quant.Conv(inPlanes, c.oihw, s.OutC, s.K, s.Stride, s.Pad)
	c.e.Scale, c.e.Bias = make([]float32, s.OutC), make([]float32, s.OutC)
	// Scales that put the typical accumulator (√(K²·InC)·128·73) near the
	// middle of the output range, so rounding and clamping both happen.
	typical := 128 * 73 * float32(s.K) * sqrt32(float32(s.InC))
	for i := range c.e.Scale {
		c.e.Scale[i] = (0.5 + rng.Float32()) / typical
		c.e.Bias[i] = rng.Float32() - 0.5
	}
	c.e.OutInv = 40 + 40*rng.Float32()
	switch seed % 3 {
	case 1, 2:
		r := g.qbuffer(s.OutH, s.OutW, s.OutC, 0)
		for i := range r.Data {
			r.Data[i] = byte(rng.IntN(256))
		}
		c.res, c.e.ResScale, c.e.ResSigned = &r, 0.004+0.004*rng.Float32(), seed%3 == 2
	}
	c.e.ReLU = seed%4 != 3
	c.e.OutSigned = !c.e.ReLU
	return c
}

func sqrt32(x float32) float32 {
	r := x
	for range 30 {
		r = (r + x/r) / 2
	}
	return r
}

// QConvKernel holds one int8 kernel to the exact integer reference: its
// int32 accumulators equal quant.Conv's bit for bit (the raw epilogue), its
// requantized output is within one unit of quant.Requantize (float64) and
// equal to the portable kernel's bit for bit, RunPart in 2, 3 and 5 parts
// equals one part, and every buffer ends (then starts) at an unmapped
// page, so a read or write outside it faults.
func QConvKernel(t *testing.T, k *asm.QConvKernel, seed uint64) {
	t.Helper()
	s := k.Shape
	for _, atEnd := range []bool{true, false} {
		g := newGuard(t, atEnd)
		c := newQCase(g, s, seed)
		packed, err := k.PackWeights(c.oihw)
		require.NoError(t, err)
		pw := g.bytes(len(packed))
		copy(pw, packed)

		raw := g.qbuffer(s.OutH, s.OutW, 4*s.OutC, 0)
		noRes := c.e
		noRes.ResScale = 0
		require.NoError(t, k.Check(c.in, raw, nil, pw, &noRes, true))
		for part := 0; part < 2; part++ {
			k.RunPartRaw(c.in, raw, pw, &noRes, part, 2)
		}
		for oc := 0; oc < s.OutC; oc++ {
			for y := 0; y < s.OutH; y++ {
				for x := 0; x < s.OutW; x++ {
					i := raw.Index(y, x, 4*oc)
					got := int32(uint32(raw.Data[i]) | uint32(raw.Data[i+1])<<8 | uint32(raw.Data[i+2])<<16 | uint32(raw.Data[i+3])<<24)
					if want := c.ref.At(oc, y, x); got != want {
						require.Equal(t, want, got, "%s: accumulator of channel %d at (%d, %d)", k.Name, oc, y, x)
					}
				}
			}
		}

		out := g.qbuffer(s.OutH, s.OutW, s.OutC, int(seed%2))
		require.NoError(t, k.Check(c.in, out, c.res, pw, &c.e, false))
		k.RunPart(c.in, out, c.res, pw, &c.e, 0, 1)
		for oc := 0; oc < s.OutC; oc++ {
			for y := 0; y < s.OutH; y++ {
				for x := 0; x < s.OutW; x++ {
					var r int32
					if c.res != nil {
						r = int32(c.res.Data[c.res.Index(y, x, oc)])
						if c.e.ResSigned {
							r = int32(int8(c.res.Data[c.res.Index(y, x, oc)]))
						}
					}
					want := quant.Requantize(c.ref.At(oc, y, x), 1, c.e.Scale[oc], c.e.Bias[oc], r, c.e.ResScale, c.e.ReLU, 1/c.e.OutInv, c.e.OutSigned)
					v := out.Data[out.Index(y, x, oc)]
					got := int32(v)
					if c.e.OutSigned {
						got = int32(int8(v))
					}
					if d := got - want; d < -1 || d > 1 {
						require.InDelta(t, want, got, 1, "%s: output channel %d at (%d, %d)", k.Name, oc, y, x)
					}
				}
			}
		}
		for i := 0; i < out.Halo*out.RowStride(); i++ {
			require.Zero(t, out.Data[i], "%s wrote into the output's halo", k.Name)
		}
		if k.Tier != asm.Purego {
			p, err := asm.PortableQConv(s)
			require.NoError(t, err)
			pp, err := p.PackWeights(c.oihw)
			require.NoError(t, err)
			po := asm.NewQBuffer(s.OutH, s.OutW, s.OutC, out.Halo)
			require.NoError(t, p.Run(c.in, po, c.res, pp, &c.e, false))
			require.Equal(t, po.Data, out.Data, "%s against the portable kernel", k.Name)
		}
		for _, parts := range []int{2, 3, 5} {
			split := asm.NewQBuffer(s.OutH, s.OutW, s.OutC, out.Halo)
			for part := 0; part < parts; part++ {
				k.RunPart(c.in, split, c.res, pw, &c.e, part, parts)
			}
			require.Equal(t, out.Data, split.Data, "%s in %d parts", k.Name, parts)
		}
		g.free()
	}
}

// Int8Kernels holds every int8 kernel of the package, on every int8 tier
// this machine has, to the integer reference (QConvKernel). A package
// without int8 kernels has nothing to test here.
func Int8Kernels(t *testing.T, p Package) {
	if !p.Kernels.HasInt8() {
		return
	}
	net, err := p.Network()
	require.NoError(t, err)
	ran := map[asm.Tier]int{}
	for _, tier := range Int8Tiers(t) {
		for i, s := range net.ConvShapes() {
			k, err := p.Kernels.QConvKernel(asm.Int8Shape(s), tier)
			require.NoError(t, err, "%v int8 kernel for %s", tier, s.Name())
			t.Run(k.Name, func(t *testing.T) { QConvKernel(t, k, uint64(i)) })
			ran[tier]++
		}
		for _, l := range net.Distinct(resnet.OpMaxPool) {
			k, err := p.Kernels.QMaxPoolKernel(l.InShape.C, tier)
			require.NoError(t, err)
			t.Run(k.Name, func(t *testing.T) { QMaxPoolKernel(t, k, l.InShape.H, l.InShape.W) })
		}
		k, err := p.Kernels.QInputKernel(tier)
		require.NoError(t, err)
		in := net.Input()
		t.Run(k.Name, func(t *testing.T) { QInputKernel(t, k, in.H, in.W) })
	}
	for _, tier := range Int8Tiers(t) {
		require.Positive(t, ran[tier], "no %v int8 kernel ran", tier)
	}
	if req := os.Getenv("RESNET_REQUIRE_TIERS"); slices.Contains(strings.Split(req, ","), asm.VNNI.String()) && os.Getenv("RESNET_TEST_TIERS") == "" {
		require.Positive(t, ran[asm.VNNI], "vnni is required (RESNET_REQUIRE_TIERS=%s) and no vnni int8 kernel ran", req)
	}
}

// Int8Tolerance bounds |int8 logit − float32 logit| relative to the largest
// float32 logit, on the random weights and inputs of Int8Forward: each
// layer's requantization adds up to half a step (1/510 of its range) and
// the errors compound over the network's depth (measured: 0.008 on CIFAR
// ResNet-20, 0.014 on ResNet-18, 0.020 on ResNet-50; 3× the largest).
const Int8Tolerance = 0.06

// Int8Forward holds an int8 package's whole network, calibrated on random
// images through the float32 network (as WithInt8Calibrating does at New):
// on every int8 tier the logits are close to the float32 network's
// (Int8Tolerance) and to the other tiers' (the int8 kernels are exact and
// round alike, but the float32 stem before them rounds per tier, which
// can move a quantized input by one unit), 1 and 2 workers give the same
// logits bit for bit, a second input runs through the same buffers,
// ForwardBatch equals Forward, nothing allocates; and New refuses a
// calibration measured on other weights, and int8 without a calibration.
func Int8Forward(t *testing.T, p Package) {
	if !p.Kernels.HasInt8() {
		return
	}
	net := network(t, p)
	w := resnet.RandomWeights(net, 1)
	classes := net.Arch.Classes
	var cal []float32
	for i := range 4 {
		cal = append(cal, resnet.RandomInput(net, uint64(10+i))...)
	}
	xs := [][]float32{resnet.RandomInput(net, 2), resnet.RandomInput(net, 3)}
	fp, err := p.New(w, engine.WithBatch(2))
	require.NoError(t, err)
	want := make([][]float32, len(xs))
	for i, x := range xs {
		want[i] = make([]float32, classes)
		require.NoError(t, fp.ForwardBatch(x, want[i]))
	}
	fp.Close()
	c := calibrationOf(t, p, w, cal)
	// New calibrates as calibrationOf does.
	m, err := p.New(w, engine.WithInt8Calibrating(cal))
	require.NoError(t, err)
	require.Positive(t, len(c.Scales))
	m.Close()
	var first [][]float32
	// A package whose kernels another tests: the best tier, as Forward.
	for _, tier := range int8TiersToTest(t, p.KernelsOf != "") {
		var tierFirst [][]float32
		for _, workers := range []int{1, 2} {
			if tier == asm.Purego && workers == 1 && big(net) {
				continue // the portable tier is slow on the big nets: one run with 2 workers
			}
			m, err := p.New(w, engine.WithTier(tier), engine.WithWorkers(workers), engine.WithBatch(2), engine.WithInt8(c))
			require.NoError(t, err, "%v int8", tier)
			int8Layers := 0
			for _, l := range m.Layers() {
				if cv, ok := l.Layer.(*engine.Conv); ok && cv.Q != nil {
					int8Layers++
					require.Equal(t, tier, cv.Q.K.Tier, "%s runs a %v kernel", l.Name, cv.Q.K.Tier)
				}
			}
			require.Positive(t, int8Layers, "no int8 layer on %v", tier)
			got := make([][]float32, len(xs))
			for i, x := range xs {
				got[i] = make([]float32, classes)
				p.Forward(m, x, got[i])
			}
			if tierFirst == nil {
				tierFirst = got
				for i := range xs {
					d, scale := maxDiff(want[i], got[i])
					t.Logf("%v int8 against float32, input %d: max |Δ| %.3g of max |logit| %.3g (%.3g)", tier, i, d, scale, d/scale)
					require.LessOrEqual(t, d, Int8Tolerance*scale, "%v int8 logits of input %d", tier, i)
					if first != nil {
						d, scale := maxDiff(first[i], got[i])
						require.LessOrEqual(t, d, Int8Tolerance/3*scale, "%v int8 logits of input %d against the first tier's", tier, i)
					}
				}
				require.NotEqual(t, got[0], got[1], "two inputs, one answer: a stale buffer?")
				if first == nil {
					first = got
				}
			}
			require.Equal(t, tierFirst, got, "%v with %d workers against the first", tier, workers)
			batch := make([]float32, 2*classes)
			require.NoError(t, m.ForwardBatch(append(append([]float32(nil), xs[0]...), xs[1]...), batch))
			require.Equal(t, append(append([]float32(nil), got[0]...), got[1]...), batch, "ForwardBatch against Forward")
			out := make([]float32, classes)
			allocs := testing.AllocsPerRun(5, func() { p.Forward(m, xs[0], out) })
			require.Zero(t, allocs, "%v int8 Forward allocates", tier)
			m.Close()
		}
	}
	// Another network's weights with this calibration: refused.
	other := resnet.RandomWeights(net, 2)
	_, err = p.New(other, engine.WithInt8(c))
	require.ErrorContains(t, err, "other weights")
	_, err = p.New(w, engine.WithPrecision(engine.Int8))
	require.ErrorContains(t, err, "needs a calibration")
}

// maxDiff is max |a − b| and max |a|.
func maxDiff(a, b []float32) (d, scale float64) {
	for j := range a {
		scale = math.Max(scale, math.Abs(float64(a[j])))
		d = math.Max(d, math.Abs(float64(a[j]-b[j])))
	}
	return d, scale
}

// calibrationOf measures the calibration New measures on images, through
// the float32 Model (what WithInt8Calibrating does inside New).
func calibrationOf(t *testing.T, p Package, w *resnet.Weights, images []float32) *engine.Calibration {
	net := network(t, p)
	f, err := engine.Fold(net, w)
	require.NoError(t, err)
	m, err := engine.Interpret(f, p.Kernels, engine.WithBatch(8))
	require.NoError(t, err)
	defer m.Close()
	c, err := engine.Calibrate(m, f, images, net.Input().Len(), 8, engine.CalibrateOptions{})
	require.NoError(t, err)
	return c
}

// QMaxPoolKernel holds a uint8 max pool to the definition on an h×w map
// (random bytes, a zero halo), with its buffers at unmapped pages, and to
// the portable kernel bit for bit.
func QMaxPoolKernel(t *testing.T, k *asm.QMaxPoolKernel, h, w int) {
	for _, atEnd := range []bool{true, false} {
		g := newGuard(t, atEnd)
		in := g.qbuffer(h, w, k.C, 1)
		clear(in.Data)
		rng := rand.New(rand.NewPCG(uint64(h), uint64(k.C)))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				for c := 0; c < k.C; c++ {
					in.Data[in.Index(y, x, c)] = byte(rng.IntN(256))
				}
			}
		}
		out := g.qbuffer(asm.PooledSide(h), asm.PooledSide(w), k.C, 0)
		require.NoError(t, k.Check(in, out))
		for part := 0; part < 3; part++ {
			k.RunPart(in, out, part, 3)
		}
		for oy := 0; oy < out.H; oy++ {
			for ox := 0; ox < out.W; ox++ {
				for c := 0; c < k.C; c++ {
					want := byte(0) // the padding: the input is ≥ 0
					for ky := -1; ky <= 1; ky++ {
						for kx := -1; kx <= 1; kx++ {
							if y, x := 2*oy+ky, 2*ox+kx; y >= 0 && y < h && x >= 0 && x < w {
								want = max(want, in.Data[in.Index(y, x, c)])
							}
						}
					}
					if got := out.Data[out.Index(oy, ox, c)]; got != want {
						require.Equal(t, want, got, "%s at (%d, %d, %d)", k.Name, oy, ox, c)
					}
				}
			}
		}
		g.free()
	}
}

// QInputKernel holds the input quantizer to its definition (round half to
// even, a zero point, clamps) on an h×w image (values past the clamp included), its
// output at unmapped pages, and to the portable kernel bit for bit.
func QInputKernel(t *testing.T, k *asm.QInputKernel, h, w int) {
	rng := rand.New(rand.NewPCG(uint64(h), uint64(w)))
	chw := make([]float32, 3*h*w)
	for i := range chw {
		chw[i] = float32(rng.NormFloat64() * 1.5)
	}
	chw[0], chw[1], chw[2] = 1e20, -1e20, 0.5/40 // clamped both ways; a tie
	const inv, zp = 40, 120
	for _, atEnd := range []bool{true, false} {
		g := newGuard(t, atEnd)
		out := g.qbuffer(h, w, 4, 0)
		require.NoError(t, k.Check(len(chw), out))
		k.Run(chw, out, inv, zp, 0, h/2)
		k.Run(chw, out, inv, zp, h/2, h)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				for c := 0; c < 3; c++ {
					v := chw[c*h*w+y*w+x]
					want := min(max(math.RoundToEven(float64(min(max(float32(v*inv), -256), 256)))+zp, 0), 255)
					require.Equal(t, byte(want), out.Data[out.Index(y, x, c)], "%s channel %d at (%d, %d), x = %v", k.Name, c, y, x, v)
				}
				require.Equal(t, byte(zp), out.Data[out.Index(y, x, 3)])
			}
		}
		p := asm.PortableQInput()
		po := asm.NewQBuffer(h, w, 4, 0)
		p.Run(chw, po, inv, zp, 0, h)
		require.Equal(t, po.Data, out.Data, "%s against the portable kernel", k.Name)
		g.free()
	}
}
