package serve_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/cifar/resnet20"
	"github.com/resnetgen/resnetgen/generated/resnet18"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/imagenet"
	"github.com/resnetgen/resnetgen/resnet/preprocess"
	"github.com/resnetgen/resnetgen/resnet/weightfile"
	"github.com/resnetgen/resnetgen/serve"
	"github.com/resnetgen/resnetgen/serve/inferpb"
	"github.com/resnetgen/resnetgen/serve/servetest"
)

// client is every HTTP request's: none waits longer than servetest.Timeout.
var client = servetest.Client(nil)

// watchdog is how long a test of a running server may take in all before
// the binary ends with every goroutine's stack (servetest.Watchdog); the
// slowest here take seconds.
const watchdog = 5 * time.Minute

// The published CIFAR-10 ResNet-20 and its test set (../shared/data from
// the repository root; see README.md, "Test data").
var (
	cifarWeights = filepath.Join("..", "..", "shared", "data", "cifar10-resnet", "resnet20-12fca82f.th")
	cifarTest    = filepath.Join("..", "..", "shared", "data", "cifar10-test", "test_batch_00.bin")
)

// cifarSpec serves the published ResNet-20 as "cifar-resnet20".
func cifarSpec(t *testing.T) serve.Spec {
	t.Helper()
	net, err := resnet20.Network()
	require.NoError(t, err)
	w, err := weightfile.Load(cifarWeights, net)
	require.NoError(t, err, "the published CIFAR-10 checkpoints are test data: see README.md")
	return serve.Spec{Name: "cifar-resnet20", Arch: resnet20.Arch, InputH: resnet20.InputHeight, InputW: resnet20.InputWidth,
		Classes: resnet20.Classes, Labels: cifar10.ClassNames[:],
		New: func(batch int) (serve.Network, error) {
			return resnet20.New(w, engine.WithBatch(batch), engine.WithWorkers(1))
		}}
}

// imagenetSpec serves ResNet-18 with random weights as "resnet18", with
// image files in and ImageNet's labels.
func imagenetSpec(t *testing.T) serve.Spec {
	t.Helper()
	net, err := resnet18.Network()
	require.NoError(t, err)
	w := resnet.RandomWeights(net, 7)
	return serve.Spec{Name: "resnet18", Arch: resnet18.Arch, InputH: resnet18.InputHeight, InputW: resnet18.InputWidth,
		Classes: resnet18.Classes, Labels: imagenet.Classes, Images: serve.ImageNet,
		New: func(batch int) (serve.Network, error) {
			return resnet18.New(w, engine.WithBatch(batch))
		}}
}

// reference runs a spec's network directly, one image at a time: what the
// server must answer, whatever batches it formed.
func reference(t *testing.T, spec serve.Spec, in []float32) []float32 {
	t.Helper()
	n, err := spec.New(1)
	require.NoError(t, err)
	defer n.Close()
	inLen := 3 * spec.InputH * spec.InputW
	out := make([]float32, len(in)/inLen*spec.Classes)
	for i := 0; i < len(in)/inLen; i++ {
		require.NoError(t, n.ForwardBatch(in[i*inLen:(i+1)*inLen], out[i*spec.Classes:(i+1)*spec.Classes]))
	}
	return out
}

// cifarImages are the first n CIFAR-10 test images, normalised.
func cifarImages(t *testing.T, n int) []float32 {
	t.Helper()
	imgs, err := cifar10.ReadFile(cifarTest)
	require.NoError(t, err, "the CIFAR-10 test set is test data: see README.md")
	require.GreaterOrEqual(t, len(imgs), n)
	const inLen = 3 * cifar10.Side * cifar10.Side
	x := make([]float32, n*inLen)
	for i := range n {
		imgs[i].Normalize(x[i*inLen : (i+1)*inLen])
	}
	return x
}

type testServer struct {
	run  *serve.Running
	base string // http://host:port
	grpc inferpb.GRPCInferenceServiceClient
}

func start(t *testing.T, specs []serve.Spec, opt serve.Options) *testServer {
	t.Helper()
	servetest.Watchdog(t, watchdog)
	srv, err := serve.New(specs, opt)
	require.NoError(t, err)
	run, err := srv.Serve(serve.Listeners{HTTP: "127.0.0.1:0", GRPC: "127.0.0.1:0"})
	require.NoError(t, err)
	conn, err := grpc.NewClient(run.GRPCAddr.String(), append(servetest.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))...)
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, run.Shutdown(ctx))
	})
	return &testServer{run: run, base: "http://" + run.HTTPAddr.String(), grpc: inferpb.NewGRPCInferenceServiceClient(conn)}
}

// response is an HTTP answer: status, JSON part, binary part.
type response struct {
	code   int
	json   map[string]any
	binary []byte
	header http.Header
}

