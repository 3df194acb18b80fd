package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet"
)

// Calibrate by the largest magnitude gives every tensor its own maximum,
// as the float64 reference computes it layer by layer — also the tensors
// whose buffers later layers reuse (the max pool's, a block's first conv's).
func TestCalibrateSeesEveryLayersOwnOutput(t *testing.T) {
	for _, c := range []struct {
		arch string
		side int
	}{{"resnet18", 64}, {"cifar-resnet20", 32}} {
		t.Run(c.arch, func(t *testing.T) {
			a, err := resnet.Lookup(c.arch)
			require.NoError(t, err)
			a.InputH, a.InputW = c.side, c.side
			net, err := resnet.Build(a)
			require.NoError(t, err)
			w := resnet.RandomWeights(net, 3)
			f, err := Fold(net, w)
			require.NoError(t, err)
			ref, err := resnet.NewReference(net, w)
			require.NoError(t, err)
			const images = 3
			var x []float32
			maxOf := make([]float64, len(net.Values))
			for i := range images {
				in := resnet.RandomInput(net, uint64(10+i))
				x = append(x, in...)
				acts, err := ref.Activations(in)
				require.NoError(t, err)
				for v, p := range acts {
					for _, y := range p.Data {
						maxOf[v] = math.Max(maxOf[v], math.Abs(y))
					}
				}
			}
			// Batches of 2 over 3 images on 2 workers: grouped steps, a
			// partial batch.
			m, err := Interpret(f, nil, WithBatch(2), WithWorkers(2))
			require.NoError(t, err)
			defer m.Close()
			cal, err := Calibrate(m, f, x, net.Input().Len(), 2, CalibrateOptions{Method: ScaleMax})
			require.NoError(t, err)
			checked := 0
			for _, l := range net.Layers {
				s, ok := cal.Scales[l.Name]
				if !ok {
					continue
				}
				levels := 255.0
				if l.Op == resnet.OpConv && !l.ReLU {
					levels = 127
				}
				assert.InEpsilon(t, maxOf[l.Out], float64(s)*levels, 1e-4, "%s", l.Name)
				checked++
			}
			assert.Equal(t, len(cal.Scales), checked)
			assert.Greater(t, checked, 10)
		})
	}
}
