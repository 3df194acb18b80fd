package resnet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func planes(c, h, w int, data ...float64) Planes {
	p := Planes{Shape{c, h, w}, data}
	if len(data) != c*h*w {
		panic("test planes: wrong length")
	}
	return p
}

func seq(n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	return xs
}

func ones(n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = 1
	}
	return xs
}

// A 3x3 box filter over [[1 2 3] [4 5 6] [7 8 9]], sums worked out by hand.
func TestConv2DByHand(t *testing.T) {
	in := planes(1, 3, 3, seq(9)...)
	got := Conv2D(in, ones(9), 1, 3, 1, 1)
	assert.Equal(t, planes(1, 3, 3,
		1+2+4+5, 1+2+3+4+5+6, 2+3+5+6,
		1+2+4+5+7+8, 45, 2+3+5+6+8+9,
		4+5+7+8, 4+5+6+7+8+9, 5+6+8+9), got)

	got = Conv2D(in, ones(9), 1, 3, 2, 1) // stride 2 visits the corners
	assert.Equal(t, planes(1, 2, 2, 12, 16, 24, 28), got)

	got = Conv2D(in, ones(9), 1, 3, 1, 0) // no padding: only the centre
	assert.Equal(t, planes(1, 1, 1, 45), got)

	// 1x1, two input channels → three output channels: a matrix per pixel.
	in2 := planes(2, 1, 2, 1, 2, 10, 20) // channel 0: [1 2], channel 1: [10 20]
	w := []float64{1, 0, 0, 1, 2, -1}    // out0 = in0, out1 = in1, out2 = 2·in0 − in1
	assert.Equal(t, planes(3, 1, 2, 1, 2, 10, 20, -8, -16), Conv2D(in2, w, 3, 1, 1, 0))
	// An asymmetric kernel catches a flipped (correlation vs convolution) tap order.
	w3 := make([]float64, 9)
	w3[0] = 1 // top-left tap: out[y][x] = in[y−1][x−1]
	assert.Equal(t, planes(1, 3, 3, 0, 0, 0, 0, 1, 2, 0, 4, 5), Conv2D(in, w3, 1, 3, 1, 1))
}

// naiveConv is the convolution's definition with a bounds test on every
// tap; Conv2D clips its loops instead and must agree exactly.
func naiveConv(in Planes, w []float64, outC, k, s, p int) Planes {
	oh, ow := (in.H+2*p-k)/s+1, (in.W+2*p-k)/s+1
	out := NewPlanes(Shape{outC, oh, ow})
	for o := 0; o < outC; o++ {
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				sum := 0.0
				for i := 0; i < in.C; i++ {
					for ky := 0; ky < k; ky++ {
						for kx := 0; kx < k; kx++ {
							iy, ix := y*s-p+ky, x*s-p+kx
							if iy >= 0 && iy < in.H && ix >= 0 && ix < in.W {
								sum += w[((o*in.C+i)*k+ky)*k+kx] * in.At(i, iy, ix)
							}
						}
					}
				}
				out.Data[(o*oh+y)*ow+x] = sum
			}
		}
	}
	return out
}

func randPlanes(rng *rand.Rand, s Shape) Planes {
	p := NewPlanes(s)
	for i := range p.Data {
		p.Data[i] = rng.NormFloat64()
	}
	return p
}

func TestConv2DMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ inC, size, outC, k, s, p int }{
		{3, 15, 4, 7, 2, 3}, {3, 16, 4, 7, 2, 3}, {5, 9, 3, 3, 1, 1}, {5, 9, 3, 3, 2, 1},
		{4, 8, 6, 1, 1, 0}, {4, 7, 6, 1, 2, 0}, {2, 5, 2, 3, 1, 0},
	} {
		in := randPlanes(rng, Shape{c.inC, c.size, c.size})
		w := randPlanes(rng, Shape{c.outC * c.inC, c.k, c.k}).Data
		want := naiveConv(in, w, c.outC, c.k, c.s, c.p)
		got := Conv2D(in, w, c.outC, c.k, c.s, c.p)
		require.Equal(t, want.Shape, got.Shape, "%+v", c)
		assert.InDeltaSlice(t, want.Data, got.Data, 1e-12, "%+v: same sums, possibly in another order", c)
	}
}

