package resnet

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateNamesEveryProblem(t *testing.T) {
	net := MustBuild("cifar-resnet20")
	w := RandomWeights(net, 1)
	require.NoError(t, w.Validate(net))

	delete(w.Tensors, "layer2.1.conv2.weight")
	w.Set("layer2.1.bn1.bias", []int{16}, make([]float32, 16))
	w.Set("fc.weight", []int{10, 64}, make([]float32, 640))
	w.Tensors["linear.bias"].Data[3] = float32(math.NaN())
	w.Tensors["layer1.0.bn1.running_var"].Data[0] = float32(math.Inf(1))

	err := w.Validate(net)
	var v *ValidationError
	require.ErrorAs(t, err, &v)
	assert.Equal(t, []TensorSpec{{"layer2.1.conv2.weight", []int{32, 32, 3, 3}, true}}, v.Missing)
	assert.Equal(t, []string{"fc.weight"}, v.Unexpected)
	assert.Equal(t, []ShapeMismatch{{"layer2.1.bn1.bias", []int{32}, []int{16}}}, v.WrongShape)
	assert.Equal(t, []string{"layer1.0.bn1.running_var", "linear.bias"}, v.NonFinite)
	msg := err.Error()
	for _, want := range []string{
		"weights do not fit cifar-resnet20",
		"1 tensors with the wrong shape: layer2.1.bn1.bias is [16], want [32]",
		"1 missing tensors: layer2.1.conv2.weight [32 32 3 3]",
		"1 unexpected tensors: fc.weight",
		"2 tensors with NaN or Inf: layer1.0.bn1.running_var, linear.bias",
	} {
		assert.Contains(t, msg, want)
	}
}

func TestWeightsSetChecksLength(t *testing.T) {
	w := NewWeights()
	assert.Panics(t, func() { w.Set("x", []int{2, 3}, make([]float32, 5)) })
	w.Set("b", []int{2}, []float32{1, 2})
	w.Set("a", []int{}, []float32{3}) // a scalar
	assert.Equal(t, []string{"a", "b"}, w.Names())
}

func TestRandomWeightsAreDeterministicAndFit(t *testing.T) {
	for _, name := range []string{"resnet50", "plain18", "cifar-resnet56"} {
		net := MustBuild(name)
		a, b := RandomWeights(net, 42), RandomWeights(net, 42)
		require.NoError(t, a.Validate(net), name)
		assert.Equal(t, a, b, name)
		assert.NotEqual(t, a.Tensors["conv1.weight"].Data, RandomWeights(net, 43).Tensors["conv1.weight"].Data)
	}
}

func TestHalfAndBFloat16(t *testing.T) {
	for h, want := range map[uint16]float32{
		0x3c00: 1, 0xc000: -2, 0x3555: 0.33325195, 0x7bff: 65504, 0x0001: 5.9604645e-8, 0x8000: float32(math.Copysign(0, -1)),
	} {
		assert.Equal(t, want, HalfToFloat32(h), "%#04x", h)
	}
	assert.True(t, math.IsInf(float64(HalfToFloat32(0x7c00)), 1))
	assert.True(t, math.IsNaN(float64(HalfToFloat32(0x7e00))))
	assert.Equal(t, float32(1), BFloat16ToFloat32(0x3f80))
	assert.Equal(t, float32(-1.5), BFloat16ToFloat32(0xbfc0))
}

// ValidateShapes checks names and shapes only: NaN passes it, not Validate.
func TestValidateShapes(t *testing.T) {
	net := MustBuild("cifar-resnet20")
	w := RandomWeights(net, 1)
	w.Tensors["linear.bias"].Data[3] = float32(math.NaN())
	assert.NoError(t, w.ValidateShapes(net))
	assert.ErrorContains(t, w.Validate(net), "1 tensors with NaN or Inf: linear.bias")
	delete(w.Tensors, "linear.bias")
	assert.ErrorContains(t, w.ValidateShapes(net), "1 missing tensors: linear.bias [10]")
}

// finite is a bit test: every float32 with all exponent bits set is NaN
// or ±Inf, and nothing else is.
func TestFinite(t *testing.T) {
	for _, x := range []float32{0, -0, 1, -1, math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32} {
		assert.True(t, finite([]float32{1, x, 2}), "%g", x)
	}
	for _, x := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7fc00001), math.Float32frombits(0xff800001)} {
		assert.False(t, finite([]float32{1, x, 2}), "%g", x)
	}
}

// An Index validates like the Weights it reads, and reads each tensor
// into its own array, naming the tensor whose read fails.
func TestIndex(t *testing.T) {
	net := MustBuild("cifar-resnet20")
	w := RandomWeights(net, 1)
	x := NewIndex()
	for _, name := range w.Names() {
		data := w.Tensors[name].Data
		x.Add(name, w.Tensors[name].Shape, func(_ io.ReaderAt, dst []float32) error { copy(dst, data); return nil })
	}
	require.NoError(t, x.ValidateShapes(net))
	got, err := x.Read(nil)
	require.NoError(t, err)
	assert.Equal(t, w, got)
	got.Tensors["conv1.weight"].Data[0] = 42
	assert.NotEqual(t, float32(42), w.Tensors["conv1.weight"].Data[0], "Read copies")

	delete(w.Tensors, "linear.bias")
	delete(x.Tensors, "linear.bias")
	x.Add("extra", []int{1}, func(io.ReaderAt, []float32) error { return io.ErrUnexpectedEOF })
	w.Set("extra", []int{1}, []float32{0})
	assert.Equal(t, w.ValidateShapes(net).Error(), x.ValidateShapes(net).Error())
	_, err = x.Read(nil)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.ErrorContains(t, err, "tensor extra: ")
}

func TestReadFloats(t *testing.T) {
	b := []byte{0xff, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0} // a byte, then 1.0f and -2.0f
	got := make([]float32, 2)
	require.NoError(t, ReadFloat32s(bytes.NewReader(b), 1, got))
	assert.Equal(t, []float32{1, -2}, got)
	assert.ErrorIs(t, ReadFloat32s(bytes.NewReader(b[:8]), 1, got), io.ErrUnexpectedEOF)
	assert.NoError(t, ReadFloat32s(bytes.NewReader(nil), 0, nil))

	// float16 values, converted a chunk at a time: more values than one chunk.
	n := 40000
	h := make([]byte, 2*n)
	for i := range n {
		binary.LittleEndian.PutUint16(h[2*i:], uint16(0x3c00+i%1024)) // 1 + (i%1024)/1024
	}
	half := func(b []byte, dst []float32) {
		for i := range dst {
			dst[i] = HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}
	f := make([]float32, n)
	require.NoError(t, ReadConverted(bytes.NewReader(h), 0, 2, f, half))
	for i := range n {
		require.Equal(t, 1+float32(i%1024)/1024, f[i], "value %d", i)
	}
	assert.ErrorIs(t, ReadConverted(bytes.NewReader(h[:2*n-1]), 0, 2, f, half), io.ErrUnexpectedEOF)
}
