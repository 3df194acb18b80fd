package onnx

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/onnx/onnxpb"
)

// These tests write ModelProtos the way torch.onnx.export (torch 1.13) lays
// them out — raw_data initializers, one node
// per op in forward order, equal initializers stored once and reached
// through Identity nodes — so they run without torch. Real exports of
// torchvision's ResNets are read in cmd/resnet's TestTorchvisionInterop.

// exportedInits collects initializers as the exporter stores them: a tensor
// equal to one already stored is not stored again; an Identity node at the
// start of the graph gives it its name.
type exportedInits struct {
	inits      []*onnxpb.TensorProto
	identities []*onnxpb.NodeProto
	stored     map[string]string // dims and raw data → stored name
}

func (e *exportedInits) add(name string, dims []int, data []float32) {
	t := tensorProto(name, dims, data)
	key := fmt.Sprint(dims) + string(t.RawData)
	if e.stored == nil {
		e.stored = map[string]string{}
	}
	if first, ok := e.stored[key]; ok {
		e.identities = append(e.identities, nodeProto("Identity", "Identity_"+name, []string{first}, []string{name}, nil))
		return
	}
	e.stored[key] = name
	e.inits = append(e.inits, t)
}

// model returns the ModelProto of nodes, Identity nodes first as torch
// writes them.
func (e *exportedInits) model(nodes []*onnxpb.NodeProto) []byte {
	return modelProto(append(e.identities, nodes...), e.inits)
}

// tensorProto is a float initializer in raw_data, as torch writes them.
func tensorProto(name string, dims []int, data []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, x := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	t := &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(typeFloat), RawData: raw}
	for _, d := range dims {
		t.Dims = append(t.Dims, int64(d))
	}
	return t
}

func nodeProto(op, name string, inputs, outputs []string, intAttrs map[string]int64) *onnxpb.NodeProto {
	n := &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: inputs, Output: outputs}
	for _, k := range slices.Sorted(maps.Keys(intAttrs)) {
		n.Attribute = append(n.Attribute, &onnxpb.AttributeProto{
			Name: proto.String(k), I: proto.Int64(intAttrs[k]), Type: onnxpb.AttributeProto_INT.Enum()})
	}
	return n
}

func modelProto(nodes []*onnxpb.NodeProto, inits []*onnxpb.TensorProto) []byte {
	b, err := proto.Marshal(&onnxpb.ModelProto{
		IrVersion: proto.Int64(8),
		Graph:     &onnxpb.GraphProto{Node: nodes, Initializer: inits},
	})
	if err != nil {
		panic(err) // only for messages these helpers build
	}
	return b
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
	var nodes []*onnxpb.NodeProto
	var inits exportedInits
	x := "input"
	for i, c := range forwardOrder(net.Arch, w) {
		conv, bn := w.Tensors[c[0]+".weight"], c[1]
		folded, bias := resnet.FoldBN(conv.Data, w.Tensors[bn+".weight"].Data, w.Tensors[bn+".bias"].Data,
			w.Tensors[bn+".running_mean"].Data, w.Tensors[bn+".running_var"].Data, resnet.BNEpsilon)
		wn, bn2 := fmt.Sprintf("onnx::Conv_%d", 500+2*i), fmt.Sprintf("onnx::Conv_%d", 501+2*i)
		inits.add(wn, conv.Shape, folded)
		inits.add(bn2, []int{len(bias)}, bias)
		out := fmt.Sprintf("/%s/Conv_output_0", c[0])
		nodes = append(nodes, nodeProto("Conv", "/"+c[0]+"/Conv", []string{x, wn, bn2}, []string{out}, nil),
			nodeProto("Relu", "/"+c[0]+"/Relu", []string{out}, []string{out + "_relu"}, nil))
		x = out + "_relu"
	}
	fc := net.Arch.FCName
	inits.add(fc+".weight", w.Tensors[fc+".weight"].Shape, w.Tensors[fc+".weight"].Data)
	inits.add(fc+".bias", w.Tensors[fc+".bias"].Shape, w.Tensors[fc+".bias"].Data)
	nodes = append(nodes, nodeProto("Gemm", "/fc/Gemm", []string{x, fc + ".weight", fc + ".bias"}, []string{"logits"},
		map[string]int64{"transB": 1}))
	return inits.model(nodes)
}

