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

func poolLayers() []resnet.Layer {
	return resnet.DistinctLayers(resnet.OpMaxPool, resnet.OpGlobalAvgPool, resnet.OpFC)
}

func toPlanes(b asm.Buffer) resnet.Planes {
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

// Pooling is exact in float32 except for the average's summation, and the
// classifier is a dot product of up to 2048 terms: 1e-5 of the largest
// magnitude, as for the convolutions.
func TestPoolAndFCKernelsMatchReference(t *testing.T) {
	layers := poolLayers()
	require.Len(t, layers, 7, "1 max pool, 3 average pools, 3 classifiers")
	rng := rand.New(rand.NewPCG(11, 12))
	for _, l := range layers {
		for _, tier := range asm.Tiers() {
			switch l.Op {
			case resnet.OpMaxPool:
				k, err := asm.MaxPool(l.InShape.C, l.InShape.H, tier)
				require.NoError(t, err)
				in := asm.NewBuffer(l.InShape.H, l.InShape.W, l.InShape.C, 1)
				for y := 0; y < in.H; y++ {
					for x := 0; x < in.W; x++ {
						for c := 0; c < in.C; c++ {
							in.Data[in.Index(y, x, c)] = float32(math.Max(0, rng.NormFloat64())) // after a ReLU
						}
					}
				}
				out := asm.NewBuffer(l.OutShape.H, l.OutShape.W, l.OutShape.C, 1)
				for i := range out.Data {
					out.Data[i] = sentinel
				}
				require.NoError(t, k.Run(in, out))
				want := resnet.MaxPool(toPlanes(in), 3, 2, 1)
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
			case resnet.OpGlobalAvgPool:
				k, err := asm.AvgPool(l.InShape.C, l.InShape.H, tier)
				require.NoError(t, err)
				in := asm.NewBuffer(l.InShape.H, l.InShape.W, l.InShape.C, 1)
				for i := range in.Data {
					in.Data[i] = float32(rng.NormFloat64())
				}
				out := make([]float32, l.InShape.C)
				require.NoError(t, k.Run(in, out))
				want := resnet.GlobalAvgPool(toPlanes(in))
				for c := range out {
					require.InDelta(t, want.Data[c], out[c], 1e-5*4, "%s channel %d", k.Name, c)
				}
			case resnet.OpFC:
				k, err := asm.FC(l.InShape.C, l.OutShape.C, tier)
				require.NoError(t, err)
				w, b, in := make([]float32, l.OutShape.C*l.InShape.C), make([]float32, l.OutShape.C), make([]float32, l.InShape.C)
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
				scale := 0.0
				for _, v := range want {
					scale = math.Max(scale, math.Abs(v))
				}
				for o := range want {
					require.InDelta(t, want[o], out[o], 1e-5*scale, "%s output %d", k.Name, o)
				}
				for _, v := range out[len(want):] {
					require.Zero(t, v, "%s: padding outputs", k.Name)
				}
				assert.ErrorContains(t, k.Run(in[:1], pw, pb, out), "input 1")
			}
		}
	}
}
