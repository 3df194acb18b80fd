// Package cifar10 reads the CIFAR-10 test set in its binary format,
// preprocesses images as the published CIFAR ResNets were evaluated, and
// measures top-1 accuracy.
package cifar10

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// Side is the image width and height in pixels.
	Side = 32
	// RecordSize is one record: a label byte, then the R, G and B planes.
	RecordSize = 1 + 3*Side*Side
	// Classes is the number of labels.
	Classes = 10
)

// ClassNames are the labels in order.
var ClassNames = [Classes]string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// Image is one labelled test image, its planes R, G, B, each row-major.
type Image struct {
	Label  int
	Pixels [3 * Side * Side]byte
}

// BatchPattern matches the files ReadDir reads: the official test_batch.bin
// or the test_batch_00.bin … split of it.
const BatchPattern = "test_batch*.bin"

// ReadDir reads every file matching BatchPattern in dir, in name order.
func ReadDir(dir string) ([]Image, error) {
	files, err := filepath.Glob(filepath.Join(dir, BatchPattern))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("CIFAR-10 data: %w", err)
		}
		return nil, fmt.Errorf("CIFAR-10 data: no %s files in %s", BatchPattern, dir)
	}
	sort.Strings(files)
	var images []Image
	for _, f := range files {
		imgs, err := ReadFile(f)
		if err != nil {
			return nil, err
		}
		images = append(images, imgs...)
	}
	return images, nil
}

// ReadFile reads one batch file: whole records, labels 0–9.
func ReadFile(path string) ([]Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	imgs, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return imgs, nil
}

// Read decodes records until EOF. A trailing partial record or a label
// outside 0–9 is an error giving its position.
func Read(r io.Reader) ([]Image, error) {
	var imgs []Image
	var rec [RecordSize]byte
	for i := 0; ; i++ {
		n, err := io.ReadFull(r, rec[:])
		if err == io.EOF {
			if i == 0 {
				return nil, errors.New("no records (empty file)")
			}
			return imgs, nil
		}
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("truncated: record %d has %d of %d bytes (after %d whole records)", i, n, RecordSize, i)
		}
		if err != nil {
			return nil, err
		}
		if rec[0] >= Classes {
			return nil, fmt.Errorf("record %d: label %d, want 0–%d", i, rec[0], Classes-1)
		}
		img := Image{Label: int(rec[0])}
		copy(img.Pixels[:], rec[1:])
		imgs = append(imgs, img)
	}
}

// Mean and Std are the per-channel (RGB) normalisation the published CIFAR
// ResNets use (ImageNet's statistics, as upstream's trainer.py does).
var (
	Mean = [3]float64{0.485, 0.456, 0.406}
	Std  = [3]float64{0.229, 0.224, 0.225}
)

// Normalize writes the CHW input of the network into dst (len 3·32·32):
// x = (pixel/255 − Mean[c]) / Std[c], torchvision's ToTensor then Normalize.
func (img *Image) Normalize(dst []float32) {
	const plane = Side * Side
	for c := 0; c < 3; c++ {
		for i := 0; i < plane; i++ {
			v := float64(img.Pixels[c*plane+i]) / 255
			dst[c*plane+i] = float32((v - Mean[c]) / Std[c])
		}
	}
}

// Split divides images into a calibration set, the images whose index is a
// multiple of every, and the rest. The test set's records are sorted by
// label after the first 100, so a contiguous range would calibrate on a few
// classes only; every tenth image covers all ten.
func Split(images []Image, every int) (calib, eval []Image) {
	for i, img := range images {
		if i%every == 0 {
			calib = append(calib, img)
		} else {
			eval = append(eval, img)
		}
	}
	return calib, eval
}

// Classifier returns the logits of one normalised CHW image. Evaluate calls
// it from several goroutines at once.
type Classifier func(input []float32) ([]float64, error)

// Result is the outcome of an evaluation.
type Result struct {
	Images  int     `json:"images"`
	Correct int     `json:"correct"`
	Top1    float64 `json:"top1"` // percent
}

// Argmax returns the index of the largest logit (the first on ties).
func Argmax(logits []float64) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return best
}

// Evaluate classifies every image with workers goroutines and counts top-1
// hits. If progress is non-nil it receives a line about every 10 % of the
// images and at the end.
func Evaluate(images []Image, classify Classifier, workers int, progress io.Writer) (Result, error) {
	if workers < 1 {
		workers = 1
	}
	var (
		next, done, correct atomic.Int64
		mu                  sync.Mutex
		firstErr            error
		wg                  sync.WaitGroup
	)
	start := time.Now()
	step := int64(max(1, len(images)/10))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := make([]float32, 3*Side*Side)
			for {
				i := next.Add(1) - 1
				if i >= int64(len(images)) {
					return
				}
				images[i].Normalize(in)
				logits, err := classify(in)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("image %d: %w", i, err)
					}
					mu.Unlock()
					next.Store(int64(len(images))) // stop the others
					return
				}
				if Argmax(logits) == images[i].Label {
					correct.Add(1)
				}
				if d := done.Add(1); progress != nil && (d%step == 0 || d == int64(len(images))) {
					el := time.Since(start)
					mu.Lock()
					fmt.Fprintf(progress, "%d/%d images, %.2f%% correct so far, %s elapsed\n",
						d, len(images), 100*float64(correct.Load())/float64(d), el.Round(time.Second))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return Result{}, firstErr
	}
	r := Result{Images: len(images), Correct: int(correct.Load())}
	if r.Images > 0 {
		r.Top1 = 100 * float64(r.Correct) / float64(r.Images)
	}
	return r, nil
}
