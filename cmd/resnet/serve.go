package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/imagenet"
	"github.com/resnetgen/resnetgen/resnet/labels"
	"github.com/resnetgen/resnetgen/resnet/preprocess"
	"github.com/resnetgen/resnetgen/serve"
)

// shutdownGrace bounds how long SIGTERM waits for the requests already
// accepted (Kubernetes' default grace period is 30 s).
const shutdownGrace = 25 * time.Second

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	arch := fs.String("arch", "", "network, e.g. resnet50 or cifar-resnet20 (default: the one the weights fit)")
	weights := fs.String("weights", "", "weights: PyTorch checkpoint, safetensors or ONNX")
	name := fs.String("name", "", "the model's name in the protocol (default: the architecture's, e.g. resnet50)")
	addr := fs.String("addr", "127.0.0.1:8000", "HTTP address: REST and /metrics (\"\": off); 0.0.0.0:8000 serves every interface")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:8001", "gRPC address (\"\": off)")
	maxBatch := fs.Int("max-batch", 8, "images per batch, and per request")
	maxDelay := fs.Duration("max-delay", 2*time.Millisecond, "how long a request waits for others to batch with (0: no batching)")
	replicas := fs.Int("replicas", 1, "copies of the model running batches at once")
	workers := fs.Int("workers", 0, "goroutines each replica splits a layer across (default: CPUs ÷ replicas)")
	queue := fs.Int("queue", 0, "requests that may wait; beyond it the server answers 503 at once (default 4 · max-batch · replicas)")
	labelsFile := fs.String("labels", "", "file with the class names, one per line (default: ImageNet's for 1000 classes, CIFAR-10's for the CIFAR nets)")
	convFlag := fs.String("conv", "auto", "3x3 stride-1 convolutions: auto, direct or winograd")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *weights == "" {
		return fmt.Errorf("%w: -weights is required", errUsage)
	}
	if *addr == "" && *grpcAddr == "" {
		return fmt.Errorf("%w: -addr and -grpc-addr are both off", errUsage)
	}
	if *maxBatch < 1 || *replicas < 1 || *workers < 0 || *queue < 0 || *maxDelay < 0 {
		return fmt.Errorf("%w: -max-batch and -replicas must be at least 1; -workers, -queue and -max-delay not negative", errUsage)
	}
	conv, err := parseConv(*convFlag)
	if err != nil {
		return err
	}
	start := time.Now()
	if *workers == 0 {
		*workers = max(1, runtime.NumCPU() / *replicas)
	}
	spec, err := servedModel(*weights, *arch, *name, *labelsFile, *workers, conv, stderr)
	if err != nil {
		return err
	}
	srv, err := serve.New([]serve.Spec{spec}, serve.Options{MaxBatch: *maxBatch, MaxDelay: *maxDelay, Replicas: *replicas, Queue: *queue})
	if err != nil {
		return err
	}
	// Signals are caught before the listeners open, so that a SIGTERM
	// sent as soon as the address is printed is a graceful stop too.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	running, err := srv.Serve(serve.Listeners{HTTP: *addr, GRPC: *grpcAddr})
	if err != nil {
		srv.Close()
		return err
	}
	fmt.Fprintf(stderr, "resnet serve: %s (%s, %d classes, %dx%d input) ready in %.1fs: %d replica(s) × %d worker(s), batches of up to %d within %v\n",
		spec.Name, spec.Arch, spec.Classes, spec.InputH, spec.InputW, time.Since(start).Seconds(), *replicas, *workers, *maxBatch, *maxDelay)
	if running.HTTPAddr != nil {
		fmt.Fprintf(stderr, "resnet serve: REST on http://%s/v2/models/%s, metrics on http://%s/metrics\n", running.HTTPAddr, spec.Name, running.HTTPAddr)
	}
	if running.GRPCAddr != nil {
		fmt.Fprintf(stderr, "resnet serve: gRPC on %s\n", running.GRPCAddr)
	}
	var serveErr error
	select {
	case sig := <-sigs:
		fmt.Fprintf(stderr, "resnet serve: %v: finishing the requests already accepted\n", sig)
	case serveErr = <-running.Err():
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := running.Shutdown(ctx); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("shutting down: %w", err)
	}
	if serveErr != nil {
		return serveErr
	}
	rest, grpc := srv.Answered()
	fmt.Fprintf(stderr, "resnet serve: stopped; answered %d inference requests over REST and %d over gRPC\n", rest, grpc)
	return nil
}

// servedModel opens the weights and describes the network they fit (or
// arch) for serve: its name in the protocol, its class names, and image
// files for the networks that take 224x224 inputs.
func servedModel(weights, arch, name, labelsFile string, workers int, conv engine.Algorithm, stderr io.Writer) (serve.Spec, error) {
	err := checkArch(arch)
	if err != nil {
		return serve.Spec{}, err
	}
	if weights, err = weightsInDir(weights); err != nil {
		return serve.Spec{}, err
	}
	archName, _, w, err := openWeights(weights, arch, stderr)
	if err != nil {
		return serve.Spec{}, err
	}
	info, err := all.Lookup(archName)
	if err != nil {
		return serve.Spec{}, err
	}
	shared := engine.NewShared() // the replicas hold one copy of the packed weights
	spec := serve.Spec{Name: archName, Arch: archName, InputH: info.InputHeight, InputW: info.InputWidth, Classes: info.Classes,
		New: func(batch int) (serve.Network, error) {
			return info.New(w, engine.WithBatch(batch), engine.WithWorkers(workers), engine.WithConv(conv), engine.WithShared(shared))
		}}
	if name != "" {
		spec.Name = name
	}
	switch {
	case labelsFile != "":
		if spec.Labels, err = labels.ReadFile(labelsFile, info.Classes); err != nil {
			return serve.Spec{}, err
		}
	case info.Classes == len(imagenet.Classes):
		spec.Labels = imagenet.Classes
	case strings.HasPrefix(archName, "cifar-") && info.Classes == cifar10.Classes:
		spec.Labels = cifar10.ClassNames[:]
	}
	// Image files are accepted where torchvision's eval transform fits:
	// networks that take 224x224 images.
	if info.InputHeight == preprocess.CropSize && info.InputWidth == preprocess.CropSize {
		spec.Images = serve.ImageNet
	}
	return spec, nil
}

// weightsInDir is path, or, when path is a directory, the one file in it
// (hidden files aside): the layout KServe's storage initializer leaves in
// /mnt/models, whatever the file's name.
func weightsInDir(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return path, nil // openWeights reports a missing file
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return "", err
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			files = append(files, e.Name())
		}
	}
	if len(files) != 1 {
		return "", fmt.Errorf("-weights %s is a directory with %d files %q; it must hold one weight file, or name the file", path, len(files), files)
	}
	return filepath.Join(path, files[0]), nil
}
