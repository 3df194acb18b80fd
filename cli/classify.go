package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/resnet/labels"
)

// Classified is one image's result: its top classes, or why it could not
// be classified. The JSON keys are a contract.
type Classified struct {
	Image string              `json:"image"`
	Top   []labels.Prediction `json:"top,omitempty"`
	Error string              `json:"error,omitempty"`
}

// ClassifyFlags are classify's flags besides the network's.
type ClassifyFlags struct {
	Top  int
	JSON bool
}

// AddClassifyFlags defines classify's -top and -json on fs.
func AddClassifyFlags(fs *flag.FlagSet) *ClassifyFlags {
	f := &ClassifyFlags{}
	fs.IntVar(&f.Top, "top", 5, "classes to print per image")
	fs.BoolVar(&f.JSON, "json", false, "print a JSON array of {image, top: [{class, label, probability}]} (label without names: left out)")
	return f
}

// Check refuses a -top below 1 (one above the classes is refused by
// Classify, which knows them).
func (f *ClassifyFlags) Check() error {
	if f.Top < 1 {
		return Usage("-top must be at least 1")
	}
	return nil
}

// MaxImageFile bounds an image file Classify reads into memory: far above
// what a preprocess.MaxPixels image takes as a JPEG at any quality or as a
// PNG.
const MaxImageFile = 1 << 30

// Classify runs the image files through net (net.Images, then the network)
// and prints each one's f.Top most probable classes (labels.Top), as text
// as soon as it is classified, or as one JSON array of Classified at the
// end. An image that cannot be read is reported on stderr (and in the
// JSON) and skipped: one bad file among many does not lose the others; the
// error returned says how many failed. prog names the command in messages.
func Classify(prog string, net Net, images []string, f *ClassifyFlags, stdout, stderr io.Writer) error {
	if err := f.Check(); err != nil {
		return err
	}
	if f.Top > net.Classes {
		return Usage("-top must be in 1..%d", net.Classes)
	}
	if net.Images == nil {
		return fmt.Errorf("%s takes tensors only: no preprocessing of image files for it", net.Name)
	}
	m, err := net.New(engine.WithBatch(1))
	if err != nil {
		return err
	}
	defer m.Close()
	// Images are decoded and preprocessed ahead of the network on other
	// goroutines (JPEG decoding is single-threaded), in order. At most 4
	// at a time: a 64-megapixel image takes 0.3–0.8 GB while it is
	// prepared, and the network already uses every CPU.
	ahead := prepareAhead(images, min(runtime.GOMAXPROCS(0), 4), net.Images)
	defer ahead.stop()
	var results []Classified
	failed := 0
	logits := make([]float32, net.Classes)
	for i, path := range images {
		r := Classified{Image: path}
		x, err := ahead.next(i)
		if err == nil {
			err = m.ForwardBatch(x, logits)
		}
		if err == nil {
			r.Top, err = labels.Top(logits, f.Top, net.Labels)
		}
		if err != nil {
			failed++
			r.Error = err.Error()
			fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		}
		if f.JSON {
			results = append(results, r)
		} else if r.Error == "" {
			printClassified(stdout, r)
		}
	}
	if f.JSON {
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

func printClassified(w io.Writer, r Classified) {
	fmt.Fprintln(w, r.Image)
	for _, p := range r.Top {
		label := p.Label
		if label == "" {
			label = fmt.Sprintf("class %d", p.Class)
		}
		fmt.Fprintf(w, "  %6.2f%%  %s\n", 100*p.Probability, label)
	}
}

// prepare reads one image file and makes it the network's input; errors
// name the file.
func prepare(path string, images func([]byte) ([]float32, error)) ([]float32, error) {
	file, err := readFile(path, MaxImageFile)
	if err != nil {
		return nil, err
	}
	x, err := images(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return x, nil
}

// readFile reads the file at path, refusing one of limit bytes or more.
func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) >= limit {
		return nil, fmt.Errorf("%s: a file of %d bytes or more: not an image this reads", path, limit)
	}
	return data, nil
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

func prepareAhead(paths []string, n int, images func([]byte) ([]float32, error)) *ahead {
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
				x, err := prepare(path, images)
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
