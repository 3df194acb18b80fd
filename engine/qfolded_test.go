package engine

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/resnet"
)

// The int8 embedded weights give the int8 network the float32 weights
// give with the same calibration, bit for bit (the same int8 weights and
// scales), in a quarter of the bytes; a damaged file, another network's,
// and a float32 Model of them are refused.
func TestQuantizedWeightsRoundTrip(t *testing.T) {
	net := resnet.MustBuild("cifar-resnet20")
	w := resnet.RandomWeights(net, 1)
	ks := &asm.KernelSet{Int8: true} // the portable kernels, int8 included
	rng := rand.New(rand.NewPCG(1, 2))
	images := make([]float32, 4*net.Input().Len())
	for i := range images {
		images[i] = float32(rng.NormFloat64())
	}
	f, err := Fold(net, w)
	require.NoError(t, err)
	m, err := Interpret(f, ks, WithTier(asm.Purego), WithBatch(4))
	require.NoError(t, err)
	c, err := Calibrate(m, f, images, net.Input().Len(), 4, CalibrateOptions{})
	m.Close()
	require.NoError(t, err)
	logits := func(f *Folded, opts ...Option) []float32 {
		m, err := Interpret(f, ks, append([]Option{WithTier(asm.Purego), WithBatch(4)}, opts...)...)
		require.NoError(t, err)
		defer m.Close()
		out := make([]float32, 4*net.Arch.Classes)
		require.NoError(t, m.ForwardBatch(images, out))
		return out
	}
	f, err = Fold(net, w)
	require.NoError(t, err)
	want := logits(f, WithInt8(c))

	f, err = Fold(net, w)
	require.NoError(t, err)
	var q, fp bytes.Buffer
	require.NoError(t, WriteQuantized(&q, f, c))
	require.NoError(t, WriteFolded(&fp, f))
	t.Logf("int8 weights %d bytes, float32 %d", q.Len(), fp.Len())
	assert.Less(t, q.Len(), fp.Len()*30/100, "int8 weights are about a quarter of the float32 ones")
	info, err := FoldedInfo(q.Bytes())
	require.NoError(t, err)
	assert.Equal(t, quantFormat, info["format"])

	fq, err := ReadFolded(q.String(), net)
	require.NoError(t, err)
	require.NotNil(t, fq.Calibration)
	assert.Equal(t, c.Scales, fq.Calibration.Scales)
	assert.Equal(t, want, logits(fq, WithInt8(fq.Calibration)), "int8 from the embedded int8 weights")
	fq, err = ReadFolded(q.String(), net)
	require.NoError(t, err)
	assert.Equal(t, want, logits(fq, WithPrecision(Int8)), "the weights' own calibration by default")

	fq, err = ReadFolded(q.String(), net)
	require.NoError(t, err)
	_, err = Interpret(fq, ks, WithTier(asm.Purego))
	assert.ErrorContains(t, err, "runs in int8 only")

	damaged := []byte(q.String())
	damaged[len(damaged)-10] ^= 1
	_, err = ReadFolded(string(damaged), net)
	assert.ErrorContains(t, err, "damaged")
	_, err = ReadFolded(q.String(), resnet.MustBuild("cifar-resnet32"))
	assert.ErrorContains(t, err, "embedded weights are for cifar-resnet20")

	f, err = Fold(net, resnet.RandomWeights(net, 2))
	require.NoError(t, err)
	assert.ErrorContains(t, WriteQuantized(&q, f, c), "other weights")
}
