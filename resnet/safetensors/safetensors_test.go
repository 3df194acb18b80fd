package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet"
)

// No safetensors library or file is at hand here (PyPI is out of reach), so
// these tests write files by the format's specification: the 8-byte header
// length, the JSON header, the data. The reader is checked against that
// layout, its dtypes and its limits.

type tensor struct {
	name, dtype string
	shape       []int
	raw         []byte
}

func f32(xs ...float32) []byte {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func encode(t testing.TB, ts []tensor, metadata map[string]string) []byte {
	header := map[string]any{}
	if metadata != nil {
		header["__metadata__"] = metadata
	}
	var data []byte
	for _, x := range ts {
		header[x.name] = map[string]any{"dtype": x.dtype, "shape": x.shape, "data_offsets": []int{len(data), len(data) + len(x.raw)}}
		data = append(data, x.raw...)
	}
	h, err := json.Marshal(header)
	require.NoError(t, err)
	for len(h)%8 != 0 {
		h = append(h, ' ') // the reference writer pads the header to 8 bytes
	}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(h)))
	b.Write(h)
	b.Write(data)
	return b.Bytes()
}

func read(b []byte) (*resnet.Weights, error) { return Read(bytes.NewReader(b), int64(len(b))) }

func sample(t testing.TB) []byte {
	return encode(t, []tensor{
		{"conv.weight", "F32", []int{2, 2}, f32(1, -2, 3.5, 4)},
		{"bn.bias", "F16", []int{2}, []byte{0x00, 0x3c, 0x00, 0xc0}},    // 1, −2
		{"bn.weight", "BF16", []int{2}, []byte{0x80, 0x3f, 0xc0, 0xbf}}, // 1, −1.5
		{"fc.bias", "F64", []int{1}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.25))},
		{"bn.num_batches_tracked", "I64", []int{}, make([]byte, 8)},
	}, map[string]string{"format": "pt"})
}

func TestReadsEveryFloatingDtype(t *testing.T) {
	w, err := read(sample(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"bn.bias", "bn.weight", "conv.weight", "fc.bias"}, w.Names())
	assert.Equal(t, &resnet.Tensor{Shape: []int{2, 2}, Data: []float32{1, -2, 3.5, 4}}, w.Tensors["conv.weight"])
	assert.Equal(t, []float32{1, -2}, w.Tensors["bn.bias"].Data)
	assert.Equal(t, []float32{1, -1.5}, w.Tensors["bn.weight"].Data)
	assert.Equal(t, []float32{0.25}, w.Tensors["fc.bias"].Data)
}

// A whole network's weights survive the trip and fit the network.
func TestWholeNetwork(t *testing.T) {
	net := resnet.MustBuild("cifar-resnet20")
	w := resnet.RandomWeights(net, 7)
	var ts []tensor
	for _, name := range w.Names() {
		x := w.Tensors[name]
		ts = append(ts, tensor{name, "F32", x.Shape, f32(x.Data...)})
	}
	path := filepath.Join(t.TempDir(), "resnet20.safetensors")
	require.NoError(t, os.WriteFile(path, encode(t, ts, nil), 0o644))
	got, err := Load(path)
	require.NoError(t, err)
	require.NoError(t, got.Validate(net))
	assert.Equal(t, w, got)
}

func TestBadFilesAreRefused(t *testing.T) {
	good := sample(t)
	for n := 0; n < len(good); n++ {
		w, err := read(good[:n])
		assert.Error(t, err, "prefix of %d bytes", n)
		assert.Nil(t, w)
	}
	cases := map[string][]byte{
		"header length 9999":                         func() []byte { b := bytes.Clone(good); binary.LittleEndian.PutUint64(b, 9999); return b }(),
		"not a JSON object":                          encodeRawHeader(`[1,2]`),
		"unknown dtype":                              encode(t, []tensor{{"x", "F8_E4M3", []int{1}, []byte{0}}}, nil),
		"want a floating":                            encode(t, []tensor{{"x.weight", "I32", []int{1}, make([]byte, 4)}}, nil),
		"4 data bytes for shape [2] of F32 (want 8)": encode(t, []tensor{{"x", "F32", []int{2}, make([]byte, 4)}}, nil),
		"no floating-point tensors":                  encode(t, nil, map[string]string{"a": "b"}),
	}
	for want, b := range cases {
		_, err := read(b)
		assert.ErrorContains(t, err, want)
	}
	_, err := Load("testdata/missing.safetensors")
	assert.ErrorContains(t, err, "missing.safetensors")
}

func encodeRawHeader(h string) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(h)))
	b.WriteString(h)
	return b.Bytes()
}

func FuzzRead(f *testing.F) {
	f.Add(sample(f))
	f.Add(encodeRawHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}` + "\x00\x00\x80\x3f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := read(b)
		if err != nil {
			return
		}
		for name, x := range w.Tensors {
			n := 1
			for _, d := range x.Shape {
				n *= d
			}
			if n != len(x.Data) {
				t.Fatalf("%s: shape %v with %d values", name, x.Shape, len(x.Data))
			}
		}
	})
}

func TestWriteReadsBack(t *testing.T) {
	net := resnet.MustBuild("resnet18")
	w := resnet.RandomWeights(net, 8)
	var b bytes.Buffer
	require.NoError(t, Write(&b, w))
	got, err := read(b.Bytes())
	require.NoError(t, err)
	assert.Equal(t, w, got)
}
