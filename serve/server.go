package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/resnetgen/resnetgen/serve/inferpb"
)

// Version is the server version the metadata reports.
const Version = "1"

// Limits of one request.
const (
	// DefaultMaxBody is Options.MaxBody's default (64 MiB: a batch of
	// large images, or of 32 FP32 224×224 tensors with room to spare).
	DefaultMaxBody = 64 << 20
	// MaxImageBytes bounds one image file in a BYTES tensor.
	MaxImageBytes = 32 << 20
)

// Server serves models over REST (Handler) and gRPC (RegisterGRPC).
type Server struct {
	models  map[string]*model
	names   []string
	metrics *metrics
	reg     *prometheus.Registry
	opt     Options
	once    sync.Once
	// The inference requests answered with outputs, by protocol (the
	// metrics count them too; these are for Answered).
	restAnswered, grpcAnswered atomic.Int64
}

// New starts every model's replicas and batcher.
func New(specs []Spec, opt Options) (*Server, error) {
	opt.defaults()
	s := &Server{models: map[string]*model{}, reg: prometheus.NewRegistry(), opt: opt}
	s.metrics = newMetrics(s.reg)
	for _, spec := range specs {
		if _, dup := s.models[spec.Name]; dup {
			s.Close()
			return nil, fmt.Errorf("serve: two models named %q", spec.Name)
		}
		md, err := newModel(spec, opt, s.metrics)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.models[spec.Name] = md
		s.names = append(s.names, spec.Name)
	}
	sort.Strings(s.names)
	if len(s.models) == 0 {
		return nil, errors.New("serve: no model to serve")
	}
	return s, nil
}

// Close stops accepting inference, answers what was queued and releases
// the models. Stop the listeners first (http.Server.Shutdown,
// grpc.Server.GracefulStop) so that no request arrives after it.
func (s *Server) Close() {
	s.once.Do(func() {
		for _, md := range s.models {
			md.close()
		}
	})
}

// RegisterGRPC adds the GRPCInferenceService to g, for a program that runs
// its own gRPC server (Serve makes one otherwise). Set g's message limits
// (grpc.MaxRecvMsgSize) to the bodies it should take.
func (s *Server) RegisterGRPC(g *grpc.Server) {
	inferpb.RegisterGRPCInferenceServiceServer(g, &grpcService{s: s})
}

// Answered counts the inference requests answered with outputs so far
// (not the refused or failed ones), over REST and over gRPC.
func (s *Server) Answered() (rest, grpc int64) {
	return s.restAnswered.Load(), s.grpcAnswered.Load()
}

// Models lists the served model names, sorted.
func (s *Server) Models() []string { return s.names }

func (s *Server) model(name string) (*model, error) {
	md, ok := s.models[name]
	if !ok {
		return nil, &notFoundError{name}
	}
	return md, nil
}

type notFoundError struct{ name string }

func (e *notFoundError) Error() string { return fmt.Sprintf("unknown model %q", e.name) }

// metrics are the server's Prometheus series.
type metrics struct {
	requests   *prometheus.CounterVec   // by model, protocol and outcome
	latency    *prometheus.HistogramVec // by model and protocol
	batchSize  *prometheus.HistogramVec // by model
	queueDepth *prometheus.GaugeVec     // by model
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resnet_inference_requests_total",
			Help: "Inference requests by model, protocol (rest, grpc) and outcome (ok, bad_request, not_found, overloaded, error).",
		}, []string{"model", "protocol", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "resnet_inference_request_duration_seconds",
			Help:    "Time from a request's arrival to its answer, successful requests only.",
			Buckets: prometheus.ExponentialBuckets(0.001, 1.6, 20),
		}, []string{"model", "protocol"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "resnet_batch_images",
			Help:    "Images per ForwardBatch (dynamic batching joins requests).",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64},
		}, []string{"model"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "resnet_queue_requests",
			Help: "Requests waiting for a batch.",
		}, []string{"model"}),
	}
	reg.MustRegister(m.requests, m.latency, m.batchSize, m.queueDepth,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// outcome names an inference error for the metrics.
func outcome(err error) string {
	var bad *badRequest
	var nf *notFoundError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &bad):
		return "bad_request"
	case errors.As(err, &nf):
		return "not_found"
	case errors.Is(err, ErrOverloaded), errors.Is(err, ErrClosed):
		return "overloaded"
	}
	return "error"
}

func (s *Server) observe(modelName, protocol string, start time.Time, err error) {
	if _, ok := s.models[modelName]; !ok {
		modelName = "" // unknown names must not grow the series without bound
	}
	s.metrics.requests.WithLabelValues(modelName, protocol, outcome(err)).Inc()
	switch {
	case err != nil:
	case protocol == "rest":
		s.restAnswered.Add(1)
	default:
		s.grpcAnswered.Add(1)
	}
	if err == nil {
		s.metrics.latency.WithLabelValues(modelName, protocol).Observe(time.Since(start).Seconds())
	}
}

// MetricsHandler serves the Prometheus metrics.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
}

// Listeners are the addresses to serve on; "" leaves a protocol off.
type Listeners struct {
	HTTP, GRPC string
}

// Running is a server bound to its listeners.
type Running struct {
	HTTPAddr, GRPCAddr net.Addr
	http               *http.Server
	grpc               *grpc.Server
	srv                *Server
	errs               chan error
}

// Serve binds the listeners (REST and /metrics on HTTP, the
// GRPCInferenceService on gRPC) and serves until Shutdown.
func (s *Server) Serve(l Listeners) (*Running, error) {
	r := &Running{srv: s, errs: make(chan error, 2)}
	if l.HTTP != "" {
		ln, err := net.Listen("tcp", l.HTTP)
		if err != nil {
			return nil, err
		}
		mux := http.NewServeMux()
		mux.Handle("/v2/", s.Handler())
		mux.Handle("/v2", s.Handler())
		mux.Handle("GET /metrics", s.MetricsHandler())
		r.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
			WriteTimeout: 120 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
		r.HTTPAddr = ln.Addr()
		go func() {
			if err := r.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.errs <- err
			}
		}()
	}
	if l.GRPC != "" {
		ln, err := net.Listen("tcp", l.GRPC)
		if err != nil {
			if r.http != nil {
				r.http.Close()
			}
			return nil, err
		}
		r.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(s.opt.MaxBody), grpc.MaxSendMsgSize(s.opt.MaxBody))
		s.RegisterGRPC(r.grpc)
		r.GRPCAddr = ln.Addr()
		go func() {
			if err := r.grpc.Serve(ln); err != nil {
				r.errs <- err
			}
		}()
	}
	return r, nil
}

// Err reports a listener's failure while serving.
func (r *Running) Err() <-chan error { return r.errs }

// Shutdown stops accepting connections and requests, answers every request
// already accepted, then closes the models. ctx bounds the wait.
func (r *Running) Shutdown(ctx context.Context) error {
	var err error
	var wg sync.WaitGroup
	if r.http != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err = r.http.Shutdown(ctx)
		}()
	}
	if r.grpc != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() {
				r.grpc.GracefulStop()
				close(done)
			}()
			select {
			case <-done:
			case <-ctx.Done():
				r.grpc.Stop()
				<-done
			}
		}()
	}
	wg.Wait()
	r.srv.Close()
	return err
}
