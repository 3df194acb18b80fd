package engine_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/cifar/resnet20"
	"github.com/resnetgen/resnetgen/resnet"
)

// A batch runs a prefix of the layers a group of images at a time (one
// image per worker: 5 images on 2 workers are 3 groups) and the rest once
// over the whole batch; the prefix is the layers whose weights are lighter
// than one image's activations (Winograd layers: whose transformed weights
// stay in a core's cache, under 512 KiB, or that run in several chunks per
// image anyway), and ends at the first that is not.
func TestScheduleGroupsTheFirstStages(t *testing.T) {
	net, err := resnet20.Network()
	require.NoError(t, err)
	for _, conv := range []engine.Algorithm{engine.Direct, engine.Winograd} {
		m, err := resnet20.New(resnet.RandomWeights(net, 1), engine.WithWorkers(2), engine.WithBatch(5), engine.WithConv(conv))
		require.NoError(t, err)
		layers := m.Layers()
		runs := make([]int, len(layers))
		m.Trace(func(i int, _ time.Duration) { runs[i]++ })
		in, out := make([]float32, 5*resnet20.InputLen), make([]float32, 5*resnet20.Classes)
		require.NoError(t, m.ForwardBatch(in, out))
		prefix := 0
		for prefix < len(runs) && runs[prefix] == 3 {
			prefix++
		}
		require.Positive(t, prefix, "%v: no layer ran image group by group: %v", conv, runs)
		for i, r := range runs[prefix:] {
			require.Equal(t, 1, r, "%v: %s after the grouped prefix ran %d times: %v", conv, layers[prefix+i].Name, r, runs)
		}
		for _, l := range layers[:prefix] {
			if c, ok := l.Layer.(*engine.Conv); ok && c.W != nil {
				require.True(t, 4*len(c.WPacked) < 512<<10 || c.W.Chunks() > 1, "%v: %s is grouped though a batch would share its weights", conv, l.Name)
			} else if ok {
				act := c.In[0].Len() + c.Out[0].Len()
				require.Less(t, len(c.Packed)+len(c.WPacked), act, "%v: %s is grouped though its weights outweigh an image's activations", conv, l.Name)
			}
		}
		require.Less(t, prefix, len(layers), "%v: every layer ran group by group, the classifier too", conv)
		first := layers[prefix]
		c, ok := first.Layer.(*engine.Conv)
		require.True(t, ok, "%v: the batch-wide layers start at %s, not a convolution", conv, first.Name)
		if c.W != nil {
			require.True(t, 4*len(c.WPacked) >= 512<<10 && c.W.Chunks() == 1, "%v: %s runs batch-wide though a batch would not share its weights", conv, first.Name)
		} else {
			require.GreaterOrEqual(t, len(c.Packed), c.In[0].Len()+c.Out[0].Len(), "%v: %s runs batch-wide with light weights", conv, first.Name)
		}

		clear(runs)
		var x [resnet20.InputLen]float32
		var logits [resnet20.Classes]float32
		m.Forward(&x, &logits)
		for i, r := range runs {
			require.Equal(t, 1, r, "Forward ran %s %d times", layers[i].Name, r)
		}
		m.Close()
	}
}
