package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/npy"
	"github.com/resnetgen/resnetgen/resnet/safetensors"
	"github.com/resnetgen/resnetgen/serve"
	"github.com/resnetgen/resnetgen/serve/inferpb"
	"github.com/resnetgen/resnetgen/serve/servetest"
)

// serveWatchdog bounds a test of a `resnet serve` process in all
// (servetest.Watchdog): building the command with -race and starting the
// server take the longest, about a minute each on a busy machine.
const serveWatchdog = 10 * time.Minute

// server is a `resnet serve` process.
type server struct {
	cmd        *exec.Cmd
	http, grpc string // host:port
	stderr     *syncBuffer
	exited     chan struct{}
	err        error // Wait's, once exited is closed
}

// syncBuffer is a bytes.Buffer that a process and the test share.
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

// resnetBinary builds this command, with the race detector when the test
// runs under it (raceBuild), as a user would run it: a process of its own.
func resnetBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "resnet")
	args := []string{"build", "-o", bin}
	if raceBuild {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

var (
	restLine = regexp.MustCompile(`REST on http://([^/\s]+)/`)
	grpcLine = regexp.MustCompile(`gRPC on (\S+)`)
)

// startServe starts `resnet serve ARGS` on ports the system picks and
// waits until it prints them; the process is killed when the test ends if
// it still runs.
func startServe(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	servetest.Watchdog(t, serveWatchdog)
	s := &server{stderr: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"serve", "-addr", "127.0.0.1:0", "-grpc-addr", "127.0.0.1:0"}, args...)...)
	pipe, err := s.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(s.stderr, line)
			if m := restLine.FindStringSubmatch(line); m != nil {
				s.http = m[1]
			}
			if m := grpcLine.FindStringSubmatch(line); m != nil {
				s.grpc = m[1]
				close(ready) // the last line of the start
			}
		}
		io.Copy(s.stderr, pipe)
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	select {
	case <-ready:
	case <-s.exited:
		t.Fatalf("resnet serve exited: %v\n%s", s.err, s.stderr)
	case <-time.After(5 * time.Minute):
		t.Fatalf("resnet serve did not start:\n%s", s.stderr)
	}
	return s
}

// stop sends sig to the server and waits until it exits; if it has not
// after d, it sends SIGQUIT, on which the Go runtime prints every
// goroutine's stack to the server's stderr, and fails t with that.
func (s *server) stop(t *testing.T, sig os.Signal, d time.Duration) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(sig))
	select {
	case <-s.exited:
		return
	case <-time.After(d):
	}
	s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	t.Fatalf("resnet serve did not stop within %v of %v; its stderr, with its goroutines after SIGQUIT:\n%s", d, sig, s.stderr)
}

// protoPython compiles the server's .proto for Python (protoc
// --python_out, as a user of the protocol would) and returns the directory.
func protoPython(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("protoc", "-I", "../../serve/inferpb", "--python_out="+dir, "grpc_predict_v2.proto").CombinedOutput()
	require.NoError(t, err, "%s\nthis test needs protoc (apt-get install -y protobuf-compiler; .ci/run installs it)", out)
	return dir
}

