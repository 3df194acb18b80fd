package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/resnetgen/resnetgen/engine/enginetest"
	"github.com/resnetgen/resnetgen/serve"
	"github.com/resnetgen/resnetgen/serve/inferpb"
	"github.com/resnetgen/resnetgen/serve/servetest"
)

// TestShutdownUnderLoad: Shutdown while 32 clients send (16 REST, 16
// gRPC). Every request the server took in is answered — the server's own
// count of answers equals what the clients received — every answer is
// right or a 503 / UNAVAILABLE refusal, and no goroutine is left behind.
// CI runs it under the race detector. A request the server never answers
// is an error after servetest.Timeout, and a shutdown that hangs fails the
// test with every goroutine's stack.
func TestShutdownUnderLoad(t *testing.T) {
	servetest.Watchdog(t, watchdog)
	g := enginetest.TrackGoroutines(t) // what the server, its models and the clients start
	cifar := cifarSpec(t)
	x := cifarImages(t, 8)
	want := reference(t, cifar, x)

	srv, err := serve.New([]serve.Spec{cifar}, serve.Options{MaxBatch: 8, MaxDelay: 2 * time.Millisecond})
	require.NoError(t, err)
	run, err := srv.Serve(serve.Listeners{HTTP: "127.0.0.1:0", GRPC: "127.0.0.1:0"})
	require.NoError(t, err)
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	client := servetest.Client(transport)
	conn, err := grpc.NewClient(run.GRPCAddr.String(), append(servetest.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	require.NoError(t, err)
	grpcClient := inferpb.NewGRPCInferenceServiceClient(conn)

	var (
		stop                       atomic.Bool
		restAnswers, grpcOK        atomic.Int64
		refused, notTaken, correct atomic.Int64
		wrong                      = make(chan string, 64)
	)
	report := func(format string, args ...any) {
		select {
		case wrong <- fmt.Sprintf(format, args...):
		default:
		}
	}
	restOnce := func(i int) {
		img := i % 8
		body, _ := json.Marshal(map[string]any{"id": strconv.Itoa(i), "inputs": []any{map[string]any{"name": "input",
			"shape": []int{1, 3, 32, 32}, "datatype": "FP32", "data": x[img*3072 : (img+1)*3072]}}})
		resp, err := client.Post("http://"+run.HTTPAddr.String()+"/v2/models/cifar-resnet20/infer", "application/json", bytes.NewReader(body))
		if servetest.IsTimeout(err) {
			report("request %d: no answer within %v: %v", i, servetest.Timeout, err)
			return
		}
		if err != nil {
			notTaken.Add(1) // refused or closed before the server read it
			time.Sleep(time.Millisecond)
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			report("request %d: the answer was cut: %v", i, err)
			return
		}
		restAnswers.Add(1)
		var r struct {
			Outputs []struct{ Data []float32 }
			Error   string
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			report("request %d: %v: %q", i, err, raw)
			return
		}
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(r.Error, "shutting down"):
			refused.Add(1)
		case resp.StatusCode != http.StatusOK || len(r.Outputs) != 1:
			report("request %d: %d %s", i, resp.StatusCode, raw)
		case !assert.ObjectsAreEqual(want[img*10:(img+1)*10], r.Outputs[0].Data):
			report("request %d: logits %v, want %v", i, r.Outputs[0].Data, want[img*10:(img+1)*10])
		default:
			correct.Add(1)
		}
	}
	grpcOnce := func(i int) {
		img := i % 8
		resp, err := grpcClient.ModelInfer(context.Background(), &inferpb.ModelInferRequest{ModelName: "cifar-resnet20",
			Inputs: []*inferpb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 32, 32},
				Contents: &inferpb.InferTensorContents{Fp32Contents: x[img*3072 : (img+1)*3072]}}}})
		switch {
		case status.Code(err) == codes.Unavailable:
			refused.Add(1) // the server stopping, or the connection closing before it took the call
			time.Sleep(time.Millisecond)
		case err != nil:
			report("gRPC request %d: %v", i, err)
		case !assert.ObjectsAreEqual(want[img*10:(img+1)*10], resp.GetOutputs()[0].GetContents().GetFp32Contents()):
			report("gRPC request %d: wrong logits", i)
		default:
			grpcOK.Add(1)
			correct.Add(1)
		}
	}
	var wg sync.WaitGroup
	var sent atomic.Int64
	for c := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := int(sent.Add(1))
				if c%2 == 0 {
					restOnce(i)
				} else {
					grpcOnce(i)
				}
			}
		}()
	}
	require.Eventually(t, func() bool { return correct.Load() > 200 }, time.Minute, time.Millisecond, "the load is flowing")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = run.Shutdown(ctx)
	stop.Store(true)
	if err != nil {
		t.Fatalf("Shutdown: %v; every goroutine:\n%s", err, servetest.Stacks())
	}
	servetest.Wait(t, &wg, 2*servetest.Timeout, "the clients, once the server has stopped")
	close(wrong)
	for w := range wrong {
		t.Error(w)
	}

	// The server's count of what it answered (its metrics, read directly
	// now that the listeners are closed) against what the clients got.
	rec := httptest.NewRecorder()
	srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	restServed := metricSum(t, rec.Body.String(), `resnet_inference_requests_total{model="cifar-resnet20",outcome=`, `protocol="rest"}`)
	grpcServed := metricSum(t, rec.Body.String(), `resnet_inference_requests_total{model="cifar-resnet20",outcome="ok",protocol="grpc"}`, "")
	t.Logf("%d requests: %d answered correctly, %d refused while stopping, %d not taken in (connection closed or refused)",
		sent.Load(), correct.Load(), refused.Load(), notTaken.Load())
	assert.Equal(t, restServed, restAnswers.Load(), "REST answers sent by the server and received by the clients")
	assert.Equal(t, grpcServed, grpcOK.Load(), "gRPC answers")

	conn.Close()
	transport.CloseIdleConnections()
	// Polled here, not with assert.Eventually: that runs the condition on
	// a goroutine of its own, which the count would include.
	n, left := g.Count(t, "")
	for deadline := time.Now().Add(10 * time.Second); n > 0 && time.Now().Before(deadline); n, left = g.Count(t, "") {
		time.Sleep(10 * time.Millisecond)
	}
	assert.Zero(t, n, "goroutines the test started (server, models, clients) left running:\n%s", left)
}

// metricSum adds the values of the series whose line starts with prefix
// and contains suffix.
func metricSum(t *testing.T, text, prefix, suffix string) int64 {
	t.Helper()
	var sum int64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, suffix) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		require.NoError(t, err, line)
		sum += int64(v)
	}
	return sum
}
