// Package serve serves generated networks over the Open Inference Protocol
// (KServe v2: the protocol model servers and their clients share; Triton
// and OpenVINO Model Server speak it too), over HTTP/REST and gRPC, with
// dynamic batching: requests that arrive within a short delay run together
// through ForwardBatch, on a few replicas of the model, behind a bounded
// queue that refuses at once (HTTP 503, gRPC UNAVAILABLE) when full instead
// of letting latency grow. cmd/resnet's serve command is built on it; a
// program can serve its own generated package the same way (Spec).
package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Network is what a generated package's Model offers the server.
type Network interface {
	ForwardBatch(in, out []float32) error
	Close()
}

// Spec describes one model to serve.
type Spec struct {
	Name                    string // the model's name in the protocol (e.g. resnet50)
	Arch                    string // the resnet architecture, for the metadata
	InputH, InputW, Classes int
	// Labels name the classes for the classification extension; nil: the
	// class index stands for its name.
	Labels []string
	// New makes one replica that takes batches of up to batch images.
	// Replicas may share their packed weights: build them with one
	// engine.Shared (engine.WithShared), as `resnet serve` does.
	New func(batch int) (Network, error)
	// Images, when set, turns image files (JPEG, PNG) into one normalised
	// CHW tensor each, for BYTES inputs; nil: the model takes FP32 only.
	Images func(file []byte) ([]float32, error)
}

// Options are the server's limits and batching.
type Options struct {
	MaxBatch int           // images per ForwardBatch (and per request); default 8
	MaxDelay time.Duration // how long the first request of a batch waits for others; 0: no batching
	Replicas int           // models running batches at once; default 1
	// Queue is how many requests may wait; beyond it requests are refused
	// at once. Default 4 · MaxBatch · Replicas.
	Queue int
	// MaxBody bounds a request: an HTTP body (larger: 413) or a gRPC
	// message (RESOURCE_EXHAUSTED). Default DefaultMaxBody.
	MaxBody int
}

func (o *Options) defaults() {
	if o.MaxBatch < 1 {
		o.MaxBatch = 8
	}
	if o.Replicas < 1 {
		o.Replicas = 1
	}
	if o.Queue < 1 {
		o.Queue = 4 * o.MaxBatch * o.Replicas
	}
	if o.MaxBody < 1 {
		o.MaxBody = DefaultMaxBody
	}
}

// Errors a request can meet besides bad input.
var (
	ErrOverloaded = errors.New("the server is at capacity: the request queue is full; retry later")
	ErrClosed     = errors.New("the server is shutting down")
)

// job is one request's images on their way through a batch.
type job struct {
	in   []float32 // n images
	n    int
	out  []float32 // n · classes logits, written by the replica
	err  error
	done chan struct{}
}

// model is one served model: its queue, batcher and replicas.
type model struct {
	spec    Spec
	opt     Options
	inLen   int
	queue   chan *job
	batches chan []*job
	wg      sync.WaitGroup // the batcher and the replicas
	nets    []Network
	metrics *metrics

	mu      sync.RWMutex // closing vs enqueueing
	closing bool
}

func newModel(spec Spec, opt Options, m *metrics) (*model, error) {
	if spec.Name == "" || spec.InputH < 1 || spec.InputW < 1 || spec.Classes < 1 || spec.New == nil {
		return nil, fmt.Errorf("serve: model %q: a name, an input size, classes and New are needed", spec.Name)
	}
	if spec.Labels != nil && len(spec.Labels) != spec.Classes {
		return nil, fmt.Errorf("serve: model %q: %d labels for %d classes", spec.Name, len(spec.Labels), spec.Classes)
	}
	md := &model{spec: spec, opt: opt, inLen: 3 * spec.InputH * spec.InputW, metrics: m,
		queue: make(chan *job, opt.Queue), batches: make(chan []*job)}
	for range opt.Replicas {
		n, err := spec.New(opt.MaxBatch)
		if err != nil {
			md.closeNets()
			return nil, fmt.Errorf("serve: model %q: %w", spec.Name, err)
		}
		md.nets = append(md.nets, n)
	}
	md.wg.Add(1 + len(md.nets))
	go md.batcher()
	for _, n := range md.nets {
		go md.replica(n)
	}
	return md, nil
}

func (md *model) closeNets() {
	for _, n := range md.nets {
		n.Close()
	}
}

// infer runs n images through the model; it refuses at once when the
// queue is full, and waits for the answer otherwise (ctx cancels the wait,
// not the work already queued).
func (md *model) infer(ctx context.Context, in []float32, n int) ([]float32, error) {
	j := &job{in: in, n: n, out: make([]float32, n*md.spec.Classes), done: make(chan struct{})}
	md.mu.RLock()
	if md.closing {
		md.mu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case md.queue <- j:
		md.metrics.queueDepth.WithLabelValues(md.spec.Name).Inc()
	default:
		md.mu.RUnlock()
		return nil, ErrOverloaded
	}
	md.mu.RUnlock()
	select {
	case <-j.done:
		return j.out, j.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// batcher gathers queued jobs into batches of up to MaxBatch images: the
// first job waits at most MaxDelay for others to join it.
func (md *model) batcher() {
	defer md.wg.Done()
	defer close(md.batches)
	var pending *job // a job that did not fit the last batch
	for {
		first := pending
		pending = nil
		if first == nil {
			j, ok := <-md.queue
			if !ok {
				return
			}
			md.metrics.queueDepth.WithLabelValues(md.spec.Name).Dec()
			first = j
		}
		batch, images := []*job{first}, first.n
		if md.opt.MaxDelay > 0 && images < md.opt.MaxBatch {
			timer := time.NewTimer(md.opt.MaxDelay)
		gather:
			for images < md.opt.MaxBatch {
				select {
				case j, ok := <-md.queue:
					if !ok {
						break gather
					}
					md.metrics.queueDepth.WithLabelValues(md.spec.Name).Dec()
					if images+j.n > md.opt.MaxBatch {
						pending = j
						break gather
					}
					batch, images = append(batch, j), images+j.n
				case <-timer.C:
					break gather
				}
			}
			timer.Stop()
		}
		md.batches <- batch
	}
}

// replica runs batches on one network until the batcher stops.
func (md *model) replica(n Network) {
	defer md.wg.Done()
	in := make([]float32, md.opt.MaxBatch*md.inLen)
	out := make([]float32, md.opt.MaxBatch*md.spec.Classes)
	for batch := range md.batches {
		images := 0
		for _, j := range batch {
			copy(in[images*md.inLen:], j.in[:j.n*md.inLen])
			images += j.n
		}
		md.metrics.batchSize.WithLabelValues(md.spec.Name).Observe(float64(images))
		err := n.ForwardBatch(in[:images*md.inLen], out[:images*md.spec.Classes])
		images = 0
		for _, j := range batch {
			if err != nil {
				j.err = err
			} else {
				copy(j.out, out[images*md.spec.Classes:(images+j.n)*md.spec.Classes])
			}
			images += j.n
			close(j.done)
		}
	}
}

// close refuses new jobs, lets the queued ones finish, and stops the
// batcher and the replicas.
func (md *model) close() {
	md.mu.Lock()
	if !md.closing {
		md.closing = true
		close(md.queue)
	}
	md.mu.Unlock()
	md.wg.Wait()
	md.closeNets()
}
