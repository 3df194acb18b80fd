package pytorch

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet"
)

// sharedData is ../shared/data seen from this package's folder.
const sharedData = "../../../shared/data"

// cifarCheckpoint returns the path of a published CIFAR-10 checkpoint and
// fails the test, saying where it looked, if it is not there.
func cifarCheckpoint(t testing.TB, depth int) string {
	t.Helper()
	pattern := filepath.Join(sharedData, "cifar10-resnet", fmt.Sprintf("resnet%d-*.th", depth))
	m, _ := filepath.Glob(pattern)
	require.Len(t, m, 1, "the published CIFAR-10 checkpoint: looked for %s (absolute: %s)", pattern, abs(pattern))
	return m[0]
}

func abs(p string) string { a, _ := filepath.Abs(p); return a }

func read(b []byte) (*resnet.Weights, error) { return Read(bytes.NewReader(b), int64(len(b))) }

func TestPublishedCIFARCheckpointsLoadAndFit(t *testing.T) {
	for _, c := range []struct{ depth, tensors int }{{20, 97}, {32, 157}, {44, 217}, {56, 277}} {
		w, err := Load(cifarCheckpoint(t, c.depth))
		require.NoError(t, err)
		assert.Len(t, w.Tensors, c.tensors, "resnet%d", c.depth)
		net := resnet.MustBuild(fmt.Sprintf("cifar-resnet%d", c.depth))
		assert.NoError(t, w.Validate(net), "resnet%d", c.depth)
		assert.Contains(t, w.Tensors, "layer1.0.conv1.weight", "the module. prefix is removed")
	}
}

func TestCheckpointForAnotherDepthIsNamed(t *testing.T) {
	w, err := Load(cifarCheckpoint(t, 20))
	require.NoError(t, err)
	err = w.Validate(resnet.MustBuild("cifar-resnet32"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing tensors: layer1.3.conv1.weight [16 16 3 3]")
	err = w.Validate(resnet.MustBuild("resnet18"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "conv1.weight is [16 3 3 3], want [64 3 7 7]")
	var verr *resnet.ValidationError
	require.ErrorAs(t, err, &verr)
	assert.Contains(t, verr.Unexpected, "linear.bias")
	assert.Contains(t, verr.Missing, resnet.TensorSpec{Name: "fc.bias", Shape: []int{1000}, Trainable: true})
}

// The files in testdata/torch were written by torch itself (see its README).
func TestReadsWhatTorchWrote(t *testing.T) {
	want := []float32{1.2, -3.4, 5.6, -7.8}
	tol := map[string]float64{"float32": 0, "float64": 0, "float16": 1e-3, "bfloat16": 8e-3} // relative, the dtype's rounding
	for dt, rel := range tol {
		for _, suffix := range []string{"", "_zip"} {
			name := fmt.Sprintf("testdata/torch/tensor_%s_proto2%s.pt", dt, suffix)
			b, err := os.ReadFile(name)
			require.NoError(t, err)
			obj, err := readObject(bytes.NewReader(b), int64(len(b)))
			require.NoError(t, err, name)
			ref, ok := obj.(*tensorRef)
			require.True(t, ok, "%s holds %T", name, obj)
			assert.Equal(t, []int{4}, ref.size, name)
			require.NoError(t, ref.check(), name)
			got := make([]float32, 4)
			require.NoError(t, ref.read(bytes.NewReader(b), got), name)
			for i := range want {
				assert.InEpsilon(t, want[i], got[i], rel+1e-9, "%s[%d]", name, i)
			}
			// A bare tensor is not a state_dict: the public entry point says so.
			_, err = read(b)
			assert.ErrorContains(t, err, "want a dict of tensors", name)
		}
	}
}

// stateViews is a small state_dict exercising what real ones contain: a
// DataParallel prefix, a Parameter, an integer buffer to skip, two tensors
// sharing one storage at an offset, and a transposed (non-contiguous) view.
func stateViews() []view {
	a := floatStorage("0", 1, 2, 3, 4, 5, 6, 7, 8)
	n := longStorage("1", 42)
	b := floatStorage("2", 0.5, -0.5)
	return []view{
		{name: "module.conv.weight", st: a, offset: 0, size: []int{2, 2}, stride: []int{2, 1}},
		{name: "module.conv.bias", st: a, offset: 4, size: []int{2, 2}, stride: []int{1, 2}}, // [[5,7],[6,8]]
		{name: "module.bn.num_batches_tracked", st: n, size: []int{}, stride: []int{}},
		{name: "module.fc.weight", st: b, size: []int{2}, stride: []int{1}, asParameter: true},
	}
}

func checkStateViews(t *testing.T, w *resnet.Weights) {
	t.Helper()
	require.Equal(t, []string{"conv.bias", "conv.weight", "fc.weight"}, w.Names())
	assert.Equal(t, &resnet.Tensor{Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}}, w.Tensors["conv.weight"])
	assert.Equal(t, &resnet.Tensor{Shape: []int{2, 2}, Data: []float32{5, 7, 6, 8}}, w.Tensors["conv.bias"])
	assert.Equal(t, &resnet.Tensor{Shape: []int{2}, Data: []float32{0.5, -0.5}}, w.Tensors["fc.weight"])
}

func TestZipAndLegacyStateDicts(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		w, err := read(zipCheckpoint(t, stateViews(), wrap))
		require.NoError(t, err, "zip, wrapped=%v", wrap)
		checkStateViews(t, w)
		w, err = read(legacyCheckpoint(stateViews(), wrap))
		require.NoError(t, err, "legacy, wrapped=%v", wrap)
		checkStateViews(t, w)
	}
}

func TestBadCheckpointsGiveClearErrors(t *testing.T) {
	bad := func(mutate func(v []view) []view) []view { return mutate(stateViews()) }
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"empty", "too short", nil},
		{"text", "not a PyTorch checkpoint", []byte("this is not a checkpoint\n")},
		{"view past storage", "reaches element 9 of a 8-element storage", zipCheckpoint(t, bad(func(v []view) []view {
			v[1].offset = 6
			return v
		}), false)},
		{"integer tensor", "only floating-point tensors", zipCheckpoint(t, bad(func(v []view) []view {
			v[2].name = "x.running_mean"
			return v
		}), false)},
		{"not a tensor", `entry "module.epoch" is int`, zipCheckpoint(t, bad(func(v []view) []view {
			return append(v, view{name: "module.epoch", notATensorInt: true})
		}), false)},
		{"short storage", "storage 0 holds 28 bytes, want 32", func() []byte {
			v := stateViews()
			v[0].st.raw = v[0].st.raw[:28]
			return zipCheckpoint(t, v, false)
		}()},
		{"legacy count mismatch", "storage 0 has 9 elements, the pickle says 8", func() []byte {
			b := legacyCheckpoint(stateViews(), false)
			i := bytes.Index(b, []byte{8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f}) // count 8, then 1.0f
			b[i] = 9
			return b
		}()},
	}
	for _, c := range cases {
		_, err := read(c.data)
		assert.ErrorContains(t, err, c.want, c.name)
	}
	_, err := Load("testdata/does-not-exist.pth")
	assert.ErrorContains(t, err, "does-not-exist.pth")
}

