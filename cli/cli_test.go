package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
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
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/labels"
	"github.com/resnetgen/resnetgen/resnet/preprocess"
	"github.com/resnetgen/resnetgen/resnet/safetensors"
	"github.com/resnetgen/resnetgen/serve"
	"github.com/resnetgen/resnetgen/serve/inferpb"
)

// cifarTransform is the CIFAR networks' evaluation: their 32×32 images as
// they are, ImageNet's statistics.
var cifarTransform = preprocess.Transform{Height: 32, Width: 32, Mean: preprocess.ImageNetMean(), Std: preprocess.ImageNetStd()}

// testNet is ResNet-20 with random weights, CIFAR-10's names and image
// files through cifarTransform; models counts the Models made.
func testNet(t *testing.T) (Net, *resnet.Weights) {
	t.Helper()
	net, err := resnet20.Network()
	require.NoError(t, err)
	w := resnet.RandomWeights(net, 3)
	return Net{Name: "c20", Arch: resnet20.Arch, InputH: 32, InputW: 32, Classes: 10, Labels: labels.CIFAR10(),
		Images: func(file []byte) ([]float32, error) {
			x := make([]float32, cifarTransform.Len())
			return x, cifarTransform.File(x, file)
		},
		New: func(opts ...engine.Option) (serve.Network, error) { return resnet20.New(w, opts...) },
	}, w
}

// pngFile writes a w×h PNG with a pattern set by seed and returns its path
// and bytes.
func pngFile(t *testing.T, dir string, w, h, seed int) (string, []byte) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i*(7+seed) + i/(31+seed))
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	path := filepath.Join(dir, fmt.Sprintf("pic%d.png", seed))
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
	return path, b.Bytes()
}

// want is what the network says of an image file, computed here.
func want(t *testing.T, n Net, file []byte, k int) []labels.Prediction {
	t.Helper()
	x, err := n.Images(file)
	require.NoError(t, err)
	m, err := n.New()
	require.NoError(t, err)
	defer m.Close()
	logits := make([]float32, n.Classes)
	require.NoError(t, m.ForwardBatch(x, logits))
	p, err := labels.Top(logits, k, n.Labels)
	require.NoError(t, err)
	return p
}

func TestRun(t *testing.T) {
	var ran []string
	cmds := []Command{
		{"ok", "succeeds", func(args []string, _, _ io.Writer) error { ran = append(ran, strings.Join(args, " ")); return nil }},
		{"bad", "fails", func([]string, io.Writer, io.Writer) error { return errors.New("broken") }},
		{"misused", "a usage error", func([]string, io.Writer, io.Writer) error { return Usage("-x is required") }},
	}
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"ok", "a", "b"}, 0, ""},
		{[]string{"bad"}, 1, "prog bad: broken\n"},
		{[]string{"misused"}, 2, "prog misused: usage: -x is required\n"},
		{[]string{"nope"}, 2, "prog: unknown command \"nope\"\nusage: prog <command> [flags]"},
		{nil, 2, "usage: prog <command> [flags]\n\ncommands:\n  ok      succeeds\n  bad     fails\n  misused a usage error\n"},
	} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, c.code, Run("prog", cmds, c.args, &stdout, &stderr), "%v", c.args)
		if c.stderr == "" {
			assert.Empty(t, stderr.String())
		} else {
			assert.Contains(t, stderr.String(), c.stderr, "%v", c.args)
		}
	}
	assert.Equal(t, []string{"a b"}, ran)
}

// Classify prints each image's top classes as the network gives them, in
// order; a file that is not an image is reported and skipped.
func TestClassify(t *testing.T) {
	n, _ := testNet(t)
	dir := t.TempDir()
	a, fa := pngFile(t, dir, 40, 30, 1)
	b, fb := pngFile(t, dir, 17, 50, 2)
	notImage := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notImage, []byte("not an image"), 0o644))
	truncated := filepath.Join(dir, "cut.png")
	require.NoError(t, os.WriteFile(truncated, fb[:len(fb)/2], 0o644))

	var stdout, stderr bytes.Buffer
	require.NoError(t, Classify("test classify", n, []string{a, b}, &ClassifyFlags{Top: 3, JSON: true}, &stdout, &stderr))
	var got []Classified
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &got))
	assert.Equal(t, []Classified{{Image: a, Top: want(t, n, fa, 3)}, {Image: b, Top: want(t, n, fb, 3)}}, got)
	assert.NotEqual(t, got[0].Top, got[1].Top, "the images differ, so the order is tested")

	stdout.Reset()
	err := Classify("test classify", n, []string{notImage, a, truncated}, &ClassifyFlags{Top: 2}, &stdout, &stderr)
	assert.EqualError(t, err, "2 of 3 images could not be classified")
	top := want(t, n, fa, 2)
	assert.Equal(t, fmt.Sprintf("%s\n  %6.2f%%  %s\n  %6.2f%%  %s\n", a, 100*top[0].Probability, top[0].Label, 100*top[1].Probability, top[1].Label), stdout.String())
	assert.Contains(t, stderr.String(), "test classify: "+notImage+": not a JPEG or PNG image")
	assert.Contains(t, stderr.String(), "test classify: "+truncated+": corrupt png image")

	n.Labels = nil
	stdout.Reset()
	require.NoError(t, Classify("test classify", n, []string{a}, &ClassifyFlags{Top: 1}, &stdout, &stderr))
	assert.Equal(t, fmt.Sprintf("%s\n  %6.2f%%  class %d\n", a, 100*top[0].Probability, top[0].Class), stdout.String())

	for _, k := range []int{0, 11} {
		err := Classify("test classify", n, []string{a}, &ClassifyFlags{Top: k}, &stdout, &stderr)
		assert.ErrorIs(t, err, ErrUsage)
	}
	n.Images = nil
	assert.EqualError(t, Classify("test classify", n, []string{a}, &ClassifyFlags{Top: 1}, &stdout, &stderr),
		"c20 takes tensors only: no preprocessing of image files for it")
}

