package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/safetensors"
)

// Fold folds each layer when asked, bit for bit as resnet.FoldBN, and
// holds the same tensors (so the same digest, for Shared) as folded
// weights read whole; release takes a layer out.
func TestFoldIsFoldBNLayerByLayer(t *testing.T) {
	net := resnet.MustBuild("cifar-resnet20")
	w := resnet.RandomWeights(net, 9)
	f, err := Fold(net, w)
	require.NoError(t, err)
	whole := map[string]*resnet.Tensor{}
	for _, l := range net.Layers {
		switch l.Op {
		case resnet.OpConv:
			t := w.Tensors
			wt, bias := resnet.FoldBN(t[l.Weight].Data, t[l.BN+".weight"].Data, t[l.BN+".bias"].Data,
				t[l.BN+".running_mean"].Data, t[l.BN+".running_var"].Data, resnet.BNEpsilon)
			whole[l.Name+".weight"] = &resnet.Tensor{Shape: t[l.Weight].Shape, Data: wt}
			whole[l.Name+".bias"] = &resnet.Tensor{Shape: []int{len(bias)}, Data: bias}
		case resnet.OpFC:
			whole[l.Weight], whole[l.Bias] = w.Tensors[l.Weight], w.Tensors[l.Bias]
		}
	}
	stored := &Folded{Net: net, stored: whole}
	require.Equal(t, stored.names(), f.names())
	for _, name := range f.names() {
		assert.Equal(t, whole[name], f.tensor(name), name)
		assert.Equal(t, whole[name].Shape, f.shape(name), name)
	}
	assert.Equal(t, stored.digest(), f.digest(), "a Shared must see the same weights from a file and embedded")
	for _, name := range []string{"layer1.0.bn1.weight", "conv1", "nothing.weight"} {
		assert.Nil(t, f.tensor(name), name)
		assert.Nil(t, f.shape(name), name)
	}

	var a, b bytes.Buffer
	require.NoError(t, WriteFolded(&a, f))
	require.NoError(t, WriteFolded(&b, stored))
	assert.Equal(t, a.Bytes(), b.Bytes())

	n := len(whole) // stored's map: release takes from it
	for _, g := range []*Folded{f, stored} {
		g.release("layer2.1.conv1")
		g.release("linear")
		assert.Nil(t, g.tensor("layer2.1.conv1.weight"))
		assert.Nil(t, g.shape("layer2.1.conv1.bias"))
		assert.Nil(t, g.tensor("linear.weight"))
		assert.NotNil(t, g.tensor("layer2.1.conv2.weight"))
		assert.Len(t, g.names(), n-4)
	}
	assert.NotContains(t, f.src, "layer2.1.bn1.running_var", "the checkpoint's tensors of a released layer are let go")
}

// ReadFolded refuses embedded weights that are damaged, for another
// network, or hold NaN, naming the tensor.
func TestReadFoldedRefuses(t *testing.T) {
	net := resnet.MustBuild("cifar-resnet20")
	f, err := Fold(net, resnet.RandomWeights(net, 3))
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, WriteFolded(&b, f))
	good := b.Bytes()

	damaged := bytes.Clone(good)
	damaged[len(damaged)-5] ^= 1
	_, err = ReadFolded(string(damaged), net)
	assert.ErrorContains(t, err, "the file is damaged")
	_, err = ReadFolded(string(good), resnet.MustBuild("cifar-resnet32"))
	assert.ErrorContains(t, err, "embedded weights are for cifar-resnet20")

	// NaN, with the checksum made for it.
	w := resnet.NewWeights()
	for _, name := range f.names() {
		x := f.tensor(name)
		w.Set(name, x.Shape, slices.Clone(x.Data))
	}
	w.Tensors["layer3.2.conv2.weight"].Data[7] = float32(math.NaN())
	sum := sha256.New()
	require.NoError(t, safetensors.WriteData(sum, w))
	b.Reset()
	require.NoError(t, safetensors.WriteMetadata(&b, w, map[string]string{"format": foldedFormat, "version": foldedVersion,
		"arch": "cifar-resnet20", "input": "32x32", "classes": "10", "sha256": hex.EncodeToString(sum.Sum(nil))}))
	_, err = ReadFolded(b.String(), net)
	assert.ErrorContains(t, err, "1 tensors with NaN or Inf: layer3.2.conv2.weight")
	var v *resnet.ValidationError
	assert.ErrorAs(t, err, &v)
}
