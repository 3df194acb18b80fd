package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/resnetgen/resnetgen/resnet"
)

// No torch here to export a real ResNet, so these tests write ModelProtos
// the way torch.onnx.export lays them out (field numbers of onnx.proto,
// raw_data initializers, one node per op in forward order). Reading real
// ONNX bytes is covered by the node tests from libonnx-testdata.

func tensorProto(name string, dims []int, data []float32) []byte {
	var b []byte
	for _, d := range dims {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d))
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, typeFloat)
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	b = protowire.AppendString(b, name)
	raw := make([]byte, 4*len(data))
	for i, x := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

func nodeProto(op, name string, inputs, outputs []string, intAttrs map[string]int64) []byte {
	var b []byte
	for _, s := range inputs {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, s := range outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendString(b, op)
	for k, v := range intAttrs {
		var a []byte
		a = protowire.AppendTag(a, 1, protowire.BytesType)
		a = protowire.AppendString(a, k)
		a = protowire.AppendTag(a, 3, protowire.VarintType)
		a = protowire.AppendVarint(a, uint64(v))
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, a)
	}
	return b
}

func modelProto(nodes, inits [][]byte) []byte {
	var g []byte
	for _, n := range nodes {
		g = protowire.AppendTag(g, 1, protowire.BytesType)
		g = protowire.AppendBytes(g, n)
	}
	for _, t := range inits {
		g = protowire.AppendTag(g, 5, protowire.BytesType)
		g = protowire.AppendBytes(g, t)
	}
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, 8)
	m = protowire.AppendTag(m, 7, protowire.BytesType)
	return protowire.AppendBytes(m, g)
}

// forwardOrder lists a torchvision ResNet's convolutions as its forward()
// runs them, from the module definitions: stem, then per block conv1,
// conv2, (conv3), (downsample.0).
func forwardOrder(a resnet.Arch, w *resnet.Weights) [][2]string {
	order := [][2]string{{"conv1", "bn1"}}
	for s, n := range a.Blocks {
		for i := 0; i < n; i++ {
			p := fmt.Sprintf("layer%d.%d.", s+1, i)
			for _, c := range []string{"conv1", "conv2", "conv3"} {
				if _, ok := w.Tensors[p+c+".weight"]; ok {
					order = append(order, [2]string{p + c, p + "bn" + c[4:]})
				}
			}
			if _, ok := w.Tensors[p+"downsample.0.weight"]; ok {
				order = append(order, [2]string{p + "downsample.0", p + "downsample.1"})
			}
		}
	}
	return order
}

// foldedExport writes an ONNX model with BatchNorm folded into the convs
// under generated initializer names, as the exporter's constant folding does.
func foldedExport(net *resnet.Network, w *resnet.Weights) []byte {
	var nodes, inits [][]byte
	x := "input"
	for i, c := range forwardOrder(net.Arch, w) {
		conv, bn := w.Tensors[c[0]+".weight"], c[1]
		folded, bias := resnet.FoldBN(conv.Data, w.Tensors[bn+".weight"].Data, w.Tensors[bn+".bias"].Data,
			w.Tensors[bn+".running_mean"].Data, w.Tensors[bn+".running_var"].Data, resnet.BNEpsilon)
		wn, bn2 := fmt.Sprintf("onnx::Conv_%d", 500+2*i), fmt.Sprintf("onnx::Conv_%d", 501+2*i)
		inits = append(inits, tensorProto(wn, conv.Shape, folded), tensorProto(bn2, []int{len(bias)}, bias))
		out := fmt.Sprintf("/%s/Conv_output_0", c[0])
		nodes = append(nodes, nodeProto("Conv", "/"+c[0]+"/Conv", []string{x, wn, bn2}, []string{out}, nil),
			nodeProto("Relu", "/"+c[0]+"/Relu", []string{out}, []string{out + "_relu"}, nil))
		x = out + "_relu"
	}
	fc := net.Arch.FCName
	inits = append(inits, tensorProto(fc+".weight", w.Tensors[fc+".weight"].Shape, w.Tensors[fc+".weight"].Data),
		tensorProto(fc+".bias", w.Tensors[fc+".bias"].Shape, w.Tensors[fc+".bias"].Data))
	nodes = append(nodes, nodeProto("Gemm", "/fc/Gemm", []string{x, fc + ".weight", fc + ".bias"}, []string{"logits"},
		map[string]int64{"transB": 1}))
	return modelProto(nodes, inits)
}

func logits(t *testing.T, net *resnet.Network, w *resnet.Weights) []float64 {
	r, err := resnet.NewReference(net, w)
	require.NoError(t, err)
	out, err := r.Forward(resnet.RandomInput(net, 3))
	require.NoError(t, err)
	return out
}

func TestFoldedExportGivesTheSameNetwork(t *testing.T) {
	for _, name := range []string{"cifar-resnet20", "resnet18", "resnet50"} {
		a, err := resnet.Lookup(name)
		require.NoError(t, err)
		a.InputSize = min(a.InputSize, 64) // the same layers, a faster reference
		net, err := resnet.Build(a)
		require.NoError(t, err)
		orig := resnet.RandomWeights(net, 5)
		m, err := ReadModel(foldedExport(net, orig))
		require.NoError(t, err)
		got, err := Weights(m, net)
		require.NoError(t, err, name)
		require.NoError(t, got.Validate(net))
		want, have := logits(t, net, orig), logits(t, net, got)
		scale := 0.0
		for _, v := range want {
			scale = math.Max(scale, math.Abs(v))
		}
		for i := range want {
			assert.InDelta(t, want[i], have[i], 1e-5*scale, "%s logit %d", name, i)
		}
		// The same graph does not fit a deeper network, and says why.
		deeper := resnet.MustBuild(map[string]string{"cifar-resnet20": "cifar-resnet32", "resnet18": "resnet34", "resnet50": "resnet101"}[name])
		_, err = Weights(m, deeper)
		assert.ErrorContains(t, err, "Conv nodes")
	}
}

func TestNamedExportAndFiles(t *testing.T) {
	net := resnet.MustBuild("cifar-resnet20")
	w := resnet.RandomWeights(net, 6)
	var inits [][]byte
	for _, name := range w.Names() {
		inits = append(inits, tensorProto(name, w.Tensors[name].Shape, w.Tensors[name].Data))
	}
	inits = append(inits, tensorProto("bn1.num_batches_tracked", nil, []float32{0}))
	path := filepath.Join(t.TempDir(), "resnet20.onnx")
	require.NoError(t, os.WriteFile(path, modelProto(
		[][]byte{nodeProto("Conv", "c", []string{"input", "conv1.weight"}, []string{"y"}, nil)}, inits), 0o644))
	got, err := Load(path, net)
	require.NoError(t, err)
	assert.Equal(t, w, got)

	_, err = Load(filepath.Join(t.TempDir(), "missing.onnx"), net)
	assert.ErrorContains(t, err, "missing.onnx")
	require.NoError(t, os.WriteFile(path, []byte("garbage"), 0o644))
	_, err = Load(path, net)
	assert.Error(t, err)
}
