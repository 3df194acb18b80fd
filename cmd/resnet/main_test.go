package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/imagenet"
	"github.com/resnetgen/resnetgen/resnet/npy"
	"github.com/resnetgen/resnetgen/resnet/preprocess"
	"github.com/resnetgen/resnetgen/resnet/pytorch"
	"github.com/resnetgen/resnetgen/resnet/safetensors"

	_ "github.com/resnetgen/resnetgen/engine/enginetest" // New ignores this machine's tuning cache, here and in the processes the tests start
)

const sharedData = "../../../shared/data"

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestFlopsTable(t *testing.T) {
	code, out, _ := runCmd("flops")
	require.Equal(t, 0, code)
	for _, row := range []string{
		"resnet18    1.814      1.814      1.8  11.690M",
		"resnet34    3.664      3.664      3.6  21.798M",
		"resnet50    3.858      4.089      3.8  25.557M",
		"resnet101    7.570      7.801      7.6  44.549M",
		"resnet152   11.282     11.514     11.3  60.193M",
	} {
		assert.Contains(t, out, row)
	}
}

func TestFlopsJSON(t *testing.T) {
	code, out, _ := runCmd("flops", "-json")
	require.Equal(t, 0, code)
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	require.Len(t, rows, 10)
	assert.Equal(t, map[string]any{
		"arch": "resnet50", "variant": "v1.5", "macs": 4089184256.0, "params": 25557032.0, "paper_flops": 3.8e9,
	}, rows[5])
	assert.Equal(t, "v1", rows[4]["variant"])
	assert.Equal(t, 3857973248.0, rows[4]["macs"])
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: resnet <command>"},
		{[]string{"train"}, 2, `unknown command "train"`},
		{[]string{"flops", "-bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"flops", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"eval", "-data", "y"}, 2, "-weights is required"},
		{[]string{"eval", "-arch", "resnet9", "-weights", "x", "-data", "y"}, 2, `unknown architecture "resnet9"`},
		{[]string{"eval", "-arch", "resnet18", "-weights", "x", "-data", "y"}, 2, "resnet18 is not a CIFAR-10 network"},
		{[]string{"eval", "-arch", "cifar-resnet20", "-weights", "nope.th", "-data", "y"}, 1, "nope.th: no such file"},
		{[]string{"tune", "-margin", "1.5"}, 2, "-margin must be in [0, 1)"},
		{[]string{"tune", "-margin", "-0.1"}, 2, "-margin must be in [0, 1)"},
		{[]string{"tune", "-margin", "NaN"}, 2, "-margin must be in [0, 1)"},
	} {
		code, _, stderr := runCmd(c.args...)
		assert.Equal(t, c.code, code, "%v", c.args)
		assert.Contains(t, stderr, c.want, "%v", c.args)
	}
}

func checkpoint(t *testing.T, depth string) string {
	m, _ := filepath.Glob(filepath.Join(sharedData, "cifar10-resnet", "resnet"+depth+"-*.th"))
	require.Len(t, m, 1, "published checkpoint resnet%s in %s", depth, filepath.Join(sharedData, "cifar10-resnet"))
	return m[0]
}

func TestEvalOnRealData(t *testing.T) {
	data := filepath.Join(sharedData, "cifar10-test")
	code, out, stderr := runCmd("eval", "-arch", "cifar-resnet20", "-weights", checkpoint(t, "20"),
		"-data", data, "-limit", "200", "-json")
	require.Equal(t, 0, code, stderr)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, "cifar-resnet20", res["arch"])
	assert.Equal(t, 200.0, res["images"])
	assert.Greater(t, res["top1"], 85.0, "a working ResNet-20 gets ~92%% on any 200 images; chance is 10%%")
	assert.Equal(t, res["top1"], 100*res["correct"].(float64)/200)
	assert.Contains(t, stderr, "200/200 images", "progress goes to stderr")

	// fp32 with -calibrate-every: the images int8 would be evaluated on.
	code, out, stderr = runCmd("eval", "-arch", "cifar-resnet20", "-weights", checkpoint(t, "20"),
		"-data", data, "-limit", "200", "-calibrate-every", "10", "-json")
	require.Equal(t, 0, code, stderr)
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, 180.0, res["images"])

	// A checkpoint for another depth names the first tensors that do not fit.
	code, _, stderr = runCmd("eval", "-arch", "cifar-resnet32", "-weights", checkpoint(t, "20"), "-data", data, "-limit", "1")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "weights do not fit cifar-resnet32: 60 missing tensors: layer1.3.conv1.weight [16 16 3 3]")

	// A truncated checkpoint and a data folder with a short file.
	dir := t.TempDir()
	full, err := os.ReadFile(checkpoint(t, "20"))
	require.NoError(t, err)
	short := filepath.Join(dir, "short.th")
	require.NoError(t, os.WriteFile(short, full[:len(full)/2], 0o644))
	code, _, stderr = runCmd("eval", "-arch", "cifar-resnet20", "-weights", short, "-data", data)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "short.th: legacy checkpoint truncated")

	batch, err := os.ReadFile(filepath.Join(data, "test_batch_00.bin"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "test_batch_00.bin"), batch[:5000], 0o644))
	code, _, stderr = runCmd("eval", "-arch", "cifar-resnet20", "-weights", checkpoint(t, "20"), "-data", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "test_batch_00.bin: truncated: record 1 has 1927 of 3073 bytes")
}

