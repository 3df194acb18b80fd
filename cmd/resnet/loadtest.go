package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/serve"
	"github.com/resnetgen/resnetgen/serve/inferpb"
)

// loadResult is one load test: what the clients sent and got.
type loadResult struct {
	Server   string  `json:"server"` // "batching off", "batching on" or the target
	MaxDelay string  `json:"max_delay,omitempty"`
	Requests int64   `json:"requests"`
	OK       int64   `json:"ok"`
	Refused  int64   `json:"refused"` // 503 / UNAVAILABLE: the queue was full
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	// Images per second answered; latencies of the answered requests, and
	// of the refusals (a full queue must refuse fast).
	ImagesPerSecond float64 `json:"images_per_second"`
	P50Ms           float64 `json:"p50_ms"`
	P99Ms           float64 `json:"p99_ms"`
	RefusedP99Ms    float64 `json:"refused_p99_ms,omitempty"`
	FirstError      string  `json:"first_error,omitempty"`

	ok, refused []time.Duration
}

func runLoadtest(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("loadtest", stderr)
	weights := fs.String("weights", "", "serve these weights in this process on loopback, with batching off and on, and load each")
	arch := fs.String("arch", "", "with -weights: the network (default: the one the weights fit)")
	target := fs.String("target", "", "instead of -weights: a running server's address, host:port (REST, or gRPC with -protocol grpc)")
	modelName := fs.String("model", "", "with -target: the model's name")
	protocol := fs.String("protocol", "rest", "rest (binary tensor data extension) or grpc (raw contents)")
	clients := fs.Int("clients", 32, "concurrent clients, each sending its next request when answered")
	duration := fs.Duration("duration", 20*time.Second, "how long each server is loaded, per round")
	maxRequests := fs.Int("requests", 0, "stop each load after this many requests (0: no bound but -duration)")
	images := fs.Int("images", 1, "images per request")
	rounds := fs.Int("rounds", 1, "with -weights: rounds, each loading batching off then on (the machine's noise falls on both)")
	maxBatch := fs.Int("max-batch", 8, "with -weights: images per batch")
	maxDelay := fs.Duration("max-delay", 2*time.Millisecond, "with -weights: the batching delay of the batching-on server")
	replicas := fs.Int("replicas", 1, "with -weights: model replicas")
	workers := fs.Int("workers", 0, "with -weights: goroutines per replica (default: CPUs ÷ replicas)")
	queue := fs.Int("queue", 0, "with -weights: the request queue (default 4 · max-batch · replicas)")
	asJSON := fs.Bool("json", false, "print a JSON array of results")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case (*weights == "") == (*target == ""):
		return fmt.Errorf("%w: give -weights (a server in this process) or -target (a running one)", errUsage)
	case *target != "" && *modelName == "":
		return fmt.Errorf("%w: -target needs -model", errUsage)
	case *protocol != "rest" && *protocol != "grpc":
		return fmt.Errorf("%w: -protocol is rest or grpc, not %q", errUsage, *protocol)
	case *clients < 1 || *duration <= 0 || *maxRequests < 0 || *images < 1 || *rounds < 1 || *maxBatch < 1 || *replicas < 1 || *workers < 0 || *queue < 0 || *maxDelay <= 0:
		return fmt.Errorf("%w: -clients, -duration, -images, -rounds, -max-batch, -replicas and -max-delay must be positive; -requests, -workers and -queue not negative", errUsage)
	}
	load := loadConfig{protocol: *protocol, clients: *clients, duration: *duration, maxRequests: int64(*maxRequests), images: *images}

	var results []*loadResult
	if *target != "" {
		r, err := load.run(*target, *modelName, *target)
		if err != nil {
			return err
		}
		results = append(results, r)
	} else {
		if *images > *maxBatch {
			return fmt.Errorf("%w: -images %d is more than -max-batch %d, which bounds a request", errUsage, *images, *maxBatch)
		}
		if *workers == 0 {
			*workers = max(1, runtime.NumCPU() / *replicas)
		}
		spec, err := servedModel(*weights, *arch, "", "", *workers, engine.Auto, stderr)
		if err != nil {
			return err
		}
		type server struct {
			name    string
			delay   time.Duration
			running *serve.Running
			total   *loadResult
		}
		var servers []*server
		defer func() {
			for _, s := range servers {
				s.running.Shutdown(context.Background())
			}
		}()
		for _, delay := range []time.Duration{0, *maxDelay} {
			srv, err := serve.New([]serve.Spec{spec}, serve.Options{MaxBatch: *maxBatch, MaxDelay: delay, Replicas: *replicas, Queue: *queue})
			if err != nil {
				return err
			}
			running, err := srv.Serve(serve.Listeners{HTTP: "127.0.0.1:0", GRPC: "127.0.0.1:0"})
			if err != nil {
				srv.Close()
				return err
			}
			name := "batching off"
			if delay > 0 {
				name = "batching on"
			}
			servers = append(servers, &server{name: name, delay: delay, running: running,
				total: &loadResult{Server: name, MaxDelay: delay.String()}})
		}
		fmt.Fprintf(stderr, "loadtest: %s (%s), %d clients over %s, %d image(s) per request, %s per load; %d replica(s) × %d worker(s), batches of up to %d\n",
			spec.Name, *protocol, *clients, "loopback", *images, *duration, *replicas, *workers, *maxBatch)
		for round := range *rounds {
			for _, s := range servers {
				addr := s.running.HTTPAddr.String()
				if *protocol == "grpc" {
					addr = s.running.GRPCAddr.String()
				}
				r, err := load.run(addr, spec.Name, s.name)
				if err != nil {
					return err
				}
				fmt.Fprintf(stderr, "loadtest: round %d/%d, %s: %.1f images/s, p99 %.1f ms\n", round+1, *rounds, s.name, r.ImagesPerSecond, r.P99Ms)
				s.total.add(r, *images)
			}
		}
		for _, s := range servers {
			results = append(results, s.total)
		}
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\trequests\tok\trefused\terrors\timages/s\tp50 ms\tp99 ms\trefused p99 ms\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t\n", r.Server, r.Requests, r.OK, r.Refused, r.Errors, r.ImagesPerSecond, r.P50Ms, r.P99Ms, r.RefusedP99Ms)
	}
	tw.Flush()
	if len(results) == 2 && results[0].ImagesPerSecond > 0 {
		fmt.Fprintf(stdout, "batching (max-delay %s): %.2f× the images/s, p99 %.1f → %.1f ms\n", results[1].MaxDelay,
			results[1].ImagesPerSecond/results[0].ImagesPerSecond, results[0].P99Ms, results[1].P99Ms)
	}
	for _, r := range results {
		if r.Errors > 0 {
			return fmt.Errorf("%s: %d of %d requests failed; the first: %s", r.Server, r.Errors, r.Requests, r.FirstError)
		}
	}
	return nil
}