func TestBatchNormReLUAddByHand(t *testing.T) {
	x := planes(2, 1, 2, 3, -1, 0, 4)
	BatchNorm(x, []float64{2, 1}, []float64{0.5, 0}, []float64{1, 0}, []float64{3, 1}, 1e-5)
	s := 2 / math.Sqrt(3+1e-5)
	assert.InDeltaSlice(t, []float64{2*s + 0.5, -2*s + 0.5, 0, 4 / math.Sqrt(1+1e-5)}, x.Data, 1e-15)

	y := planes(1, 1, 4, -2, -0.0, 0.5, 3)
	ReLU(y)
	assert.Equal(t, []float64{0, 0, 0.5, 3}, y.Data)

	a := planes(1, 1, 2, 1, 2)
	Add(a, planes(1, 1, 2, 10, -5))
	assert.Equal(t, []float64{11, -3}, a.Data)
	assert.Panics(t, func() { Add(a, planes(2, 1, 1, 1, 2)) })
}

func TestMaxPoolByHand(t *testing.T) {
	in := planes(1, 4, 4, seq(16)...)
	assert.Equal(t, planes(1, 2, 2, 6, 8, 14, 16), MaxPool(in, 3, 2, 1))
	// All-negative input: the padding must never win (PyTorch pads with −inf).
	neg := planes(1, 2, 2, -4, -3, -2, -1)
	assert.Equal(t, planes(1, 1, 1, -1), MaxPool(neg, 3, 2, 1))
	assert.Equal(t, Shape{64, 56, 56}, MaxPool(NewPlanes(Shape{64, 112, 112}), 3, 2, 1).Shape)
}

func TestGlobalAvgPoolAndLinearByHand(t *testing.T) {
	in := planes(2, 2, 2, 1, 2, 3, 4, -1, -1, -1, 5)
	assert.Equal(t, planes(2, 1, 1, 2.5, 0.5), GlobalAvgPool(in))
	// out0 = 1·2 + 2·3 + 0.5, out1 = −1·2 + 0·3 − 1
	assert.Equal(t, []float64{8.5, -3}, Linear([]float64{2, 3}, []float64{1, 2, -1, 0}, []float64{0.5, -1}))
}

// Option A against its definition: F.pad(x[:, :, ::2, ::2], (0,0,0,0,
// planes//4, planes//4)).
func TestSubsamplePadIsOptionA(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct{ inC, outC, size int }{{16, 32, 32}, {32, 64, 16}, {4, 8, 7}} {
		in := randPlanes(rng, Shape{c.inC, c.size, c.size})
		out := SubsamplePad(in, c.outC, 2)
		half := (c.size + 1) / 2 // len(range(0, size, 2))
		require.Equal(t, Shape{c.outC, half, half}, out.Shape)
		pad := c.outC / 4 // planes//4, planes = outC
		for o := 0; o < c.outC; o++ {
			for y := 0; y < half; y++ {
				for x := 0; x < half; x++ {
					want := 0.0
					if o >= pad && o < pad+c.inC {
						want = in.At(o-pad, 2*y, 2*x)
					}
					require.Equal(t, want, out.At(o, y, x), "%+v at %d,%d,%d", c, o, y, x)
				}
			}
		}
	}
}

// Folding BN into the conv gives the same function as conv then BN.
func TestFoldBNMatchesUnfolded(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const inC, outC, k = 5, 6, 3
	in := randPlanes(rng, Shape{inC, 9, 9})
	w32 := make([]float32, outC*inC*k*k)
	for i := range w32 {
		w32[i] = float32(rng.NormFloat64())
	}
	gamma, beta, mean, variance := make([]float32, outC), make([]float32, outC), make([]float32, outC), make([]float32, outC)
	for i := 0; i < outC; i++ {
		gamma[i], beta[i] = float32(0.5+rng.Float64()), float32(rng.NormFloat64())
		mean[i], variance[i] = float32(rng.NormFloat64()), float32(0.1+rng.Float64())
	}
	to64 := func(xs []float32) []float64 {
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = float64(x)
		}
		return out
	}
	want := Conv2D(in, to64(w32), outC, k, 1, 1)
	BatchNorm(want, to64(gamma), to64(beta), to64(mean), to64(variance), BNEpsilon)

	folded, bias := FoldBN(w32, gamma, beta, mean, variance, BNEpsilon)
	got := Conv2D(in, to64(folded), outC, k, 1, 1)
	maxAbs := 0.0
	for o := 0; o < outC; o++ {
		for i := o * 81; i < (o+1)*81; i++ {
			got.Data[i] += float64(bias[o])
			maxAbs = math.Max(maxAbs, math.Abs(want.Data[i]))
		}
	}
	// The folded weights and bias are rounded to float32 (relative error
	// 2^−24 each), summed over inC·k·k = 45 taps: 1e-6 of the largest output.
	for i := range want.Data {
		require.InDelta(t, want.Data[i], got.Data[i], 1e-6*maxAbs, "output %d", i)
	}
	assert.Panics(t, func() { FoldBN(w32, gamma[:5], beta, mean, variance, BNEpsilon) })
}