func (ts *testServer) do(t *testing.T, method, path string, header http.Header, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, ts.base+path, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := response{code: resp.StatusCode, header: resp.Header}
	js := raw
	if h := resp.Header.Get(serve.HeaderLength); h != "" {
		n, err := strconv.Atoi(h)
		require.NoError(t, err)
		js, r.binary = raw[:n], raw[n:]
	}
	if len(js) > 0 && (r.binary != nil || strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json")) {
		require.NoError(t, json.Unmarshal(js, &r.json), "%s %s answered %q", method, path, raw)
	}
	return r
}

func (ts *testServer) get(t *testing.T, path string) response {
	t.Helper()
	return ts.do(t, http.MethodGet, path, nil, nil)
}

func (ts *testServer) postJSON(t *testing.T, path string, body any) response {
	t.Helper()
	js, err := json.Marshal(body)
	require.NoError(t, err)
	return ts.do(t, http.MethodPost, path, nil, js)
}

// postBinary sends a request whose JSON part is body, followed by bin (the
// binary tensor data extension).
func (ts *testServer) postBinary(t *testing.T, path string, body any, bin []byte) response {
	t.Helper()
	js, err := json.Marshal(body)
	require.NoError(t, err)
	h := http.Header{}
	h.Set(serve.HeaderLength, strconv.Itoa(len(js)))
	h.Set("Content-Type", "application/octet-stream")
	return ts.do(t, http.MethodPost, path, h, append(js, bin...))
}

