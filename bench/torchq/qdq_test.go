package torchq

import (
	"encoding/binary"
	"encoding/json"
	"maps"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/bench/ort"
	"github.com/resnetgen/resnetgen/resnet/npy"
)

// ortDir is where bench/ort installed onnxruntime-node, or the test is
// skipped: installing it takes npm and the network, which CI's ort section
// has (set RESNET_REQUIRE_ORT=1 there to make a missing install fail).
func ortDir(t *testing.T) string {
	t.Helper()
	dir, err := ort.Dir()
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "onnxruntime-node", "package.json")); err != nil {
		if os.Getenv("RESNET_REQUIRE_ORT") != "" {
			t.Fatalf("RESNET_REQUIRE_ORT is set and onnxruntime-node is not installed in %s: %v", dir, err)
		}
		t.Skipf("onnxruntime-node is not installed in %s (go run ./cmd/resnet bench -ort installs it)", dir)
	}
	return dir
}

// TestQDQToyFusesEveryConv writes the toy residual network (stem, a ReLU
// conv, a pre-add conv, a 1x1 projection shortcut) in QDQ form with
// hand-made scales and checks in ORT's optimised graph that every conv runs
// as QLinearConv and the sum as QLinearAdd, that the int8 kernels give the
// fake-quantized graph's logits, and that those are near the float
// network's.
func TestQDQToyFusesEveryConv(t *testing.T) {
	dir := ortDir(t)
	toy, s := toyQDQ(t)
	require.Len(t, s.Convs, 4)
	assert.True(t, s.Convs["layer1.0.downsample.0"].Output.Signed, "the projection shortcut is signed")
	assert.False(t, s.Adds["layer1.0"].Output.Signed)

	qdq := filepath.Join(t.TempDir(), "toy_qdq.onnx")
	require.NoError(t, WriteQDQ(filepath.Join(toy, "toy.onnx"), &s, qdq, Options{}))
	in := toyInput(t, toy)
	c, err := CheckQDQ(dir, qdq, in, [4]int{1, 3, 16, 16}, "", Options{})
	require.NoError(t, err)
	t.Logf("optimised QDQ graph: %v", c.Ops)
	assert.Equal(t, 4, c.QLinearConv, "every conv fused to QLinearConv")
	assert.Empty(t, c.FloatConvs)
	assert.Equal(t, 1, c.Ops["com.microsoft:QLinearAdd"], "the residual sum fused to QLinearAdd")
	logits := func(v []float32) *npy.Array { return &npy.Array{Shape: []int{1, len(v)}, Data: v} }
	d, err := Compare(logits(c.Fused), logits(c.Reference))
	require.NoError(t, err)
	t.Logf("int8 kernels vs the fake-quantized graph: %+v", d)
	assert.Less(t, d.MaxAbsRel, 1e-3)

	// The float export through the same check: its convs stay float, and
	// the int8 logits are near its.
	f, err := CheckQDQ(dir, filepath.Join(toy, "toy.onnx"), in, [4]int{1, 3, 16, 16}, "", Options{})
	require.NoError(t, err)
	assert.NotEmpty(t, f.FloatConvs, "the checker sees unfused convs")
	assert.Zero(t, f.QLinearConv)
	d, err = Compare(logits(c.Fused), logits(f.Reference))
	require.NoError(t, err)
	t.Logf("int8 vs float: %+v", d)
	assert.Greater(t, d.Correlation, 0.98)
	assert.Less(t, d.RMSRel, 0.1)
}

func TestQDQMissingScales(t *testing.T) {
	toy, s := toyQDQ(t)
	missing := s
	missing.Convs = maps.Clone(s.Convs)
	delete(missing.Convs, "layer1.0.conv2")
	err := WriteQDQ(filepath.Join(toy, "toy.onnx"), &missing, filepath.Join(t.TempDir(), "x.onnx"), Options{})
	assert.ErrorContains(t, err, "no scales for conv layer1.0.conv2")
	extra := s
	extra.Convs = maps.Clone(s.Convs)
	extra.Convs["layer9.0.conv1"] = s.Convs["conv1"]
	err = WriteQDQ(filepath.Join(toy, "toy.onnx"), &extra, filepath.Join(t.TempDir(), "x.onnx"), Options{})
	assert.ErrorContains(t, err, "layer9.0.conv1")
}

var toyOnce struct {
	sync.Once
	dir string
	err error
}

// toyQDQ writes qdq.py's toy network once per test binary (torch takes
// seconds to start) and returns its directory and scales.
func toyQDQ(t *testing.T) (string, QDQScales) {
	t.Helper()
	toyOnce.Do(func() {
		toyOnce.dir, toyOnce.err = os.MkdirTemp("", "torchq-toy")
		if toyOnce.err == nil {
			toyOnce.err = WriteQDQToy(toyOnce.dir, Options{})
		}
	})
	require.NoError(t, toyOnce.err)
	b, err := os.ReadFile(filepath.Join(toyOnce.dir, "toy.json"))
	require.NoError(t, err)
	var s QDQScales
	require.NoError(t, json.Unmarshal(b, &s))
	return toyOnce.dir, s
}

func TestMain(m *testing.M) {
	code := m.Run()
	if toyOnce.dir != "" {
		os.RemoveAll(toyOnce.dir)
	}
	os.Exit(code)
}

// A residual sum kept float up to the add's Q (resnetgen's fused sum): ORT
// fuses the other convs and leaves that one float, with no QLinearAdd. (A
// float stem, Float, needs a quantized tensor after it, as a ResNet's max
// pool gives (Pools): bench's ResNet-18 peers test runs that form.)
func TestQDQFloatSum(t *testing.T) {
	dir := ortDir(t)
	toy, s := toyQDQ(t)
	c2 := s.Convs["layer1.0.conv2"]
	c2.FloatOutput = true
	s.Convs = maps.Clone(s.Convs)
	s.Convs["layer1.0.conv2"] = c2
	qdq := filepath.Join(t.TempDir(), "toy_float.onnx")
	require.NoError(t, WriteQDQ(filepath.Join(toy, "toy.onnx"), &s, qdq, Options{}))
	in := toyInput(t, toy)
	c, err := CheckQDQ(dir, qdq, in, [4]int{1, 3, 16, 16}, "", Options{})
	require.NoError(t, err)
	t.Logf("optimised: %v", c.Ops)
	assert.Equal(t, 3, c.QLinearConv, "the stem, layer1.0.conv1 and the projection")
	floats := 0
	for _, n := range c.FloatConvs {
		floats += n
	}
	assert.Equal(t, 1, floats, "the conv whose sum stays float")
	assert.Zero(t, c.Ops["com.microsoft:QLinearAdd"])

	s.Float = []string{"conv1"}
	err = WriteQDQ(filepath.Join(toy, "toy.onnx"), &s, filepath.Join(t.TempDir(), "x.onnx"), Options{})
	assert.ErrorContains(t, err, "convs both float and quantized: ['conv1']")
	s.Float = nil
	s.Pools = map[string]QDQAdd{"maxpool": {Output: QParams{Scale: 0.1}}}
	err = WriteQDQ(filepath.Join(toy, "toy.onnx"), &s, filepath.Join(t.TempDir(), "x.onnx"), Options{})
	assert.ErrorContains(t, err, "maxpool", "the toy has no max pool")
}

// toyInput is the toy network's input image (toy_input.bin).
func toyInput(t *testing.T, toy string) []float32 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(toy, "toy_input.bin"))
	require.NoError(t, err)
	in := make([]float32, len(raw)/4)
	for i := range in {
		in[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return in
}