// python runs testdata/serve_client.py with Debian's python3 (numpy,
// python3-grpcio, protobuf).
func python(t *testing.T, protoDir string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a few seconds here
	defer cancel()
	cmd := exec.CommandContext(ctx, torchPython, append([]string{"testdata/serve_client.py"}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+protoDir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s\nthis test needs Debian's python3-numpy and python3-grpcio for %s "+
		"(apt-get install -y python3-grpcio; .ci/run installs it)", out, torchPython)
}

// A client that is not ours — Python with urllib, numpy and grpcio — gets
// from `resnet serve` the logits `resnet run` writes for the same CIFAR
// test tensors (JSON, the binary extension and gRPC raw contents, batched
// three ways), and for image files the top 5 `resnet classify` reports.
func TestServeWithPythonClient(t *testing.T) {
	bin := resnetBinary(t)
	protoDir := protoPython(t)
	dir := t.TempDir()

	t.Run("cifar-resnet20 tensors", func(t *testing.T) {
		images, err := cifar10.ReadFile(filepath.Join(sharedData, "cifar10-test", "test_batch_00.bin"))
		require.NoError(t, err)
		const n = 6
		x := &npy.Array{Shape: []int{n, 3, 32, 32}, Data: make([]float32, n*3072)}
		for i := range n {
			images[i].Normalize(x.Data[i*3072 : (i+1)*3072])
		}
		in, want := filepath.Join(dir, "x.npy"), filepath.Join(dir, "want.npy")
		require.NoError(t, npy.WriteFile(in, x))
		code, _, stderr := runCmd("run", "-weights", checkpoint(t, "20"), "-in", in, "-out", want)
		require.Equal(t, 0, code, stderr)
		y, err := npy.ReadFile(want)
		require.NoError(t, err)

		s := startServe(t, bin, "-weights", checkpoint(t, "20"))
		python(t, protoDir, "tensors", s.http, s.grpc, "cifar-resnet20", in, dir)
		for _, got := range []string{"rest_json", "rest_binary", "grpc"} {
			g, err := npy.ReadFile(filepath.Join(dir, got+".npy"))
			require.NoError(t, err, got)
			assert.Equal(t, y.Shape, g.Shape, got)
			assert.Equal(t, y.Data, g.Data, "%s: the served logits differ from resnet run's", got)
		}
		s.stop(t, syscall.SIGTERM, time.Minute)
		assert.NoError(t, s.err, s.stderr.String())
		// 6 images in 3 JSON requests, 1 binary, 6 gRPC calls.
		assert.Contains(t, s.stderr.String(), "answered 4 inference requests over REST and 6 over gRPC")
	})

	t.Run("resnet18 image files", func(t *testing.T) {
		weights := filepath.Join(dir, "r18.safetensors")
		f, err := os.Create(weights)
		require.NoError(t, err)
		require.NoError(t, safetensors.Write(f, resnet.RandomWeights(resnet.MustBuild("resnet18"), 5)))
		require.NoError(t, f.Close())
		var files []string
		for i, size := range []image.Point{{320, 240}, {224, 300}, {500, 375}} {
			img := image.NewNRGBA(image.Rect(0, 0, size.X, size.Y))
			for j := range img.Pix {
				img.Pix[j] = uint8(j*(7+i) + j/(101+i) + (j/(4*size.X))*i)
			}
			var b bytes.Buffer
			name := filepath.Join(dir, fmt.Sprintf("pic%d", i))
			if i == 1 {
				require.NoError(t, jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}))
				name += ".jpg"
			} else {
				require.NoError(t, png.Encode(&b, img))
				name += ".png"
			}
			require.NoError(t, os.WriteFile(name, b.Bytes(), 0o644))
			files = append(files, name)
		}
		code, out, stderr := runCmd(append([]string{"classify", "-weights", weights, "-json"}, files...)...)
		require.Equal(t, 0, code, stderr)
		var want []classified
		require.NoError(t, json.Unmarshal([]byte(out), &want))

		s := startServe(t, bin, "-weights", weights)
		result := filepath.Join(dir, "top5.json")
		python(t, protoDir, append([]string{"images", s.http, s.grpc, "resnet18", result}, files...)...)
		b, err := os.ReadFile(result)
		require.NoError(t, err)
		var got map[string][][]int
		require.NoError(t, json.Unmarshal(b, &got))
		for _, protocol := range []string{"rest", "grpc"} {
			require.Len(t, got[protocol], len(files), protocol)
			for i, w := range want {
				var classes []int
				for _, p := range w.Top {
					classes = append(classes, p.Class)
				}
				assert.Equal(t, classes, got[protocol][i], "%s, %s: top 5", protocol, w.Image)
			}
		}
		s.stop(t, syscall.SIGTERM, time.Minute)
		assert.NoError(t, s.err, s.stderr.String())
	})
}