// syncBuffer is a bytes.Buffer the server and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	restLine = regexp.MustCompile(`REST on http://([^/\s]+)/`)
	grpcLine = regexp.MustCompile(`gRPC on (\S+)`)
)

// Serve answers image files with the network's top classes over REST and
// gRPC, refuses a corrupt one (400, INVALID_ARGUMENT) and goes on serving,
// and returns nil once stopped.
func TestServe(t *testing.T) {
	n, _ := testNet(t)
	dir := t.TempDir()
	_, file := pngFile(t, dir, 40, 30, 1)
	top := want(t, n, file, 3)

	fs := NewFlags("test serve", io.Discard)
	f := AddServeFlags(fs, "the net's")
	require.NoError(t, Parse(fs, []string{"-addr", "127.0.0.1:0", "-grpc-addr", "127.0.0.1:0", "-name", "mine", "-workers", "1"}))
	stop := make(chan os.Signal, 1)
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- serveUntil("test serve", f, func() (Net, error) { return n, nil }, stderr, stop) }()
	var httpAddr, grpcAddr string
	require.Eventually(t, func() bool {
		if m := grpcLine.FindStringSubmatch(stderr.String()); m != nil {
			grpcAddr = m[1]
			httpAddr = restLine.FindStringSubmatch(stderr.String())[1]
			return true
		}
		return false
	}, time.Minute, 5*time.Millisecond, "the server starts: %s", stderr)
	assert.Contains(t, stderr.String(), "test serve: mine (cifar-resnet20, 10 classes, 32x32 input, tensors or image files) ready in")

	wantStrings := func() []string {
		var s []string
		for _, p := range top {
			s = append(s, fmt.Sprintf(":%d:%s", p.Class, p.Label))
		}
		return s
	}()
	rest := func(file []byte) (int, []string, string) {
		body, err := json.Marshal(map[string]any{
			"inputs":  []any{map[string]any{"name": "input", "shape": []int{1}, "datatype": "BYTES", "data": []string{base64.StdEncoding.EncodeToString(file)}}},
			"outputs": []any{map[string]any{"name": "logits", "parameters": map[string]any{"classification": 3}}},
		})
		require.NoError(t, err)
		resp, err := http.Post("http://"+httpAddr+"/v2/models/mine/infer", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var answer struct{ Outputs []struct{ Data []string } }
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, nil, string(raw)
		}
		require.NoError(t, json.Unmarshal(raw, &answer))
		var got []string
		for _, s := range answer.Outputs[0].Data {
			got = append(got, s[strings.Index(s, ":"):]) // the score is the logit: its digits depend on the tier
		}
		return resp.StatusCode, got, string(raw)
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := inferpb.NewGRPCInferenceServiceClient(conn)
	gRPC := func(file []byte) ([]string, error) {
		r, err := client.ModelInfer(context.Background(), &inferpb.ModelInferRequest{ModelName: "mine",
			Inputs: []*inferpb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "BYTES", Shape: []int64{1},
				Contents: &inferpb.InferTensorContents{BytesContents: [][]byte{file}}}},
			Outputs: []*inferpb.ModelInferRequest_InferRequestedOutputTensor{{Name: "logits",
				Parameters: map[string]*inferpb.InferParameter{"classification": {ParameterChoice: &inferpb.InferParameter_Int64Param{Int64Param: 3}}}}}})
		if err != nil {
			return nil, err
		}
		var got []string
		for _, s := range r.Outputs[0].Contents.BytesContents {
			got = append(got, string(s[bytes.IndexByte(s, ':'):]))
		}
		return got, nil
	}

	code, got, raw := rest(file)
	require.Equal(t, http.StatusOK, code, raw)
	assert.Equal(t, wantStrings, got)
	g, err := gRPC(file)
	require.NoError(t, err)
	assert.Equal(t, wantStrings, g)
	for _, badFile := range [][]byte{[]byte("not an image"), file[:len(file)/2]} {
		code, _, raw = rest(badFile)
		assert.Equal(t, http.StatusBadRequest, code, raw)
		assert.Contains(t, raw, "inputs[0].data[0]: ")
		_, err = gRPC(badFile)
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	}
	code, got, raw = rest(file)
	require.Equal(t, http.StatusOK, code, "still serving after bad input: %s", raw)
	assert.Equal(t, wantStrings, got)

	stop <- syscall.SIGTERM
	select {
	case err := <-done:
		require.NoError(t, err, stderr.String())
	case <-time.After(time.Minute):
		t.Fatalf("the server did not stop:\n%s", stderr)
	}
	assert.Contains(t, stderr.String(), "test serve: terminated: finishing the requests already accepted")
	assert.Contains(t, stderr.String(), "test serve: stopped; answered 2 inference requests over REST and 1 over gRPC")
}