func fp32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func fromBytes(t *testing.T, b []byte) []float32 {
	t.Helper()
	require.Zero(t, len(b)%4)
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

func jsonFloats(t *testing.T, v any) []float32 {
	t.Helper()
	arr, ok := v.([]any)
	require.True(t, ok, "data is %T", v)
	out := make([]float32, len(arr))
	for i, e := range arr {
		f, ok := e.(float64)
		require.True(t, ok)
		out[i] = float32(f)
	}
	return out
}

func output(t *testing.T, r response, i int) map[string]any {
	t.Helper()
	require.Equal(t, http.StatusOK, r.code, "%v", r.json)
	outs, ok := r.json["outputs"].([]any)
	require.True(t, ok, "%v", r.json)
	require.Greater(t, len(outs), i)
	return outs[i].(map[string]any)
}

func requireError(t *testing.T, r response, code int, contains ...string) {
	t.Helper()
	require.Equal(t, code, r.code, "%v", r.json)
	msg, _ := r.json["error"].(string)
	require.NotEmpty(t, msg, "an error answer carries {\"error\": \"…\"}: %v", r.json)
	for _, c := range contains {
		assert.Contains(t, msg, c)
	}
}

// top are the k best classes of logits as the classification extension
// writes them, "score:index:label".
func top(logits []float32, k int, labels []string) []string {
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	// Selection, not the server's sort: an independent ranking.
	var out []string
	used := make([]bool, len(logits))
	for range k {
		best := -1
		for _, i := range idx {
			if !used[i] && (best < 0 || logits[i] > logits[best]) {
				best = i
			}
		}
		used[best] = true
		out = append(out, fmt.Sprintf("%s:%d:%s", strconv.FormatFloat(float64(logits[best]), 'g', -1, 32), best, labels[best]))
	}
	return out
}

// TestRESTEndpoints checks every REST endpoint of the protocol with the
// examples of its specification (health, metadata, inference in JSON),
// and the extensions this server has (binary data, classification).
func TestRESTEndpoints(t *testing.T) {
	cifar, inet := cifarSpec(t), imagenetSpec(t)
	ts := start(t, []serve.Spec{cifar, inet}, serve.Options{MaxBatch: 4})

	for _, path := range []string{"/v2/health/live", "/v2/health/ready"} {
		r := ts.get(t, path)
		assert.Equal(t, http.StatusOK, r.code, path)
	}
	r := ts.get(t, "/v2")
	require.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "resnetgen", r.json["name"])
	assert.ElementsMatch(t, []any{"classification", "binary_tensor_data"}, r.json["extensions"])

	for _, path := range []string{"/v2/models/cifar-resnet20", "/v2/models/cifar-resnet20/versions/1"} {
		r = ts.get(t, path)
		require.Equal(t, http.StatusOK, r.code, path)
		assert.Equal(t, "cifar-resnet20", r.json["name"])
		assert.Equal(t, []any{"1"}, r.json["versions"])
		assert.Equal(t, []any{map[string]any{"name": "input", "datatype": "FP32", "shape": []any{-1.0, 3.0, 32.0, 32.0}}}, r.json["inputs"])
		assert.Equal(t, []any{map[string]any{"name": "logits", "datatype": "FP32", "shape": []any{-1.0, 10.0}}}, r.json["outputs"])
		assert.Equal(t, http.StatusOK, ts.get(t, path+"/ready").code)
	}
	r = ts.get(t, "/v2/models/resnet18")
	require.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, r.json["inputs"], map[string]any{"name": "input", "datatype": "BYTES", "shape": []any{-1.0}}, "image files in")

	x := cifarImages(t, 3)
	want := reference(t, cifar, x)

	t.Run("json", func(t *testing.T) {
		// The specification's example form: one input, flat data, and an
		// output named in outputs.
		r := ts.postJSON(t, "/v2/models/cifar-resnet20/infer", map[string]any{
			"id":      "42",
			"inputs":  []any{map[string]any{"name": "input", "shape": []int{3, 3, 32, 32}, "datatype": "FP32", "data": x}},
			"outputs": []any{map[string]any{"name": "logits"}},
		})
		o := output(t, r, 0)
		assert.Equal(t, "cifar-resnet20", r.json["model_name"])
		assert.Equal(t, "42", r.json["id"])
		assert.Equal(t, "logits", o["name"])
		assert.Equal(t, "FP32", o["datatype"])
		assert.Equal(t, []any{3.0, 10.0}, o["shape"])
		assert.Equal(t, want, jsonFloats(t, o["data"]), "float32 logits survive JSON exactly")
		// And they are the network's: the float64 reference agrees.
		net, err := resnet20.Network()
		require.NoError(t, err)
		w, err := weightfile.Load(cifarWeights, net)
		require.NoError(t, err)
		ref, err := resnet.NewReference(net, w)
		require.NoError(t, err)
		for i := range 3 {
			want64, err := ref.Forward(x[i*3072 : (i+1)*3072])
			require.NoError(t, err)
			for j, v := range want64 {
				assert.InDelta(t, v, want[i*10+j], 1e-4*10, "image %d logit %d", i, j) // logits are O(10)
			}
		}

		// Row-major nested data, a version in the path, no outputs named.
		nested := make([][][][]float32, 1)
		nested[0] = make([][][]float32, 3)
		for c := range 3 {
			nested[0][c] = make([][]float32, 32)
			for y := range 32 {
				nested[0][c][y] = x[(c*32+y)*32 : (c*32+y+1)*32]
			}
		}
		r = ts.postJSON(t, "/v2/models/cifar-resnet20/versions/1/infer", map[string]any{
			"inputs": []any{map[string]any{"name": "input", "shape": []int{1, 3, 32, 32}, "datatype": "FP32", "data": nested}},
		})
		assert.Equal(t, want[:10], jsonFloats(t, output(t, r, 0)["data"]))
	})

	t.Run("binary", func(t *testing.T) {
		r := ts.postBinary(t, "/v2/models/cifar-resnet20/infer", map[string]any{
			"inputs":  []any{map[string]any{"name": "input", "shape": []int{3, 3, 32, 32}, "datatype": "FP32", "parameters": map[string]any{"binary_data_size": 4 * len(x)}}},
			"outputs": []any{map[string]any{"name": "logits", "parameters": map[string]any{"binary_data": true}}},
		}, fp32Bytes(x))
		o := output(t, r, 0)
		assert.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
		assert.Equal(t, map[string]any{"binary_data_size": 120.0}, o["parameters"])
		assert.Nil(t, o["data"])
		assert.Equal(t, want, fromBytes(t, r.binary))
		// binary_data_output asks it for every output.
		r = ts.postBinary(t, "/v2/models/cifar-resnet20/infer", map[string]any{
			"parameters": map[string]any{"binary_data_output": true},
			"inputs":     []any{map[string]any{"name": "input", "shape": []int{3, 3, 32, 32}, "datatype": "FP32", "parameters": map[string]any{"binary_data_size": 4 * len(x)}}},
		}, fp32Bytes(x))
		assert.Equal(t, want, fromBytes(t, r.binary))
	})

	t.Run("classification", func(t *testing.T) {
		r := ts.postJSON(t, "/v2/models/cifar-resnet20/infer", map[string]any{
			"inputs":  []any{map[string]any{"name": "input", "shape": []int{3, 3, 32, 32}, "datatype": "FP32", "data": x}},
			"outputs": []any{map[string]any{"name": "logits", "parameters": map[string]any{"classification": 3}}},
		})
		o := output(t, r, 0)
		assert.Equal(t, "BYTES", o["datatype"])
		assert.Equal(t, []any{3.0, 3.0}, o["shape"])
		var wantTop []any
		for i := range 3 {
			for _, s := range top(want[i*10:(i+1)*10], 3, cifar10.ClassNames[:]) {
				wantTop = append(wantTop, s)
			}
		}
		assert.Equal(t, wantTop, o["data"])
		// The same in binary: 4-byte length, bytes, per element.
		r = ts.postJSON(t, "/v2/models/cifar-resnet20/infer", map[string]any{
			"inputs":  []any{map[string]any{"name": "input", "shape": []int{1, 3, 32, 32}, "datatype": "FP32", "data": x[:3072]}},
			"outputs": []any{map[string]any{"name": "logits", "parameters": map[string]any{"classification": 2, "binary_data": true}}},
		})
		require.Equal(t, http.StatusOK, r.code)
		var got []string
		for b := r.binary; len(b) > 0; {
			n := binary.LittleEndian.Uint32(b)
			got, b = append(got, string(b[4:4+n])), b[4+n:]
		}
		assert.Equal(t, top(want[:10], 2, cifar10.ClassNames[:]), got)
	})

	t.Run("images", func(t *testing.T) {
		files := [][]byte{encodePNG(t, 300, 260), encodeJPEG(t, 500, 375)}
		var tensors []float32
		for _, f := range files {
			img, err := preprocess.Decode(f)
			require.NoError(t, err)
			x, err := preprocess.ImageNet(img)
			require.NoError(t, err)
			tensors = append(tensors, x...)
		}
		wantImg := reference(t, inet, tensors)
		var wantTop []any
		for i := range files {
			for _, s := range top(wantImg[i*1000:(i+1)*1000], 5, imagenet.Classes) {
				wantTop = append(wantTop, s)
			}
		}
		b64 := []string{base64.StdEncoding.EncodeToString(files[0]), base64.StdEncoding.EncodeToString(files[1])}
		r := ts.postJSON(t, "/v2/models/resnet18/infer", map[string]any{
			"inputs":  []any{map[string]any{"name": "input", "shape": []int{2}, "datatype": "BYTES", "data": b64}},
			"outputs": []any{map[string]any{"name": "logits", "parameters": map[string]any{"classification": 5}}, map[string]any{"name": "logits"}},
		})
		assert.Equal(t, wantTop, output(t, r, 0)["data"])
		assert.Equal(t, wantImg, jsonFloats(t, output(t, r, 1)["data"]))
		// Image files in the binary extension.
		var bin []byte
		for _, f := range files {
			bin = binary.LittleEndian.AppendUint32(bin, uint32(len(f)))
			bin = append(bin, f...)
		}
		r = ts.postBinary(t, "/v2/models/resnet18/infer", map[string]any{
			"inputs":  []any{map[string]any{"name": "input", "shape": []int{2}, "datatype": "BYTES", "parameters": map[string]any{"binary_data_size": len(bin)}}},
			"outputs": []any{map[string]any{"name": "logits", "parameters": map[string]any{"classification": 5}}},
		}, bin)
		assert.Equal(t, wantTop, output(t, r, 0)["data"])
	})
}