func TestBenchKernelsJSON(t *testing.T) {
	code, out, stderr := runCmd("bench", "-kernels", "-rounds", "1", "-passes", "1", "-filter", "conv3x3s1_c64k64_h8_", "-json")
	require.Equal(t, 0, code, stderr)
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	require.NotEmpty(t, rows, "one row per SIMD tier this machine has (or purego)")
	for _, r := range rows {
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		assert.ElementsMatch(t, []string{"name", "tier", "op", "kernel", "stride", "in_h", "in_w", "in_c", "out_c", "macs",
			"gflops", "peak_gflops", "efficiency"}, keys)
		assert.Contains(t, r["name"], "conv3x3s1_c64k64_h8_")
		assert.Equal(t, "conv", r["op"])
		assert.Equal(t, 3.0, r["kernel"])
		assert.Equal(t, float64(8*8*64*64*9), r["macs"])
		assert.Greater(t, r["gflops"], 0.0)
		assert.InDelta(t, r["gflops"].(float64)/r["peak_gflops"].(float64), r["efficiency"], 1e-9)
	}
	code, out, _ = runCmd("bench", "-kernels", "-rounds", "1", "-tier", "purego", "-filter", "fc_c64k10")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "fc_c64k10_purego")

	code, _, stderr = runCmd("bench", "-kernels", "-tier", "sse9")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `unknown tier "sse9"`)

	// -cold rotates the weights through copies; it runs the same kernels.
	code, out, stderr = runCmd("bench", "-kernels", "-cold", "-rounds", "1", "-passes", "1", "-filter", "conv3x3s1_c64k64_h8_", "-json")
	require.Equal(t, 0, code, stderr)
	var cold []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &cold))
	require.Len(t, cold, len(rows))
	for i, r := range cold {
		assert.Equal(t, rows[i]["name"], r["name"])
		assert.Greater(t, r["gflops"], 0.0)
	}
	code, _, stderr = runCmd("bench", "-cold", "-arch", "cifar-resnet20")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "-cold goes with -kernels")
}

func TestBenchNetworkJSON(t *testing.T) {
	code, out, stderr := runCmd("bench", "-arch", "cifar-resnet20", "-runs", "3", "-threads", "2", "-json")
	require.Equal(t, 0, code, stderr)
	var r map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, []string{"arch", "threads", "batch", "latency_ms_median", "latency_ms_min", "images_per_s",
		"gflops", "peak_gflops", "efficiency"}, keys)
	assert.Equal(t, "cifar-resnet20", r["arch"])
	assert.Equal(t, 2.0, r["threads"])
	assert.LessOrEqual(t, r["latency_ms_min"], r["latency_ms_median"])
	assert.InDelta(t, 2*40551040/(r["latency_ms_median"].(float64)/1e3)/1e9, r["gflops"], 1e-6*r["gflops"].(float64))

	code, _, stderr = runCmd("bench", "-arch", "resnet9")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `no generated network for "resnet9"`)
}

// The generated CIFAR-10 networks, fed the published checkpoints, must
// reproduce the published top-1 errors (8.27 / 7.37 / 6.90 / 6.61 %,
// upstream README) within 0.05 points on all 10,000 test images.
func TestGeneratedNetworksReproducePublishedAccuracy(t *testing.T) {
	data := filepath.Join(sharedData, "cifar10-test")
	for depth, published := range map[string]float64{"20": 8.27, "32": 7.37, "44": 6.90, "56": 6.61} {
		code, out, stderr := runCmd("eval", "-q", "-json", "-arch", "cifar-resnet"+depth, "-weights", checkpoint(t, depth), "-data", data)
		require.Equal(t, 0, code, stderr)
		var res map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &res))
		require.Equal(t, 10000.0, res["images"])
		t.Logf("resnet%s: top-1 error %.2f%% (published %.2f%%)", depth, 100-res["top1"].(float64), published)
		assert.InDelta(t, published, 100-res["top1"].(float64), 0.05, "resnet%s", depth)
	}
	// The reference path of eval too, on a few images: the same answers.
	_, refOut, _ := runCmd("eval", "-q", "-json", "-ref", "-limit", "50", "-arch", "cifar-resnet20", "-weights", checkpoint(t, "20"), "-data", data)
	_, genOut, _ := runCmd("eval", "-q", "-json", "-limit", "50", "-arch", "cifar-resnet20", "-weights", checkpoint(t, "20"), "-data", data)
	assert.JSONEq(t, refOut, genOut)
}