// SIGTERM while 32 clients send (16 REST, 16 gRPC): the process exits 0,
// and every request it answered (its own count, printed as it stops)
// reached a client — none cut off; the rest were refused cleanly (503,
// UNAVAILABLE, or no connection). CI runs it with the race detector on,
// which makes the process exit non-zero on a data race; serve's
// TestShutdownUnderLoad checks that no goroutine is left.
func TestServeStopsOnSIGTERMUnderLoad(t *testing.T) {
	bin := resnetBinary(t)
	images, err := cifar10.ReadFile(filepath.Join(sharedData, "cifar10-test", "test_batch_00.bin"))
	require.NoError(t, err)
	x := make([]float32, 3072)
	images[0].Normalize(x)
	body, err := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "input",
		"shape": []int{1, 3, 32, 32}, "datatype": "FP32", "data": x}}})
	require.NoError(t, err)

	s := startServe(t, bin, "-weights", checkpoint(t, "20"), "-max-delay", "1ms")
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	defer transport.CloseIdleConnections()
	client := servetest.Client(transport)
	conn, err := grpc.NewClient(s.grpc, append(servetest.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	require.NoError(t, err)
	defer conn.Close()
	grpcClient := inferpb.NewGRPCInferenceServiceClient(conn)

	var (
		stop                            atomic.Bool
		restOK, grpcOK, refused, unsent atomic.Int64
		problems                        = make(chan string, 64)
	)
	problem := func(format string, args ...any) {
		select {
		case problems <- fmt.Sprintf(format, args...):
		default:
		}
	}
	rest := func() {
		resp, err := client.Post("http://"+s.http+"/v2/models/cifar-resnet20/infer", "application/json", bytes.NewReader(body))
		if servetest.IsTimeout(err) {
			problem("a REST request had no answer within %v: %v", servetest.Timeout, err)
			return
		}
		if err != nil {
			unsent.Add(1) // no connection, or closed before the server read the request
			time.Sleep(time.Millisecond)
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		switch {
		case err != nil:
			problem("a REST answer was cut: %v", err)
		case resp.StatusCode == http.StatusOK && bytes.Contains(raw, []byte(`"name":"logits"`)):
			restOK.Add(1)
		case resp.StatusCode == http.StatusServiceUnavailable:
			refused.Add(1)
		default:
			problem("REST: %d %s", resp.StatusCode, raw)
		}
	}
	grpcOnce := func() {
		_, err := grpcClient.ModelInfer(context.Background(), &inferpb.ModelInferRequest{ModelName: "cifar-resnet20",
			Inputs: []*inferpb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 32, 32},
				Contents: &inferpb.InferTensorContents{Fp32Contents: x}}}})
		switch status.Code(err) {
		case codes.OK:
			grpcOK.Add(1)
		case codes.Unavailable:
			refused.Add(1)
			time.Sleep(time.Millisecond)
		default:
			problem("gRPC: %v", err)
		}
	}
	var wg sync.WaitGroup
	for c := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if c%2 == 0 {
					rest()
				} else {
					grpcOnce()
				}
			}
		}()
	}
	require.Eventually(t, func() bool { return restOK.Load() > 50 && grpcOK.Load() > 50 }, 2*time.Minute, time.Millisecond,
		"the load flows\n%s", s.stderr)
	s.stop(t, syscall.SIGTERM, time.Minute)
	stop.Store(true)
	servetest.Wait(t, &wg, 2*servetest.Timeout, "the clients, once the server has exited")
	close(problems)
	for p := range problems {
		t.Error(p)
	}
	require.NoError(t, s.err, "exit status\n%s", s.stderr)

	m := regexp.MustCompile(`answered (\d+) inference requests over REST and (\d+) over gRPC`).FindStringSubmatch(s.stderr.String())
	require.NotNil(t, m, s.stderr.String())
	servedREST, _ := strconv.ParseInt(m[1], 10, 64)
	servedGRPC, _ := strconv.ParseInt(m[2], 10, 64)
	t.Logf("answers received: %d REST, %d gRPC; %d refused while stopping, %d not sent (race detector: %v)",
		restOK.Load(), grpcOK.Load(), refused.Load(), unsent.Load(), raceBuild)
	assert.Equal(t, servedREST, restOK.Load(), "REST answers the server gave and the clients received")
	assert.Equal(t, servedGRPC, grpcOK.Load(), "gRPC answers")
	assert.Contains(t, s.stderr.String(), "terminated: finishing the requests already accepted")
	assert.False(t, strings.Contains(s.stderr.String(), "WARNING: DATA RACE"), s.stderr.String())
}