func encodePNG(t *testing.T, w, h int) []byte {
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, pattern(w, h)))
	return buf.Bytes()
}

func encodeJPEG(t *testing.T, w, h int) []byte {
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, pattern(w, h), &jpeg.Options{Quality: 90}))
	return buf.Bytes()
}

// pattern is a colourful test image.
func pattern(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x ^ y) & 0xff), 255})
		}
	}
	return img
}

// TestRESTErrors: each malformed request gets its status and a message
// naming what is wrong, and the server goes on answering.
func TestRESTErrors(t *testing.T) {
	cifar, inet := cifarSpec(t), imagenetSpec(t)
	ts := start(t, []serve.Spec{cifar, inet}, serve.Options{MaxBatch: 2, MaxBody: 1 << 20})
	x := cifarImages(t, 1)
	input := func(m map[string]any) map[string]any {
		in := map[string]any{"name": "input", "shape": []int{1, 3, 32, 32}, "datatype": "FP32", "data": x}
		for k, v := range m {
			in[k] = v
		}
		return map[string]any{"inputs": []any{in}}
	}
	infer := "/v2/models/cifar-resnet20/infer"
	post := func(body string) response { return ts.do(t, http.MethodPost, infer, nil, []byte(body)) }

	requireError(t, post(`{"inputs": [`), 400, "not an inference request in JSON")
	requireError(t, post(``), 400, "not an inference request in JSON")
	requireError(t, post(`{"inputz": []}`), 400, "inputz")
	requireError(t, post(`{"inputs": [{"name": "input", "shape": [1,3,32,32], "datatype": "FP32", "data": ["a"]}]}`), 400, `inputs[0].data[0]: "\"a\"" is not a number`)
	requireError(t, post(`{"inputs": [{"name": "input", "shape": [1,3,32,32], "datatype": "FP32", "data": [1e39]}]}`), 400, "inputs[0].data[0]: 1e39 is beyond FP32's range")
	requireError(t, post(`{"inputs": [{"name": "input", "shape": [1,-3,32,32], "datatype": "FP32", "data": [1]}]}`), 400, "inputs[0].shape")
	requireError(t, ts.postJSON(t, infer, input(map[string]any{"datatype": "INT8"})), 400, `inputs[0].datatype is "INT8"`)
	requireError(t, ts.postJSON(t, infer, input(map[string]any{"shape": []int{1, 3, 31, 32}})), 400, "inputs[0].shape is [1 3 31 32]", "[N,3,32,32]")
	requireError(t, ts.postJSON(t, infer, input(map[string]any{"shape": []int{2, 3, 32, 32}})), 400, "inputs[0].data holds 3072 values; shape [2 3 32 32] needs 6144")
	requireError(t, ts.postJSON(t, infer, input(map[string]any{"shape": []int{3, 3, 32, 32}})), 400, "3 images; this server takes at most 2")
	requireError(t, ts.postJSON(t, infer, input(map[string]any{"name": "data"})), 400, `inputs[0].name is "data"`, `"input"`)
	requireError(t, ts.postJSON(t, infer, map[string]any{"inputs": []any{}}), 400, "0 input tensors")
	requireError(t, ts.postJSON(t, infer, input(map[string]any{"datatype": "BYTES", "shape": []int{1}, "data": []string{"aGk="}})), 400, "FP32 [N,3,32,32] tensors only")
	out := func(o map[string]any) map[string]any {
		b := input(nil)
		b["outputs"] = []any{o}
		return b
	}
	requireError(t, ts.postJSON(t, infer, out(map[string]any{"name": "probs"})), 400, `outputs[0].name is "probs"`)
	requireError(t, ts.postJSON(t, infer, out(map[string]any{"name": "logits", "parameters": map[string]any{"classification": 0}})), 400, "outputs[0].parameters.classification")
	requireError(t, ts.postJSON(t, infer, out(map[string]any{"name": "logits", "parameters": map[string]any{"classification": 11}})), 400, "outputs[0].parameters.classification is 11; want 1 to 10")
	requireError(t, ts.postJSON(t, infer, out(map[string]any{"name": "logits", "parameters": map[string]any{"classification": "x"}})), 400, "outputs[0].parameters.classification")
	requireError(t, ts.postJSON(t, infer, out(map[string]any{"name": "logits", "parameters": map[string]any{"top": 3}})), 400, "outputs[0].parameters.top")

	// NaN and infinities cannot be JSON numbers; binary data can carry them.
	bad := append([]float32(nil), x...)
	bad[5] = float32(math.NaN())
	binIn := map[string]any{"inputs": []any{map[string]any{"name": "input", "shape": []int{1, 3, 32, 32}, "datatype": "FP32",
		"parameters": map[string]any{"binary_data_size": 4 * len(x)}}}}
	requireError(t, ts.postBinary(t, infer, binIn, fp32Bytes(bad)), 400, "inputs[0].data[5] is NaN")
	bad[5] = float32(math.Inf(-1))
	requireError(t, ts.postBinary(t, infer, binIn, fp32Bytes(bad)), 400, "inputs[0].data[5] is -Inf")
	requireError(t, ts.postBinary(t, infer, binIn, fp32Bytes(x)[:100]), 400, "binary_data_size is 12288 with 100 binary bytes")
	requireError(t, ts.postBinary(t, infer, binIn, append(fp32Bytes(x), 1, 2, 3)), 400, "3 bytes of binary data that no input claims")
	h := http.Header{}
	h.Set(serve.HeaderLength, "99999")
	requireError(t, ts.do(t, http.MethodPost, infer, h, []byte(`{}`)), 400, serve.HeaderLength)

	// Images: unreadable, truncated, not an image.
	inetInfer := "/v2/models/resnet18/infer"
	jpg := encodeJPEG(t, 64, 48)
	for _, c := range []struct {
		file []byte
		msg  string
	}{
		{[]byte("hello, world"), "inputs[0].data[0]: not a JPEG or PNG image"},
		{jpg[:len(jpg)/2], "inputs[0].data[0]: corrupt jpeg image"},
		{encodePNG(t, 40, 30)[:60], "inputs[0].data[0]"},
	} {
		r := ts.postJSON(t, inetInfer, map[string]any{"inputs": []any{map[string]any{"name": "input", "shape": []int{1}, "datatype": "BYTES",
			"data": []string{base64.StdEncoding.EncodeToString(c.file)}}}})
		requireError(t, r, 400, c.msg)
	}
	requireError(t, ts.postJSON(t, inetInfer, map[string]any{"inputs": []any{map[string]any{"name": "input", "shape": []int{1}, "datatype": "BYTES",
		"data": []string{"not base64!"}}}}), 400, "inputs[0].data[0] is not base64")
	requireError(t, ts.postJSON(t, inetInfer, map[string]any{"inputs": []any{map[string]any{"name": "input", "shape": []int{2}, "datatype": "BYTES",
		"data": []string{base64.StdEncoding.EncodeToString(jpg)}}}}), 400, "inputs[0].shape is [2] with 1 elements")
	requireError(t, ts.postBinary(t, inetInfer, map[string]any{"inputs": []any{map[string]any{"name": "input", "shape": []int{1}, "datatype": "BYTES",
		"parameters": map[string]any{"binary_data_size": 8}}}}, []byte{9, 0, 0, 0, 1, 2, 3, 4}), 400, "element 0 says 9 bytes, 4 are left")

	// Too large a body: 413, before the server reads it all.
	requireError(t, ts.do(t, http.MethodPost, infer, nil, make([]byte, 2<<20)), 413, "larger than the 1048576 bytes")

	// Unknown models and versions: 404, on every endpoint.
	for _, path := range []string{"/v2/models/resnet99", "/v2/models/resnet99/ready", "/v2/models/cifar-resnet20/versions/2", "/v2/models/cifar-resnet20/versions/2/ready"} {
		requireError(t, ts.get(t, path), 404, "unknown model")
	}
	requireError(t, ts.postJSON(t, "/v2/models/resnet99/infer", input(nil)), 404, `unknown model "resnet99"`)
	requireError(t, ts.postJSON(t, "/v2/models/cifar-resnet20/versions/7/infer", input(nil)), 404, "version 7")
	assert.Equal(t, http.StatusMethodNotAllowed, ts.get(t, infer).code)

	// After all that, the server still answers.
	r := ts.postJSON(t, infer, input(nil))
	assert.Equal(t, reference(t, cifar, x), jsonFloats(t, output(t, r, 0)["data"]))

	// The metrics count the outcomes, by the maintained client's format.
	metrics := scrape(t, ts)
	assert.Contains(t, metrics, `resnet_inference_requests_total{model="cifar-resnet20",outcome="bad_request",protocol="rest"}`)
	assert.Contains(t, metrics, `resnet_inference_requests_total{model="",outcome="not_found",protocol="rest"} 1`)
	assert.Contains(t, metrics, `resnet_inference_requests_total{model="cifar-resnet20",outcome="ok",protocol="rest"} 1`)
}