// add pools another load's requests into r.
func (r *loadResult) add(o *loadResult, images int) {
	r.Requests += o.Requests
	r.OK += o.OK
	r.Refused += o.Refused
	r.Errors += o.Errors
	r.Seconds += o.Seconds
	if r.FirstError == "" {
		r.FirstError = o.FirstError
	}
	r.ok = append(r.ok, o.ok...)
	r.refused = append(r.refused, o.refused...)
	r.summarise(images)
}

func (r *loadResult) summarise(images int) {
	if r.Seconds > 0 {
		r.ImagesPerSecond = float64(r.OK*int64(images)) / r.Seconds
	}
	r.P50Ms, r.P99Ms = quantileMs(r.ok, 0.5), quantileMs(r.ok, 0.99)
	r.RefusedP99Ms = quantileMs(r.refused, 0.99)
}

func quantileMs(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]) / 1e6
}

type loadConfig struct {
	protocol    string
	clients     int
	duration    time.Duration
	maxRequests int64
	images      int
}

// outcome of one request.
const (
	answered = iota
	refusedFull
	failed
)

// run loads the server at addr: clients send requests back to back until
// the duration or the request count is spent.
func (c loadConfig) run(addr, model, name string) (*loadResult, error) {
	send, closeClient, err := c.client(addr, model)
	if err != nil {
		return nil, err
	}
	defer closeClient()
	res := &loadResult{Server: name}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		requests atomic.Int64
	)
	start := time.Now()
	deadline := start.Add(c.duration)
	for range c.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ok, refused []time.Duration
			var errs int64
			var firstErr string
			for time.Now().Before(deadline) && (c.maxRequests == 0 || requests.Add(1) <= c.maxRequests) {
				t := time.Now()
				outcome, err := send()
				d := time.Since(t)
				switch outcome {
				case answered:
					ok = append(ok, d)
				case refusedFull:
					refused = append(refused, d)
				default:
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.ok, res.refused = append(res.ok, ok...), append(res.refused, refused...)
			res.Errors += errs
			if res.FirstError == "" {
				res.FirstError = firstErr
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.OK, res.Refused = int64(len(res.ok)), int64(len(res.refused))
	res.Requests = res.OK + res.Refused + res.Errors
	res.summarise(c.images)
	return res, nil
}

// client returns a function that sends one request of c.images random
// images and checks the answer's size, over REST with the binary tensor
// data extension or over gRPC with raw contents; the model's input and
// output shapes come from its metadata.
func (c loadConfig) client(addr, model string) (send func() (int, error), closeClient func(), err error) {
	if c.protocol == "grpc" {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, nil, err
		}
		client := inferpb.NewGRPCInferenceServiceClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		meta, err := client.ModelMetadata(ctx, &inferpb.ModelMetadataRequest{Name: model})
		if err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("%s: model metadata: %w", addr, err)
		}
		shape, classes, err := loadShapes(meta.GetInputs()[0].GetShape(), meta.GetOutputs()[0].GetShape(), c.images)
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		req := &inferpb.ModelInferRequest{ModelName: model,
			Inputs:           []*inferpb.ModelInferRequest_InferInputTensor{{Name: serve.InputName, Datatype: "FP32", Shape: shape}},
			RawInputContents: [][]byte{randomTensor(shape)}}
		want := 4 * c.images * classes
		return func() (int, error) {
			resp, err := client.ModelInfer(context.Background(), req)
			switch {
			case status.Code(err) == codes.Unavailable:
				return refusedFull, err
			case err != nil:
				return failed, err
			case len(resp.GetRawOutputContents()) != 1 || len(resp.GetRawOutputContents()[0]) != want:
				return failed, fmt.Errorf("an answer of %d raw outputs, not 1 of %d bytes", len(resp.GetRawOutputContents()), want)
			}
			return answered, nil
		}, func() { conn.Close() }, nil
	}

	transport := &http.Transport{MaxIdleConnsPerHost: c.clients}
	client := &http.Client{Transport: transport, Timeout: time.Minute}
	resp, err := client.Get("http://" + addr + "/v2/models/" + model)
	if err != nil {
		return nil, nil, err
	}
	var meta struct {
		Inputs, Outputs []struct{ Shape []int64 }
	}
	err = json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(meta.Inputs) == 0 || len(meta.Outputs) == 0 {
		return nil, nil, fmt.Errorf("%s: model %q's metadata: status %s, %v", addr, model, resp.Status, err)
	}
	shape, classes, err := loadShapes(meta.Inputs[0].Shape, meta.Outputs[0].Shape, c.images)
	if err != nil {
		return nil, nil, err
	}
	raw := randomTensor(shape)
	header, _ := json.Marshal(map[string]any{
		"inputs":  []any{map[string]any{"name": serve.InputName, "shape": shape, "datatype": "FP32", "parameters": map[string]any{"binary_data_size": len(raw)}}},
		"outputs": []any{map[string]any{"name": serve.OutputName, "parameters": map[string]any{"binary_data": true}}},
	})
	body := append(header, raw...)
	url := "http://" + addr + "/v2/models/" + model + "/infer"
	want := 4 * c.images * classes
	return func() (int, error) {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set(serve.HeaderLength, strconv.Itoa(len(header)))
		resp, err := client.Do(req)
		if err != nil {
			return failed, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		n, _ := strconv.Atoi(resp.Header.Get(serve.HeaderLength))
		switch {
		case err != nil:
			return failed, err
		case resp.StatusCode == http.StatusServiceUnavailable:
			return refusedFull, errors.New(resp.Status)
		case resp.StatusCode != http.StatusOK:
			return failed, fmt.Errorf("%s: %.200s", resp.Status, b)
		case n < 1 || len(b)-n != want:
			return failed, fmt.Errorf("an answer of %d bytes after a %d-byte header, want %d bytes of logits", len(b)-n, n, want)
		}
		return answered, nil
	}, transport.CloseIdleConnections, nil
}

// loadShapes reads the metadata's [-1,3,H,W] input and [-1,classes]
// output, and gives a request's input shape.
func loadShapes(in, out []int64, images int) ([]int64, int, error) {
	if len(in) != 4 || len(out) != 2 || out[1] < 1 {
		return nil, 0, fmt.Errorf("the model's metadata has input shape %v and output shape %v; want [-1,3,H,W] and [-1,classes]", in, out)
	}
	return []int64{int64(images), in[1], in[2], in[3]}, int(out[1]), nil
}

// randomTensor is a request's FP32 input, little-endian: values like
// normalised pixels, the same every run.
func randomTensor(shape []int64) []byte {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(rng.NormFloat64())))
	}
	return b
}