// Every prefix of a real checkpoint must be refused with an error (never a
// panic, never a partial set of weights), in both formats.
func TestTruncatedCheckpointsAreRefused(t *testing.T) {
	real, err := os.ReadFile(cifarCheckpoint(t, 20))
	require.NoError(t, err)
	synthetic := zipCheckpoint(t, stateViews(), true)
	for _, full := range [][]byte{real, synthetic, legacyCheckpoint(stateViews(), true)} {
		_, err := read(full)
		require.NoError(t, err)
		cuts := []int{1, 2, 3, 4, 10, 20, 50, 100, 200, 500, 1000, 2000, len(full) / 2, len(full) - 8, len(full) - 1}
		for i := 0; i < 200; i++ {
			cuts = append(cuts, i*len(full)/200)
		}
		for _, n := range cuts {
			if n <= 0 || n >= len(full) {
				continue
			}
			w, err := read(full[:n])
			assert.Error(t, err, "prefix of %d of %d bytes", n, len(full))
			assert.Nil(t, w)
		}
	}
}

// Flipped bytes may go unnoticed inside tensor data (the format has no
// checksum), but must never crash the reader.
func TestCorruptedBytesNeverPanic(t *testing.T) {
	real, err := os.ReadFile(cifarCheckpoint(t, 20))
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, full := range [][]byte{real[:4096], zipCheckpoint(t, stateViews(), true), legacyCheckpoint(stateViews(), true)} {
		for i := 0; i < 2000; i++ {
			b := bytes.Clone(full)
			for j := 0; j < 1+rng.IntN(4); j++ {
				b[rng.IntN(len(b))] = byte(rng.Uint32())
			}
			assert.NotPanics(t, func() { read(b) })
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add(zipCheckpoint(f, stateViews(), true))
	f.Add(legacyCheckpoint(stateViews(), false))
	for _, name := range []string{"tensor_float32_proto2.pt", "tensor_float16_proto2_zip.pt"} {
		b, err := os.ReadFile("testdata/torch/" + name)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := read(b)
		if err != nil {
			return
		}
		for name, ts := range w.Tensors {
			n := 1
			for _, d := range ts.Shape {
				n *= d
			}
			if n != len(ts.Data) {
				t.Fatalf("%s: shape %v with %d values", name, ts.Shape, len(ts.Data))
			}
		}
	})
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

// Index reads the pickle, not the storages, in both formats; Read then
// reads each value once, in place.
func TestIndexLeavesTheValuesInTheFile(t *testing.T) {
	big := make([]float32, 1<<20)
	for i := range big {
		big[i] = float32(i%977) / 7
	}
	views := append(stateViews(), view{name: "module.big.weight", st: floatStorage("3", big...), size: []int{1024, 1024}, stride: []int{1024, 1}})
	for _, b := range [][]byte{zipCheckpoint(t, views, true), legacyCheckpoint(views, true)} {
		r := &countingReader{r: bytes.NewReader(b)}
		x, err := Index(r, int64(len(b)))
		require.NoError(t, err)
		assert.Less(t, r.n, int64(len(b)/20), "Index read %d of %d bytes", r.n, len(b))
		r.n = 0
		w, err := x.Read(r)
		require.NoError(t, err)
		assert.Less(t, r.n, int64(len(b))*11/10, "Read read %d of %d bytes", r.n, len(b))
		assert.Equal(t, big, w.Tensors["big.weight"].Data)
		checkStateViews(t, &resnet.Weights{Tensors: map[string]*resnet.Tensor{
			"conv.weight": w.Tensors["conv.weight"], "conv.bias": w.Tensors["conv.bias"], "fc.weight": w.Tensors["fc.weight"]}})
	}
}
