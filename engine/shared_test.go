package engine_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/cifar/resnet20"
	"github.com/resnetgen/resnetgen/resnet"
)

// packedOf lists the first element's address of every layer's packed
// weights: equal lists mean the same memory.
func packedOf(m *resnet20.Model) []*float32 {
	var ps []*float32
	for _, l := range m.Layers() {
		switch c := l.Layer.(type) {
		case *engine.Conv:
			if c.W != nil {
				ps = append(ps, &c.WPacked[0])
			} else {
				ps = append(ps, &c.Packed[0])
			}
		case *engine.FC:
			ps = append(ps, &c.W[0])
		}
	}
	return ps
}

// Models built with one Shared from the same weights hold one copy of the
// packed weights and compute what a Model of their own computes; Models of
// other weights get their own, never the first weights'.
func TestSharedWeights(t *testing.T) {
	net, err := resnet20.Network()
	require.NoError(t, err)
	w1, w2 := resnet.RandomWeights(net, 1), resnet.RandomWeights(net, 2)
	sh := engine.NewShared()
	a, err := resnet20.New(w1, engine.WithShared(sh), engine.WithWorkers(1))
	require.NoError(t, err)
	defer a.Close()
	n := sh.Len()
	require.Positive(t, n)
	b, err := resnet20.New(w1, engine.WithShared(sh), engine.WithWorkers(2), engine.WithBatch(4))
	require.NoError(t, err)
	defer b.Close()
	assert.Equal(t, n, sh.Len(), "a second Model of the same weights packed them again")
	assert.Equal(t, packedOf(a), packedOf(b), "the two Models hold separate copies")

	c, err := resnet20.New(w2, engine.WithShared(sh))
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, 2*n, sh.Len(), "other weights must be packed on their own")
	for i, p := range packedOf(c) {
		assert.NotSame(t, packedOf(a)[i], p, "layer %d of other weights shares the first weights' memory", i)
	}

	own1, err := resnet20.New(w1)
	require.NoError(t, err)
	defer own1.Close()
	own2, err := resnet20.New(w2)
	require.NoError(t, err)
	defer own2.Close()
	var in [resnet20.InputLen]float32
	copy(in[:], resnet.RandomInput(net, 3))
	var got, want [resnet20.Classes]float32
	for _, tc := range []struct {
		name      string
		m, single *resnet20.Model
	}{{"first", a, own1}, {"second", b, own1}, {"other weights", c, own2}} {
		tc.m.Forward(&in, &got)
		tc.single.Forward(&in, &want)
		assert.Equal(t, want, got, "%s Model: logits differ from an unshared Model's", tc.name)
	}
	own1.Forward(&in, &got)
	own2.Forward(&in, &want)
	assert.NotEqual(t, want, got, "the two weight sets must give different logits for this test to mean anything")
}
