package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/serve"
)

// A Net is a network the commands run: its shape and names, how image files
// become its input, and how to make a Model of it.
type Net struct {
	Name                    string // the model's name in the protocol, e.g. resnet50 or flowers
	Arch                    string // the resnet architecture, for the metadata
	InputH, InputW, Classes int
	// Labels name the classes (Labels[i] logit i); nil: classes by index.
	Labels []string
	// Images turns a JPEG or PNG file into one normalised CHW input; nil:
	// the network takes tensors only (serve) and classifies no files.
	Images func(file []byte) ([]float32, error)
	// New makes a Model; the commands add their options (batch, workers,
	// convolution algorithm, shared packed weights) to the Net's own.
	New func(opts ...engine.Option) (serve.Network, error)
}

// Spec is net for package serve: replicas of workers goroutines each,
// holding one copy of the packed weights (engine.Shared).
func (n Net) Spec(workers int, conv engine.Algorithm) serve.Spec {
	shared := engine.NewShared()
	return serve.Spec{Name: n.Name, Arch: n.Arch, InputH: n.InputH, InputW: n.InputW, Classes: n.Classes, Labels: n.Labels, Images: n.Images,
		New: func(batch int) (serve.Network, error) {
			return n.New(engine.WithBatch(batch), engine.WithWorkers(workers), engine.WithConv(conv), engine.WithShared(shared))
		}}
}

// ServeFlags are the flags of serve that do not depend on where the network
// comes from: addresses, batching, replicas, workers.
type ServeFlags struct {
	Name           string
	Addr, GRPCAddr string
	MaxBatch       int
	MaxDelay       time.Duration
	Replicas       int
	Workers        int
	Queue          int
	Conv           string
}

// AddServeFlags defines serve's flags on fs; model describes the default
// of -name ("the architecture's, e.g. resnet50").
func AddServeFlags(fs *flag.FlagSet, model string) *ServeFlags {
	f := &ServeFlags{}
	fs.StringVar(&f.Name, "name", "", "the model's name in the protocol (default: "+model+")")
	fs.StringVar(&f.Addr, "addr", "127.0.0.1:8000", "HTTP address: REST and /metrics (\"\": off); 0.0.0.0:8000 serves every interface")
	fs.StringVar(&f.GRPCAddr, "grpc-addr", "127.0.0.1:8001", "gRPC address (\"\": off)")
	fs.IntVar(&f.MaxBatch, "max-batch", 8, "images per batch, and per request")
	fs.DurationVar(&f.MaxDelay, "max-delay", 2*time.Millisecond, "how long a request waits for others to batch with (0: no batching)")
	fs.IntVar(&f.Replicas, "replicas", 1, "copies of the model running batches at once")
	fs.IntVar(&f.Workers, "workers", 0, "goroutines each replica splits a layer across (default: CPUs ÷ replicas)")
	fs.IntVar(&f.Queue, "queue", 0, "requests that may wait; beyond it the server answers 503 at once (default 4 · max-batch · replicas)")
	fs.StringVar(&f.Conv, "conv", "auto", "3x3 stride-1 convolutions: auto, direct or winograd")
	return f
}

// check refuses flags that cannot work, and sets the default of -workers.
func (f *ServeFlags) check() (engine.Algorithm, error) {
	if f.Addr == "" && f.GRPCAddr == "" {
		return 0, Usage("-addr and -grpc-addr are both off")
	}
	if f.MaxBatch < 1 || f.Replicas < 1 || f.Workers < 0 || f.Queue < 0 || f.MaxDelay < 0 {
		return 0, Usage("-max-batch and -replicas must be at least 1; -workers, -queue and -max-delay not negative")
	}
	conv, err := ParseConv(f.Conv)
	if err != nil {
		return 0, err
	}
	if f.Workers == 0 {
		f.Workers = max(1, runtime.NumCPU()/f.Replicas)
	}
	return conv, nil
}

// ShutdownGrace bounds how long SIGTERM waits for the requests already
// accepted (Kubernetes' default grace period is 30 s).
const ShutdownGrace = 25 * time.Second

// Serve serves the network open returns over the Open Inference Protocol as
// f says, until SIGTERM or an interrupt, then answers the requests already
// accepted (within ShutdownGrace) and returns nil. The flags are checked
// before open is called. prog names the command in its messages ("resnet
// serve"); it prints the addresses it listens on, the REST one as "REST on
// http://ADDR/v2/models/NAME" and the gRPC one as "gRPC on ADDR", the last
// line of the start.
func Serve(prog string, f *ServeFlags, open func() (Net, error), stderr io.Writer) error {
	// Signals are caught before the listeners open, so that a SIGTERM
	// sent as soon as the address is printed is a graceful stop too.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	return serveUntil(prog, f, open, stderr, sigs)
}

// serveUntil is Serve, stopping when stop receives.
func serveUntil(prog string, f *ServeFlags, open func() (Net, error), stderr io.Writer, stop <-chan os.Signal) error {
	conv, err := f.check()
	if err != nil {
		return err
	}
	start := time.Now()
	net, err := open()
	if err != nil {
		return err
	}
	if f.Name != "" {
		net.Name = f.Name
	}
	spec := net.Spec(f.Workers, conv)
	srv, err := serve.New([]serve.Spec{spec}, serve.Options{MaxBatch: f.MaxBatch, MaxDelay: f.MaxDelay, Replicas: f.Replicas, Queue: f.Queue})
	if err != nil {
		return err
	}
	running, err := srv.Serve(serve.Listeners{HTTP: f.Addr, GRPC: f.GRPCAddr})
	if err != nil {
		srv.Close()
		return err
	}
	images := "tensors only"
	if spec.Images != nil {
		images = "tensors or image files"
	}
	fmt.Fprintf(stderr, "%s: %s (%s, %d classes, %dx%d input, %s) ready in %.1fs: %d replica(s) × %d worker(s), batches of up to %d within %v\n",
		prog, spec.Name, spec.Arch, spec.Classes, spec.InputH, spec.InputW, images, time.Since(start).Seconds(), f.Replicas, f.Workers, f.MaxBatch, f.MaxDelay)
	if running.HTTPAddr != nil {
		fmt.Fprintf(stderr, "%s: REST on http://%s/v2/models/%s, metrics on http://%s/metrics\n", prog, running.HTTPAddr, spec.Name, running.HTTPAddr)
	}
	if running.GRPCAddr != nil {
		fmt.Fprintf(stderr, "%s: gRPC on %s\n", prog, running.GRPCAddr)
	}
	var serveErr error
	select {
	case sig := <-stop:
		fmt.Fprintf(stderr, "%s: %v: finishing the requests already accepted\n", prog, sig)
	case serveErr = <-running.Err():
	}
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	if err := running.Shutdown(ctx); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("shutting down: %w", err)
	}
	if serveErr != nil {
		return serveErr
	}
	rest, grpc := srv.Answered()
	fmt.Fprintf(stderr, "%s: stopped; answered %d inference requests over REST and %d over gRPC\n", prog, rest, grpc)
	return nil
}