// The load test, bounded in time and count: no errors, both servers
// (batching off and on) reported; against a running server over gRPC; and
// with a queue too short for the clients, refusals instead of waits.
func TestLoadtest(t *testing.T) {
	code, out, stderr := runCmd("loadtest", "-weights", checkpoint(t, "20"), "-clients", "8", "-duration", "3s", "-requests", "300", "-json")
	require.Equal(t, 0, code, stderr)
	var res []loadResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res, 2)
	for i, name := range []string{"batching off", "batching on"} {
		r := res[i]
		assert.Equal(t, name, r.Server)
		assert.Zero(t, r.Errors, r.FirstError)
		assert.Zero(t, r.Refused, "8 clients fit the default queue")
		assert.Positive(t, r.OK)
		assert.LessOrEqual(t, r.Requests, int64(300))
		assert.Positive(t, r.ImagesPerSecond)
		assert.True(t, 0 < r.P50Ms && r.P50Ms <= r.P99Ms, "p50 %v, p99 %v", r.P50Ms, r.P99Ms)
	}
	assert.Equal(t, "2ms", res[1].MaxDelay)

	spec, err := servedModel(checkpoint(t, "20"), "", "c20", "", 1, engine.Auto, io.Discard)
	require.NoError(t, err)
	srv, err := serve.New([]serve.Spec{spec}, serve.Options{})
	require.NoError(t, err)
	running, err := srv.Serve(serve.Listeners{GRPC: "127.0.0.1:0"})
	require.NoError(t, err)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), servetest.Timeout)
		defer cancel()
		assert.NoError(t, running.Shutdown(ctx))
	}()
	code, out, stderr = runCmd("loadtest", "-target", running.GRPCAddr.String(), "-model", "c20", "-protocol", "grpc",
		"-clients", "4", "-images", "3", "-duration", "2s", "-requests", "100")
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `\s+`+regexp.QuoteMeta(running.GRPCAddr.String())+`\s+\d+\s+\d+\s+0\s+0\s`, out)

	// A queue of 2 requests for 16 clients, one image per batch: most are
	// refused, at once rather than after a wait (a bound far above a
	// refusal's time and far below a timeout's).
	code, out, stderr = runCmd("loadtest", "-weights", checkpoint(t, "20"), "-clients", "16", "-duration", "2s", "-requests", "2000",
		"-queue", "2", "-max-batch", "1", "-json")
	require.Equal(t, 0, code, stderr)
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	for _, r := range res {
		assert.Zero(t, r.Errors, r.FirstError)
		assert.Positive(t, r.Refused, r.Server)
		assert.Positive(t, r.OK, r.Server)
		assert.Less(t, r.RefusedP99Ms, 1000.0, "%s: refusals must not wait", r.Server)
	}
	t.Logf("overloaded: %+v", res)

	code, _, stderr = runCmd("loadtest", "-target", "127.0.0.1:1", "-clients", "1")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "-target needs -model")
}

// -weights may name a directory holding one weight file, as KServe's
// storage initializer leaves /mnt/models.
func TestServeWeightsDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := servedModel(dir, "", "", "", 1, engine.Auto, io.Discard)
	assert.ErrorContains(t, err, "a directory with 0 files")
	src, err := filepath.Abs(checkpoint(t, "20"))
	require.NoError(t, err)
	require.NoError(t, os.Symlink(src, filepath.Join(dir, "model.th")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".ready"), nil, 0o644))
	spec, err := servedModel(dir, "", "", "", 1, engine.Auto, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "cifar-resnet20", spec.Name)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644))
	_, err = servedModel(dir, "", "", "", 1, engine.Auto, io.Discard)
	assert.ErrorContains(t, err, `2 files ["model.th" "notes.txt"]`)
}
