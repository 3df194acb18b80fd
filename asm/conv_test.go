package asm_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/resnet"
)

// familyShapes is every convolution shape of every catalogued network, read
// from the architecture table (not from asm's own list), so a shape without
// a kernel fails the test.
func familyShapes() []asm.ConvShape {
	var out []asm.ConvShape
	for _, s := range resnet.FamilyConvShapes() {
		out = append(out, asm.ConvShape(s))
	}
	return out
}

// convCase is one shape's random data and its float64 reference result.
type convCase struct {
	s          asm.ConvShape
	in, res    asm.Buffer // res has a halo of 1 (as a block input feeding a 3x3 would)
	oihw, bias []float32
	relu       bool
	withRes    bool
	want       []float64 // NHWC interior of the expected output
	scale      float64   // max |want|
}

func newConvCase(s asm.ConvShape, seed uint64) *convCase {
	rng := rand.New(rand.NewPCG(seed, 99))
	c := &convCase{s: s, relu: seed%2 == 0, withRes: seed%3 != 2}
	c.in = asm.NewBuffer(s.InH, s.InH, s.InC, s.Pad)
	for y := 0; y < s.InH; y++ {
		for x := 0; x < s.InH; x++ {
			for ch := 0; ch < s.InC; ch++ {
				c.in.Data[c.in.Index(y, x, ch)] = float32(rng.NormFloat64())
			}
		}
	}
	c.res = asm.NewBuffer(s.OutH, s.OutH, s.OutC, 1)
	for y := 0; y < s.OutH; y++ {
		for x := 0; x < s.OutH; x++ {
			for ch := 0; ch < s.OutC; ch++ {
				c.res.Data[c.res.Index(y, x, ch)] = float32(rng.NormFloat64())
			}
		}
	}
	c.oihw = make([]float32, s.OutC*s.InC*s.K*s.K)
	std := 1 / math.Sqrt(float64(s.InC*s.K*s.K))
	for i := range c.oihw {
		c.oihw[i] = float32(rng.NormFloat64() * std)
	}
	c.bias = make([]float32, s.OutC)
	for i := range c.bias {
		c.bias[i] = float32(rng.NormFloat64())
	}
	// The reference: resnet.Conv2D in float64 on CHW planes.
	p := resnet.NewPlanes(resnet.Shape{C: s.InC, H: s.InH, W: s.InH})
	for ch := 0; ch < s.InC; ch++ {
		for y := 0; y < s.InH; y++ {
			for x := 0; x < s.InH; x++ {
				p.Data[(ch*s.InH+y)*s.InH+x] = float64(c.in.Data[c.in.Index(y, x, ch)])
			}
		}
	}
	w64 := make([]float64, len(c.oihw))
	for i, v := range c.oihw {
		w64[i] = float64(v)
	}
	o := resnet.Conv2D(p, w64, s.OutC, s.K, s.Stride, s.Pad)
	c.want = make([]float64, s.OutH*s.OutH*s.OutC)
	for y := 0; y < s.OutH; y++ {
		for x := 0; x < s.OutH; x++ {
			for ch := 0; ch < s.OutC; ch++ {
				v := o.At(ch, y, x) + float64(c.bias[ch])
				if c.withRes {
					v += float64(c.res.Data[c.res.Index(y, x, ch)])
				}
				if c.relu {
					v = math.Max(v, 0)
				}
				c.want[(y*s.OutH+x)*s.OutC+ch] = v
				c.scale = math.Max(c.scale, math.Abs(v))
			}
		}
	}
	return c
}

// convTolerance bounds |fp32 kernel − float64 reference| relative to the
// largest output magnitude. Float32 accumulation of up to 3·3·512 = 4608
// products of unit-variance terms measured ≤ 1.5e-6 here; 1e-5 leaves room
// for another summation order without hiding a wrong tap (which is O(1)).
const convTolerance = 1e-5

func (c *convCase) resArg() *asm.Buffer {
	if c.withRes {
		return &c.res
	}
	return nil
}

const sentinel = float32(-12345.5)

// check runs k on c with the given output buffer and compares to the reference.
func (c *convCase) check(t *testing.T, k *asm.ConvKernel, in, out asm.Buffer, res *asm.Buffer, packed, bias []float32) {
	t.Helper()
	for i := range out.Data {
		out.Data[i] = sentinel
	}
	require.NoError(t, k.Run(in, out, res, packed, bias, c.relu))
	s := c.s
	worst := 0.0
	for y := -out.Halo; y < s.OutH+out.Halo; y++ {
		for x := -out.Halo; x < s.OutH+out.Halo; x++ {
			for ch := 0; ch < s.OutC; ch++ {
				got := out.Data[out.Index(y, x, ch)]
				if y < 0 || x < 0 || y >= s.OutH || x >= s.OutH {
					require.Equal(t, sentinel, got, "%s wrote the halo at (%d,%d,%d)", k.Name, y, x, ch)
					continue
				}
				worst = math.Max(worst, math.Abs(float64(got)-c.want[(y*s.OutH+x)*s.OutC+ch]))
			}
		}
	}
	require.LessOrEqual(t, worst/c.scale, convTolerance, "%s: max error %.3g of max |out| %.3g", k.Name, worst, c.scale)
}