func scrape(t *testing.T, ts *testServer) string {
	t.Helper()
	resp, err := client.Get(ts.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestGRPC: the GRPCInferenceService, contents and raw, and its errors.
func TestGRPC(t *testing.T) {
	cifar, inet := cifarSpec(t), imagenetSpec(t)
	ts := start(t, []serve.Spec{cifar, inet}, serve.Options{MaxBatch: 4})
	ctx := context.Background()
	c := ts.grpc

	live, err := c.ServerLive(ctx, &inferpb.ServerLiveRequest{})
	require.NoError(t, err)
	assert.True(t, live.GetLive())
	ready, err := c.ServerReady(ctx, &inferpb.ServerReadyRequest{})
	require.NoError(t, err)
	assert.True(t, ready.GetReady())
	meta, err := c.ServerMetadata(ctx, &inferpb.ServerMetadataRequest{})
	require.NoError(t, err)
	assert.Equal(t, "resnetgen", meta.GetName())
	mr, err := c.ModelReady(ctx, &inferpb.ModelReadyRequest{Name: "cifar-resnet20", Version: "1"})
	require.NoError(t, err)
	assert.True(t, mr.GetReady())
	mm, err := c.ModelMetadata(ctx, &inferpb.ModelMetadataRequest{Name: "resnet18"})
	require.NoError(t, err)
	assert.Equal(t, "resnet18", mm.GetName())
	require.Len(t, mm.GetInputs(), 2)
	assert.Equal(t, []int64{-1, 3, 224, 224}, mm.GetInputs()[0].GetShape())
	assert.Equal(t, []int64{-1, 1000}, mm.GetOutputs()[0].GetShape())

	x := cifarImages(t, 2)
	want := reference(t, cifar, x)
	in := &inferpb.ModelInferRequest_InferInputTensor{Name: "input", Datatype: "FP32", Shape: []int64{2, 3, 32, 32}}

	// Contents in, contents out.
	withContents := &inferpb.ModelInferRequest_InferInputTensor{Name: "input", Datatype: "FP32", Shape: []int64{2, 3, 32, 32},
		Contents: &inferpb.InferTensorContents{Fp32Contents: x}}
	resp, err := c.ModelInfer(ctx, &inferpb.ModelInferRequest{ModelName: "cifar-resnet20", Id: "7", Inputs: []*inferpb.ModelInferRequest_InferInputTensor{withContents}})
	require.NoError(t, err)
	assert.Equal(t, "7", resp.GetId())
	require.Len(t, resp.GetOutputs(), 1)
	assert.Equal(t, []int64{2, 10}, resp.GetOutputs()[0].GetShape())
	assert.Equal(t, want, resp.GetOutputs()[0].GetContents().GetFp32Contents())

	// Raw in, raw out, with a classification output besides.
	resp, err = c.ModelInfer(ctx, &inferpb.ModelInferRequest{ModelName: "cifar-resnet20", Inputs: []*inferpb.ModelInferRequest_InferInputTensor{in},
		RawInputContents: [][]byte{fp32Bytes(x)},
		Outputs: []*inferpb.ModelInferRequest_InferRequestedOutputTensor{{Name: "logits"}, {Name: "logits",
			Parameters: map[string]*inferpb.InferParameter{"classification": {ParameterChoice: &inferpb.InferParameter_Int64Param{Int64Param: 2}}}}}})
	require.NoError(t, err)
	require.Len(t, resp.GetRawOutputContents(), 2)
	assert.Equal(t, want, fromBytes(t, resp.GetRawOutputContents()[0]))
	var got []string
	for b := resp.GetRawOutputContents()[1]; len(b) > 0; {
		n := binary.LittleEndian.Uint32(b)
		got, b = append(got, string(b[4:4+n])), b[4+n:]
	}
	assert.Equal(t, append(top(want[:10], 2, cifar10.ClassNames[:]), top(want[10:], 2, cifar10.ClassNames[:])...), got)

	// Image files in bytes_contents.
	file := encodeJPEG(t, 320, 240)
	img, err := preprocess.Decode(file)
	require.NoError(t, err)
	tensor, err := preprocess.ImageNet(img)
	require.NoError(t, err)
	resp, err = c.ModelInfer(ctx, &inferpb.ModelInferRequest{ModelName: "resnet18", Inputs: []*inferpb.ModelInferRequest_InferInputTensor{{
		Name: "input", Datatype: "BYTES", Shape: []int64{1}, Contents: &inferpb.InferTensorContents{BytesContents: [][]byte{file}}}},
		Outputs: []*inferpb.ModelInferRequest_InferRequestedOutputTensor{{Name: "logits",
			Parameters: map[string]*inferpb.InferParameter{"classification": {ParameterChoice: &inferpb.InferParameter_Int64Param{Int64Param: 5}}}}}})
	require.NoError(t, err)
	var top5 []string
	for _, b := range resp.GetOutputs()[0].GetContents().GetBytesContents() {
		top5 = append(top5, string(b))
	}
	assert.Equal(t, top(reference(t, inet, tensor), 5, imagenet.Classes), top5)

	// Errors: the protocol's status codes, messages naming the field.
	for _, c2 := range []struct {
		req  *inferpb.ModelInferRequest
		code codes.Code
		msg  string
	}{
		{&inferpb.ModelInferRequest{ModelName: "resnet99", Inputs: []*inferpb.ModelInferRequest_InferInputTensor{in}}, codes.NotFound, `unknown model "resnet99"`},
		{&inferpb.ModelInferRequest{ModelName: "cifar-resnet20", ModelVersion: "3", Inputs: []*inferpb.ModelInferRequest_InferInputTensor{in}}, codes.NotFound, "version 3"},
		{&inferpb.ModelInferRequest{ModelName: "cifar-resnet20", Inputs: []*inferpb.ModelInferRequest_InferInputTensor{in}}, codes.InvalidArgument, "inputs[0].data holds 0 values"},
		{&inferpb.ModelInferRequest{ModelName: "cifar-resnet20", Inputs: []*inferpb.ModelInferRequest_InferInputTensor{in}, RawInputContents: [][]byte{{1, 2, 3}}}, codes.InvalidArgument, "raw_input_contents[0]: 3 bytes"},
		{&inferpb.ModelInferRequest{ModelName: "cifar-resnet20", Inputs: []*inferpb.ModelInferRequest_InferInputTensor{in}, RawInputContents: [][]byte{{}, {}}}, codes.InvalidArgument, "2 raw_input_contents for 1 inputs"},
		{&inferpb.ModelInferRequest{ModelName: "cifar-resnet20", Inputs: []*inferpb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP16", Shape: []int64{1, 3, 32, 32}}}}, codes.InvalidArgument, `inputs[0].datatype is "FP16"`},
		{&inferpb.ModelInferRequest{ModelName: "resnet18", Inputs: []*inferpb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "BYTES", Shape: []int64{1},
			Contents: &inferpb.InferTensorContents{BytesContents: [][]byte{[]byte("GIF89a")}}}}}, codes.InvalidArgument, "inputs[0].data[0]: not a JPEG or PNG image"},
	} {
		_, err := c.ModelInfer(ctx, c2.req)
		require.Error(t, err)
		assert.Equal(t, c2.code, status.Code(err), "%v", err)
		assert.Contains(t, status.Convert(err).Message(), c2.msg)
	}
	_, err = c.ModelMetadata(ctx, &inferpb.ModelMetadataRequest{Name: "nope"})
	assert.Equal(t, codes.NotFound, status.Code(err))
	_, err = c.ModelReady(ctx, &inferpb.ModelReadyRequest{Name: "nope"})
	assert.Equal(t, codes.NotFound, status.Code(err))
	assert.Contains(t, scrape(t, ts), `resnet_inference_requests_total{model="cifar-resnet20",outcome="ok",protocol="grpc"} 2`)
}

// TestDynamicBatching: concurrent requests are joined into one batch
// (the batch-size histogram shows it) and each gets its own answers.
func TestDynamicBatching(t *testing.T) {
	cifar := cifarSpec(t)
	// A long delay: the batch goes when it is full, not when time is up,
	// so the test does not depend on timing.
	ts := start(t, []serve.Spec{cifar}, serve.Options{MaxBatch: 4, MaxDelay: time.Minute})
	x := cifarImages(t, 4)
	want := reference(t, cifar, x)
	var wg sync.WaitGroup
	got := make([][]float32, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := ts.postBinary(t, "/v2/models/cifar-resnet20/infer", map[string]any{
				"inputs":     []any{map[string]any{"name": "input", "shape": []int{1, 3, 32, 32}, "datatype": "FP32", "parameters": map[string]any{"binary_data_size": 4 * 3072}}},
				"parameters": map[string]any{"binary_data_output": true},
			}, fp32Bytes(x[i*3072:(i+1)*3072]))
			if assert.Equal(t, http.StatusOK, r.code) {
				got[i] = fromBytes(t, r.binary)
			}
		}()
	}
	servetest.Wait(t, &wg, 2*servetest.Timeout, "the 4 requests")
	for i := range 4 {
		assert.Equal(t, want[i*10:(i+1)*10], got[i], "request %d", i)
	}
	m := scrape(t, ts)
	assert.Contains(t, m, `resnet_batch_images_count{model="cifar-resnet20"} 1`+"\n", "one batch")
	assert.Contains(t, m, `resnet_batch_images_sum{model="cifar-resnet20"} 4`+"\n", "of four images")
}

// blocking is a Network that waits for release before each batch.
type blocking struct {
	release chan struct{}
	started chan struct{}
	classes int
}

func (b *blocking) ForwardBatch(in, out []float32) error {
	b.started <- struct{}{}
	<-b.release
	for i := range out {
		out[i] = float32(i % b.classes)
	}
	return nil
}

func (b *blocking) Close() {}

// TestOverload: with the replica busy and the queue full, a request is
// refused at once (503 / UNAVAILABLE) rather than left waiting; the
// accepted ones are answered once the model moves again.
func TestOverload(t *testing.T) {
	net := &blocking{release: make(chan struct{}), started: make(chan struct{}, 8), classes: 2}
	spec := serve.Spec{Name: "slow", Arch: "test", InputH: 1, InputW: 1, Classes: 2,
		New: func(int) (serve.Network, error) { return net, nil }}
	ts := start(t, []serve.Spec{spec}, serve.Options{MaxBatch: 1, Queue: 2})
	body := map[string]any{"inputs": []any{map[string]any{"name": "input", "shape": []int{1, 3, 1, 1}, "datatype": "FP32", "data": []float32{1, 2, 3}}}}
	answers := make(chan response, 4)
	send := func() { answers <- ts.postJSON(t, "/v2/models/slow/infer", body) }
	go send()
	servetest.Within(t, servetest.Timeout, "the replica taking request 1", func() { <-net.started }) // it holds it
	// Request 2 waits in the batcher's hand for the replica, 3 and 4 in
	// the queue: it is full.
	for range 3 {
		go send()
	}
	require.Eventually(t, func() bool {
		return strings.Contains(scrape(t, ts), `resnet_queue_requests{model="slow"} 2`+"\n")
	}, 10*time.Second, 5*time.Millisecond)
	// The model cannot move until released below: an answer now is a
	// refusal that did not wait for it.
	requireError(t, ts.postJSON(t, "/v2/models/slow/infer", body), 503, "the request queue is full")
	in := &inferpb.ModelInferRequest_InferInputTensor{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 1, 1},
		Contents: &inferpb.InferTensorContents{Fp32Contents: []float32{1, 2, 3}}}
	_, err := ts.grpc.ModelInfer(context.Background(), &inferpb.ModelInferRequest{ModelName: "slow", Inputs: []*inferpb.ModelInferRequest_InferInputTensor{in}})
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	servetest.Within(t, 2*servetest.Timeout, "the 4 accepted requests", func() {
		for range 4 {
			net.release <- struct{}{}
		}
		for range 4 {
			r := <-answers
			assert.Equal(t, []float32{0, 1}, jsonFloats(t, output(t, r, 0)["data"]))
		}
	})
	assert.Contains(t, scrape(t, ts), `resnet_inference_requests_total{model="slow",outcome="overloaded",protocol="rest"} 1`)
}