func TestRunNpy(t *testing.T) {
	dir := t.TempDir()
	images, err := cifar10.ReadFile(filepath.Join(sharedData, "cifar10-test", "test_batch_00.bin"))
	require.NoError(t, err)
	const n = 5
	x := &npy.Array{Shape: []int{n, 3, 32, 32}, Data: make([]float32, n*3072)}
	for i := 0; i < n; i++ {
		images[i].Normalize(x.Data[i*3072 : (i+1)*3072])
	}
	in, out := filepath.Join(dir, "x.npy"), filepath.Join(dir, "y.npy")
	require.NoError(t, npy.WriteFile(in, x))
	code, _, stderr := runCmd("run", "-arch", "cifar-resnet20", "-weights", checkpoint(t, "20"), "-in", in, "-out", out)
	require.Equal(t, 0, code, stderr)
	y, err := npy.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, []int{n, 10}, y.Shape)

	w, err := pytorch.Load(checkpoint(t, "20"))
	require.NoError(t, err)
	ref, err := resnet.NewReference(resnet.MustBuild("cifar-resnet20"), w)
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		want, err := ref.Forward(x.Data[i*3072 : (i+1)*3072])
		require.NoError(t, err)
		for j := range want {
			assert.InDelta(t, want[j], y.Data[i*10+j], 1e-4*10, "image %d logit %d", i, j) // logits are O(10)
		}
	}

	// One CHW image without the batch axis, and no -arch: the network is
	// the one the checkpoint fits.
	one := &npy.Array{Shape: []int{3, 32, 32}, Data: x.Data[:3072]}
	require.NoError(t, npy.WriteFile(in, one))
	code, _, stderr = runCmd("run", "-weights", checkpoint(t, "20"), "-in", in, "-out", out)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "cifar-resnet20 weights (pytorch)")
	y1, err := npy.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, y.Data[:10], y1.Data)

	bad := func(a *npy.Array, arch, want string) {
		t.Helper()
		require.NoError(t, npy.WriteFile(in, a))
		code, _, stderr := runCmd("run", "-arch", arch, "-weights", checkpoint(t, "20"), "-in", in, "-out", out)
		assert.Equal(t, 1, code)
		assert.Contains(t, stderr, want)
	}
	bad(&npy.Array{Shape: []int{1, 3, 224, 224}, Data: make([]float32, 3*224*224)}, "cifar-resnet20", "want (N, 3, 32, 32)")
	nan := &npy.Array{Shape: []int{1, 3, 32, 32}, Data: make([]float32, 3072)}
	nan.Data[7] = float32(math.NaN())
	bad(nan, "cifar-resnet20", "element 7 is NaN")
	bad(&npy.Array{Shape: []int{1, 3, 32, 32}, Data: make([]float32, 3072)}, "cifar-resnet32", "weights do not fit cifar-resnet32")
	code, _, stderr = runCmd("run", "-arch", "cifar-resnet20", "-weights", checkpoint(t, "20"), "-in", "../../resnet/npy/testdata/f64_2x2.npy", "-out", out)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `dtype "<f8": only float32`)
	code, _, stderr = runCmd("run", "-arch", "cifar-resnet20", "-weights", in, "-in", in, "-out", out)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "not a weight file resnet reads")
	code, _, stderr = runCmd("run", "-arch", "cifar-resnet20")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "-weights is required")
}

