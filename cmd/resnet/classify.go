package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/imagenet"
	"github.com/resnetgen/resnetgen/resnet/labels"
	"github.com/resnetgen/resnetgen/resnet/preprocess"
)

// prediction is one of an image's top classes; the JSON keys are a contract.
type prediction struct {
	Class       int     `json:"class"`
	Label       string  `json:"label,omitempty"`
	Probability float64 `json:"probability"`
}

// classified is one image's result: its top classes, or why it could not
// be classified.
type classified struct {
	Image string       `json:"image"`
	Top   []prediction `json:"top,omitempty"`
	Error string       `json:"error,omitempty"`
}

func runClassify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("classify", stderr)
	arch := fs.String("arch", "", "an ImageNet network: resnet18 … resnet152, resnet50v1 … resnet152v1 (default: the one the weights fit)")
	weights := fs.String("weights", "", "weights: PyTorch checkpoint, safetensors or ONNX")
	labelsFile := fs.String("labels", "", "file with the class names, one per line in class order (default: the ImageNet names, for 1000 classes)")
	top := fs.Int("top", 5, "classes to print per image")
	asJSON := fs.Bool("json", false, "print a JSON array of {image, top: [{class, label, probability}]}")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	images := fs.Args()
	if *weights == "" || len(images) == 0 {
		return fmt.Errorf("%w: usage: resnet classify [-arch A] -weights W image.jpg [more…]", errUsage)
	}
	if err := checkArch(*arch); err != nil {
		return err
	}
	if *arch != "" {
		if err := isImageNet(*arch); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	if *top < 1 {
		return fmt.Errorf("%w: -top must be at least 1", errUsage)
	}
	name, _, w, err := openWeights(*weights, *arch, stderr)
	if err != nil {
		return err
	}
	if err := isImageNet(name); err != nil {
		return fmt.Errorf("%s: %w", *weights, err)
	}
	info, err := all.Lookup(name)
	if err != nil {
		return err
	}
	if *top > info.Classes {
		return fmt.Errorf("%w: -top must be in 1..%d", errUsage, info.Classes)
	}
	var names []string
	switch {
	case *labelsFile != "":
		if names, err = labels.ReadFile(*labelsFile, info.Classes); err != nil {
			return err
		}
	case info.Classes == len(imagenet.Classes):
		names = imagenet.Classes
	}
	m, err := info.New(w, engine.WithBatch(1))
	if err != nil {
		return err
	}
	defer m.Close()
	// Each image is reported as soon as it is classified (text) and an
	// image that cannot be read is reported and skipped: one bad file
	// among many does not lose the others. The exit status says whether
	// any failed. Images are decoded and preprocessed ahead of the network
	// on other goroutines (JPEG decoding is single-threaded), in order. At
	// most 4 at a time: a 64-megapixel image takes 0.3–0.8 GB while it is
	// prepared, and the later stages already use every CPU.
	ahead := prepareAhead(images, min(runtime.GOMAXPROCS(0), 4))
	defer ahead.stop()
	var results []classified
	failed := 0
	logits := make([]float32, info.Classes)
	for i, path := range images {
		r := classified{Image: path}
		x, err := ahead.next(i)
		if err == nil {
			err = m.ForwardBatch(x, logits)
		}
		if err != nil {
			failed++
			r.Error = err.Error()
			fmt.Fprintf(stderr, "resnet classify: %v\n", err)
		} else {
			r.Top = topK(logits, *top, names)
		}
		if *asJSON {
			results = append(results, r)
		} else if r.Error == "" {
			printClassified(stdout, r)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images could not be classified", failed, len(images))
	}
	return nil
}

// prepare decodes and preprocesses one image into the network's input.
func prepare(path string) ([]float32, error) {
	img, err := preprocess.DecodeFile(path)
	if err != nil {
		return nil, err
	}
	x, err := preprocess.ImageNet(img)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return x, nil
}

// ahead prepares images on goroutines, at most n of them taken but not
// yet consumed at a time (each holds a decoded image, up to 64 Mpx).
type ahead struct {
	results []chan prepared
	slots   chan struct{}
	done    chan struct{}
}

type prepared struct {
	x   []float32
	err error
}

func prepareAhead(paths []string, n int) *ahead {
	a := &ahead{results: make([]chan prepared, len(paths)), slots: make(chan struct{}, n), done: make(chan struct{})}
	for i := range a.results {
		a.results[i] = make(chan prepared, 1)
	}
	go func() {
		for i, path := range paths {
			select {
			case a.slots <- struct{}{}:
			case <-a.done:
				return
			}
			go func() {
				x, err := prepare(path)
				a.results[i] <- prepared{x, err}
			}()
		}
	}()
	return a
}

// next waits for image i (taken in order) and frees its slot.
func (a *ahead) next(i int) ([]float32, error) {
	p := <-a.results[i]
	<-a.slots
	return p.x, p.err
}

// stop lets the producer end early; images in flight finish unread.
func (a *ahead) stop() { close(a.done) }

func printClassified(w io.Writer, r classified) {
	fmt.Fprintln(w, r.Image)
	for _, p := range r.Top {
		label := p.Label
		if label == "" {
			label = fmt.Sprintf("class %d", p.Class)
		}
		fmt.Fprintf(w, "  %6.2f%%  %s\n", 100*p.Probability, label)
	}
}

// isImageNet refuses a network that does not take 224x224 images.
func isImageNet(arch string) error {
	a, err := resnet.Lookup(arch)
	if err != nil {
		return err
	}
	if a.InputH != preprocess.CropSize || a.InputW != preprocess.CropSize {
		return fmt.Errorf("%s takes %dx%d images; classify runs ImageNet networks (%dx%d)",
			arch, a.InputH, a.InputW, preprocess.CropSize, preprocess.CropSize)
	}
	return nil
}

// topK returns the k most probable classes under softmax(logits).
func topK(logits []float32, k int, names []string) []prediction {
	maxL := math.Inf(-1)
	for _, v := range logits {
		maxL = math.Max(maxL, float64(v))
	}
	sum := 0.0
	for _, v := range logits {
		sum += math.Exp(float64(v) - maxL)
	}
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	out := make([]prediction, k)
	for i := range out {
		c := idx[i]
		out[i] = prediction{Class: c, Probability: math.Exp(float64(logits[c])-maxL) / sum}
		if names != nil {
			out[i].Label = names[c]
		}
	}
	return out
}