func TestConvKernelsMatchReference(t *testing.T) {
	shapes := familyShapes()
	require.GreaterOrEqual(t, len(shapes), 38)
	for i, s := range shapes {
		c := newConvCase(s, uint64(i))
		for _, tier := range asm.Tiers() {
			k, err := asm.Conv(s, tier)
			require.NoError(t, err, "tier %v", tier)
			packed, err := k.PackWeights(c.oihw)
			require.NoError(t, err)
			out := asm.NewBuffer(s.OutH, s.OutH, s.OutC, i%2) // with and without a halo
			c.check(t, k, c.in, out, c.resArg(), packed, c.bias)
		}
	}
}

func TestSpecialisedKernelsCoverTheFamily(t *testing.T) {
	for _, tier := range asm.Tiers() {
		if tier == asm.Purego {
			continue
		}
		for _, s := range familyShapes() {
			_, err := asm.Conv(s, tier)
			assert.NoError(t, err)
		}
	}
}

func TestConvRejectsBadArguments(t *testing.T) {
	s := asm.ConvShape{K: 3, Stride: 1, Pad: 1, InC: 64, OutC: 64, InH: 56, OutH: 56}
	_, err := asm.Conv(asm.ConvShape{K: 3, Stride: 1, Pad: 1, InC: 64, OutC: 64, InH: 56, OutH: 55}, asm.Purego)
	assert.ErrorContains(t, err, "invalid convolution shape")
	for _, tier := range asm.Tiers() {
		k, err := asm.Conv(s, tier)
		require.NoError(t, err)
		_, err = k.PackWeights(make([]float32, 10))
		assert.ErrorContains(t, err, "10 weights, want 64×64×3×3")
		packed := make([]float32, 64*64*9)
		bias := make([]float32, 64)
		err = k.Run(asm.NewBuffer(56, 56, 64, 0), asm.NewBuffer(56, 56, 64, 0), nil, packed, bias, true)
		assert.ErrorContains(t, err, "input is 56x56x64 with halo 0, want 56x56x64 with halo ≥ 1")
		short := asm.NewBuffer(56, 56, 64, 1)
		short.Data = short.Data[:100]
		err = k.Run(short, asm.NewBuffer(56, 56, 64, 0), nil, packed, bias, true)
		assert.ErrorContains(t, err, "input holds 100 floats")
		err = k.Run(asm.NewBuffer(56, 56, 64, 1), asm.NewBuffer(28, 28, 64, 0), nil, packed, bias, true)
		assert.ErrorContains(t, err, "output is 28x28x64")
		err = k.Run(asm.NewBuffer(56, 56, 64, 1), asm.NewBuffer(56, 56, 64, 0), nil, packed, bias[:3], true)
		assert.ErrorContains(t, err, "3 biases")
	}
	if !asm.Has(asm.AVX512) {
		_, err := asm.Conv(s, asm.AVX512)
		assert.ErrorContains(t, err, "not available")
	}
}

// RunPart over any number of parts computes exactly what Run computes.
func TestConvRunPartCoversTheLayer(t *testing.T) {
	for i, s := range familyShapes() {
		if i%5 != 0 {
			continue // a spread of shapes keeps this quick
		}
		c := newConvCase(s, uint64(i))
		for _, tier := range asm.Tiers() {
			k, err := asm.Conv(s, tier)
			require.NoError(t, err)
			packed, err := k.PackWeights(c.oihw)
			require.NoError(t, err)
			whole := asm.NewBuffer(s.OutH, s.OutH, s.OutC, 1)
			require.NoError(t, k.Run(c.in, whole, c.resArg(), packed, c.bias, c.relu))
			for _, parts := range []int{2, 3, 5} {
				split := asm.NewBuffer(s.OutH, s.OutH, s.OutC, 1)
				require.NoError(t, k.Check(c.in, split, c.resArg(), packed, c.bias))
				for p := 0; p < parts; p++ {
					k.RunPart(c.in, split, c.resArg(), packed, c.bias, c.relu, p, parts)
				}
				require.Equal(t, whole.Data, split.Data, "%s in %d parts", k.Name, parts)
			}
		}
	}
}