// Flags that cannot work are usage errors, found before the network is
// opened.
func TestServeFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-addr", "", "-grpc-addr", ""}, "-addr and -grpc-addr are both off"},
		{[]string{"-max-batch", "0"}, "-max-batch and -replicas must be at least 1"},
		{[]string{"-workers", "-1"}, "-workers, -queue and -max-delay not negative"},
		{[]string{"-conv", "fast"}, `-conv "fast": want auto, direct or winograd`},
	} {
		fs := NewFlags("test serve", io.Discard)
		f := AddServeFlags(fs, "")
		require.NoError(t, Parse(fs, c.args))
		opened := false
		err := serveUntil("test serve", f, func() (Net, error) { opened = true; return Net{}, nil }, io.Discard, nil)
		assert.ErrorIs(t, err, ErrUsage, "%v", c.args)
		assert.ErrorContains(t, err, c.want, "%v", c.args)
		assert.False(t, opened, "%v", c.args)
	}
}

// Main is a generated package's command: -weights required without
// embedded weights, optional with; -precision only where the package runs
// in int8.
func TestPackageMain(t *testing.T) {
	n, w := testNet(t)
	dir := t.TempDir()
	pic, _ := pngFile(t, dir, 40, 30, 1)
	weights := filepath.Join(dir, "w.safetensors")
	f, err := os.Create(weights)
	require.NoError(t, err)
	require.NoError(t, safetensors.Write(f, w))
	require.NoError(t, f.Close())
	var opts [][]engine.Option
	p := Package{Name: "c20", Arch: resnet20.Arch, InputH: 32, InputW: 32, Classes: 10, Labels: cifar10.ClassNames[:],
		Transform: cifarTransform.String(), Preprocess: n.Images, Network: resnet20.Network,
		New: func(w *resnet.Weights, o ...engine.Option) (serve.Network, error) {
			opts = append(opts, o)
			return resnet20.New(w, o...)
		},
	}
	main := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := Main(p, args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, _, stderr := main()
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "usage: c20 <command> [flags]")
	assert.Contains(t, stderr, "classify the most probable of the 10 classes of JPEG/PNG images (CenterCrop((32, 32)), ToTensor()")

	code, _, stderr = main("classify", pic)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "c20 classify: usage: -weights is required: c20 has no weights compiled in")
	code, _, stderr = main("classify", "-precision", "fp32", "-weights", weights, pic)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "flag provided but not defined: -precision", "a float32 package has no -precision")

	code, out, stderr := main("classify", "-weights", weights, "-json", pic)
	require.Equal(t, 0, code, stderr)
	var got []Classified
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	file, err := os.ReadFile(pic)
	require.NoError(t, err)
	assert.Equal(t, want(t, n, file, 5), got[0].Top)

	// A weights directory as KServe leaves /mnt/models.
	wdir := t.TempDir()
	require.NoError(t, os.Symlink(weights, filepath.Join(wdir, "model.safetensors")))
	code, _, stderr = main("classify", "-weights", wdir, pic)
	require.Equal(t, 0, code, stderr)

	// Embedded weights and int8 by default: -precision fp32 asks for float32.
	p.Load = func(o ...engine.Option) (serve.Network, error) { return p.New(w, o...) }
	p.Int8 = true
	opts = nil
	code, _, stderr = main("classify", "-precision", "fp32", pic)
	require.Equal(t, 0, code, stderr)
	require.Len(t, opts, 1)
	// The package's own default comes first (a calibrated package puts
	// engine.WithInt8 there), then the command's options.
	precision := func(o []engine.Option) engine.Precision {
		cfg, err := engine.NewConfig(append([]engine.Option{engine.WithPrecision(engine.Int8)}, o...)...)
		require.NoError(t, err)
		return cfg.Precision
	}
	assert.Equal(t, engine.FP32, precision(opts[0]))
	p.Load = func(o ...engine.Option) (serve.Network, error) {
		opts = append(opts, o)
		return nil, errors.New("no int8 kernels here")
	}
	code, _, stderr = main("classify", pic)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "c20 classify: no int8 kernels here")
	assert.Equal(t, engine.Int8, precision(opts[1]), "int8 by default")
	code, _, stderr = main("classify", "-precision", "int4", pic)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `c20 classify: usage: -precision: unknown precision "int4" (want fp32 or int8)`)
	code, _, stderr = main("serve", "-precision", "fp16")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `c20 serve: usage: -precision: unknown precision "fp16"`)
	code, _, stderr = main("classify", "-weights", filepath.Join(dir, "nowhere.pth"), pic)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "no such file")
}