func TestMain(m *testing.M) {
	if _, err := os.Stat(cifarWeights); err != nil {
		fmt.Fprintf(os.Stderr, "serve tests need the published CIFAR-10 checkpoints (README.md, Test data): %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// A program that runs its own HTTP and gRPC servers mounts Handler,
// MetricsHandler and RegisterGRPC on them.
func TestOwnServers(t *testing.T) {
	servetest.Watchdog(t, watchdog)
	srv, err := serve.New([]serve.Spec{cifarSpec(t)}, serve.Options{})
	require.NoError(t, err)
	defer srv.Close()
	mux := http.NewServeMux()
	mux.Handle("/v2/", srv.Handler())
	mux.Handle("/metrics", srv.MetricsHandler())
	hs := httptest.NewServer(mux)
	defer hs.Close()
	g := grpc.NewServer()
	srv.RegisterGRPC(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go g.Serve(ln)
	defer g.Stop()

	resp, err := client.Get(hs.URL + "/v2/models/cifar-resnet20/ready")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	conn, err := grpc.NewClient(ln.Addr().String(), append(servetest.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	require.NoError(t, err)
	defer conn.Close()
	x := cifarImages(t, 1)
	out, err := inferpb.NewGRPCInferenceServiceClient(conn).ModelInfer(context.Background(), &inferpb.ModelInferRequest{
		ModelName: "cifar-resnet20", Inputs: []*inferpb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32",
			Shape: []int64{1, 3, 32, 32}, Contents: &inferpb.InferTensorContents{Fp32Contents: x}}}})
	require.NoError(t, err)
	assert.Equal(t, reference(t, cifarSpec(t), x), out.GetOutputs()[0].GetContents().GetFp32Contents())
	resp, err = client.Get(hs.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Contains(t, string(b), `resnet_inference_requests_total{model="cifar-resnet20",outcome="ok",protocol="grpc"} 1`)
}