func TestReferenceRejectsBadInput(t *testing.T) {
	net := MustBuild("cifar-resnet20")
	w := RandomWeights(net, 1)
	r, err := NewReference(net, w)
	require.NoError(t, err)
	_, err = r.Forward(make([]float32, 100))
	assert.ErrorContains(t, err, "input has 100 values, want 3072 (3x32x32 CHW)")
	logits, err := r.Forward(RandomInput(net, 2))
	require.NoError(t, err)
	assert.Len(t, logits, 10)

	delete(w.Tensors, "layer3.2.bn2.running_var")
	_, err = NewReference(net, w)
	assert.ErrorContains(t, err, "missing tensors: layer3.2.bn2.running_var [64]")
}

// moduleForward follows the PyTorch module definitions (torchvision's
// resnet.py and the CIFAR nets' resnet.py), reading tensors by name and never
// looking at the layer list, so it checks the list's wiring independently.
func moduleForward(a Arch, w map[string][]float64, x Planes) []float64 {
	convBN := func(x Planes, conv, bn string, outC, k, s int) Planes {
		y := Conv2D(x, w[conv+".weight"], outC, k, s, k/2)
		BatchNorm(y, w[bn+".weight"], w[bn+".bias"], w[bn+".running_mean"], w[bn+".running_var"], 1e-5)
		return y
	}
	x = convBN(x, "conv1", "bn1", a.StemChannels, a.StemKernel, map[int]int{7: 2, 3: 1}[a.StemKernel])
	ReLU(x)
	if a.StemKernel == 7 {
		x = MaxPool(x, 3, 2, 1)
	}
	for s := range a.Blocks {
		for i := 0; i < a.Blocks[s]; i++ {
			p := fmt.Sprintf("layer%d.%d.", s+1, i)
			stride := 1
			if s > 0 && i == 0 {
				stride = 2
			}
			var out Planes
			if a.Block == Basic {
				out = convBN(x, p+"conv1", p+"bn1", a.Widths[s], 3, stride)
				ReLU(out)
				out = convBN(out, p+"conv2", p+"bn2", a.Widths[s], 3, 1)
			} else { // v1.5: stride on conv2
				out = convBN(x, p+"conv1", p+"bn1", a.Widths[s], 1, 1)
				ReLU(out)
				out = convBN(out, p+"conv2", p+"bn2", a.Widths[s], 3, stride)
				ReLU(out)
				out = convBN(out, p+"conv3", p+"bn3", 4*a.Widths[s], 1, 1)
			}
			identity := x
			if _, ok := w[p+"downsample.0.weight"]; ok {
				identity = convBN(x, p+"downsample.0", p+"downsample.1", out.C, 1, stride)
			} else if out.Shape != x.Shape {
				identity = SubsamplePad(x, out.C, stride)
			}
			Add(out, identity)
			ReLU(out)
			x = out
		}
	}
	return Linear(GlobalAvgPool(x).Data, w[a.FCName+".weight"], w[a.FCName+".bias"])
}

func TestReferenceMatchesModuleDefinitions(t *testing.T) {
	for _, name := range []string{"cifar-resnet20", "resnet18", "resnet50"} {
		a, err := Lookup(name)
		require.NoError(t, err)
		// The same layers on a smaller, rectangular image keep the test fast
		// and check that height and width are not mixed up.
		a.InputH, a.InputW = min(a.InputH, 64), min(a.InputW, 40)
		net, err := Build(a)
		require.NoError(t, err)
		w := RandomWeights(net, 9)
		r, err := NewReference(net, w)
		require.NoError(t, err)
		in := RandomInput(net, 10)
		got, err := r.Forward(in)
		require.NoError(t, err)
		x := NewPlanes(net.Input())
		for i, v := range in {
			x.Data[i] = float64(v)
		}
		want := moduleForward(a, r.w, x)
		assert.Equal(t, want, got, name)
		other, err := r.Forward(RandomInput(net, 11))
		require.NoError(t, err)
		assert.NotEqual(t, got, other, "%s: the logits depend on the input", name)
	}
}
