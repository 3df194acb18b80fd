package onnx

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Real ONNX bytes: a node test's model and tensors from libonnx-testdata.
func TestReadModelAndTensor(t *testing.T) {
	dir := filepath.Join(nodeTests, "test_conv_with_strides_padding")
	b, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	require.NoError(t, err, "apt-get install libonnx-testdata")
	m, err := ReadModel(b)
	require.NoError(t, err)
	require.Len(t, m.Nodes, 1)
	n := m.Nodes[0]
	assert.Equal(t, "Conv", n.OpType)
	assert.Equal(t, []string{"x", "W"}, n.Inputs)
	assert.Equal(t, []string{"y"}, n.Output)
	assert.Equal(t, []int64{3, 3}, n.Attrs["kernel_shape"].Ints)
	assert.Equal(t, []int64{1, 1, 1, 1}, n.Attrs["pads"].Ints)
	assert.Equal(t, []int64{2, 2}, n.Attrs["strides"].Ints)
	assert.Equal(t, []string{"x", "W"}, m.Inputs)
	assert.Equal(t, []string{"y"}, m.Outputs)

	x, err := ReadTensor(mustRead(t, filepath.Join(dir, "test_data_set_0", "input_0.pb")))
	require.NoError(t, err)
	assert.Equal(t, []int{1, 1, 7, 5}, x.Dims)
	assert.Equal(t, "float", x.Type)
	for i, v := range x.Float { // the test's x is np.arange(35)
		require.Equal(t, float32(i), v)
	}
}

func mustRead(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func TestBadProtobufIsRefused(t *testing.T) {
	good := mustRead(t, filepath.Join(nodeTests, "test_conv_with_strides_padding", "test_data_set_0", "input_0.pb"))
	for n := 1; n < len(good); n++ {
		_, err := ReadTensor(good[:n])
		assert.Error(t, err, "prefix of %d bytes", n)
	}
	_, err := ReadModel([]byte("not a model at all"))
	assert.Error(t, err)
	_, err = ReadModel(nil)
	assert.ErrorContains(t, err, "no graph")
}

func FuzzRead(f *testing.F) {
	for _, p := range []string{"test_conv_with_strides_padding/model.onnx", "test_conv_with_strides_padding/test_data_set_0/input_0.pb",
		"test_gemm_default_vector_bias/model.onnx", "test_batchnorm_example/model.onnx"} {
		b, err := os.ReadFile(filepath.Join(nodeTests, p))
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := ReadModel(b); err == nil {
			for _, x := range m.Initializers {
				checkTensor(t, &x)
			}
		}
		if x, err := ReadTensor(b); err == nil {
			checkTensor(t, x)
		}
	})
}

func checkTensor(t *testing.T, x *Tensor) {
	n := 1
	for _, d := range x.Dims {
		n *= d
	}
	if n != len(x.Float) {
		t.Fatalf("tensor %q: dims %v with %d values", x.Name, x.Dims, len(x.Float))
	}
}