// sameBN gives every BatchNorm of the stage-1 blocks as wide as the first
// one the first one's parameters, so an export stores them once (as for untrained networks).
func sameBN(w *resnet.Weights) {
	for _, name := range w.Names() {
		if strings.HasPrefix(name, "layer1.") && strings.Contains(name, ".bn") {
			src := w.Tensors["layer1.0.bn1"+name[strings.LastIndex(name, "."):]]
			if len(src.Data) == len(w.Tensors[name].Data) {
				w.Tensors[name].Data = slices.Clone(src.Data)
			}
		}
	}
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
		a.InputH, a.InputW = min(a.InputH, 64), min(a.InputW, 64) // the same layers, a faster reference
		net, err := resnet.Build(a)
		require.NoError(t, err)
		orig := resnet.RandomWeights(net, 5)
		sameBN(orig)
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
	sameBN(w)
	var inits exportedInits
	for _, name := range w.Names() {
		inits.add(name, w.Tensors[name].Shape, w.Tensors[name].Data)
	}
	require.NotEmpty(t, inits.identities, "the fixture should exercise deduplicated initializers")
	inits.add("bn1.num_batches_tracked", nil, []float32{0})
	inits.add("onnx::Constant_7", []int{1}, []float32{42}) // the exporter's own constants are not parameters
	path := filepath.Join(t.TempDir(), "resnet20.onnx")
	require.NoError(t, os.WriteFile(path, inits.model(
		[]*onnxpb.NodeProto{nodeProto("Conv", "c", []string{"input", "conv1.weight"}, []string{"y"}, nil)}), 0o644))
	got, err := Load(path, net)
	require.NoError(t, err)
	assert.Equal(t, w, got)

	_, err = Load(filepath.Join(t.TempDir(), "missing.onnx"), net)
	assert.ErrorContains(t, err, "missing.onnx")
	require.NoError(t, os.WriteFile(path, []byte("garbage"), 0o644))
	_, err = Load(path, net)
	assert.Error(t, err)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.ReaderAt
	n int64
}

func (c *countingReader) ReadAt(b []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(b, off)
	c.n += int64(n)
	return n, err
}

// ReadModelAt reads the graph and not the initializers' values, which
// Weights then reads, each once; what it returns equals ReadModel's.
func TestReadModelAtLeavesTheValuesInTheFile(t *testing.T) {
	net := resnet.MustBuild("resnet18")
	w := resnet.RandomWeights(net, 8)
	b := foldedExport(net, w)
	r := &countingReader{r: bytes.NewReader(b)}
	m, err := ReadModelAt(r, int64(len(b)))
	require.NoError(t, err)
	assert.Less(t, r.n, int64(len(b)/100), "ReadModelAt read %d of %d bytes", r.n, len(b))
	for _, x := range m.Initializers {
		require.Nil(t, x.Float, "%s was read", x.Name)
	}
	r.n = 0
	got, err := Weights(m, net)
	require.NoError(t, err)
	assert.InDelta(t, len(b), r.n, float64(len(b))/100, "Weights read each value once")
	full, err := ReadModel(b)
	require.NoError(t, err)
	want, err := Weights(full, net)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	// Every value is where the file was: a file cut short is an error
	// when the values are read, if not before.
	cut := b[:len(b)-1]
	if m, err := ReadModelAt(bytes.NewReader(cut), int64(len(cut))); err == nil {
		_, err = Weights(m, net)
		assert.Error(t, err)
	}
}