func TestClassify(t *testing.T) {
	dir := t.TempDir()
	net := resnet.MustBuild("resnet18")
	w := resnet.RandomWeights(net, 21)
	weights := filepath.Join(dir, "r18.safetensors")
	f, err := os.Create(weights)
	require.NoError(t, err)
	require.NoError(t, safetensors.Write(f, w))
	require.NoError(t, f.Close())

	img := image.NewNRGBA(image.Rect(0, 0, 320, 240))
	for i := range img.Pix {
		img.Pix[i] = uint8(i*31 + i/977)
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	pic := filepath.Join(dir, "pic.png")
	require.NoError(t, os.WriteFile(pic, b.Bytes(), 0o644))
	var names []string
	for i := 0; i < 1000; i++ {
		names = append(names, fmt.Sprintf("label %d", i))
	}
	labels := filepath.Join(dir, "labels.txt")
	require.NoError(t, os.WriteFile(labels, []byte(strings.Join(names, "\n")+"\n"), 0o644))

	code, out, stderr := runCmd("classify", "-arch", "resnet18", "-weights", weights, "-labels", labels, "-json", pic)
	require.Equal(t, 0, code, stderr)
	var res []classified
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res, 1)
	require.Len(t, res[0].Top, 5)
	sum := 0.0
	for i, p := range res[0].Top {
		assert.Equal(t, fmt.Sprintf("label %d", p.Class), p.Label)
		if i > 0 {
			assert.LessOrEqual(t, p.Probability, res[0].Top[i-1].Probability)
		}
		sum += p.Probability
	}
	assert.LessOrEqual(t, sum, 1+1e-9)

	// The same answer as preprocessing and the reference forward by hand.
	decoded, err := preprocess.DecodeFile(pic)
	require.NoError(t, err)
	x, err := preprocess.ImageNet(decoded)
	require.NoError(t, err)
	ref, err := resnet.NewReference(net, w)
	require.NoError(t, err)
	logits, err := ref.Forward(x)
	require.NoError(t, err)
	assert.Equal(t, cifar10.Argmax(logits), res[0].Top[0].Class)

	// Without -arch the network is the one the weights fit, and without
	// -labels the classes are named by the embedded ImageNet list.
	code, out, stderr = runCmd("classify", "-weights", weights, pic)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "resnet18 weights (safetensors)")
	assert.Contains(t, out, imagenet.Classes[res[0].Top[0].Class])

	// Many images are prepared ahead on goroutines but reported in order,
	// each as when classified alone.
	var pics []string
	var alone []classified
	for i := range 5 {
		p := filepath.Join(dir, fmt.Sprintf("pic%d.png", i))
		for j := range img.Pix {
			img.Pix[j] = uint8(j*(31+i) + j/(977-i))
		}
		b.Reset()
		require.NoError(t, png.Encode(&b, img))
		require.NoError(t, os.WriteFile(p, b.Bytes(), 0o644))
		pics = append(pics, p)
		code, out, stderr := runCmd("classify", "-weights", weights, "-json", p)
		require.Equal(t, 0, code, stderr)
		var one []classified
		require.NoError(t, json.Unmarshal([]byte(out), &one))
		alone = append(alone, one...)
	}
	code, out, stderr = runCmd(append([]string{"classify", "-weights", weights, "-json"}, pics...)...)
	require.Equal(t, 0, code, stderr)
	res = nil
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, alone, res)
	assert.NotEqual(t, alone[0].Top, alone[1].Top, "the images differ, so the order is tested")

	// A file that is not an image among good ones: reported on stderr and
	// skipped, the others classified, exit status 1.
	code, out, stderr = runCmd("classify", "-weights", weights, pic, labels, pic)
	assert.Equal(t, 1, code)
	assert.Equal(t, 2, strings.Count(out, pic+"\n"), "both good images printed: %s", out)
	assert.NotContains(t, out, labels)
	assert.Contains(t, stderr, labels+": not a JPEG or PNG image")
	assert.Contains(t, stderr, "1 of 3 images could not be classified")
	code, out, _ = runCmd("classify", "-weights", weights, "-json", labels, pic)
	assert.Equal(t, 1, code)
	res = nil
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res, 2)
	assert.Contains(t, res[0].Error, "not a JPEG or PNG image")
	assert.Empty(t, res[0].Top)
	assert.Empty(t, res[1].Error)
	assert.Len(t, res[1].Top, 5)

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-arch", "resnet18", "-weights", weights, labels}, 1, "not a JPEG or PNG image"},
		{[]string{"-arch", "cifar-resnet20", "-weights", weights, pic}, 2, "classify runs ImageNet networks"},
		{[]string{"-arch", "resnet18", "-weights", weights, "-labels", weights, pic}, 1, "labels, want 1000"},
		{[]string{"-arch", "resnet34", "-weights", weights, pic}, 1, "weights do not fit resnet34"},
		{[]string{"-arch", "resnet18", pic}, 2, "usage: resnet classify"},
		{[]string{"-weights", checkpoint(t, "20"), pic}, 1, "cifar-resnet20 takes 32x32 images; classify runs ImageNet networks"},
	} {
		code, _, stderr := runCmd(append([]string{"classify"}, c.args...)...)
		assert.Equal(t, c.code, code, "%v", c.args)
		assert.Contains(t, stderr, c.want, "%v", c.args)
	}
}
