package cifar10_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/cifar10"
	"github.com/resnetgen/resnetgen/resnet/pytorch"
)

var cifarAll = flag.Bool("cifar-all", false, "evaluate the published networks on all 10,000 images (about 25 minutes on 2 cores)")

const sharedData = "../../../shared/data"

func dataDir(t testing.TB, sub string) string {
	t.Helper()
	dir := filepath.Join(sharedData, sub)
	abs, _ := filepath.Abs(dir)
	_, err := os.Stat(dir)
	require.NoError(t, err, "the shared test data must be at %s (absolute: %s); it is not optional", dir, abs)
	return dir
}

func record(label byte, fill byte) []byte {
	r := bytes.Repeat([]byte{fill}, cifar10.RecordSize)
	r[0] = label
	return r
}

func TestReadRecords(t *testing.T) {
	data := append(record(3, 7), record(9, 200)...)
	imgs, err := cifar10.Read(bytes.NewReader(data))
	require.NoError(t, err)
	require.Len(t, imgs, 2)
	assert.Equal(t, 3, imgs[0].Label)
	assert.Equal(t, byte(7), imgs[0].Pixels[0])
	assert.Equal(t, 9, imgs[1].Label)
	assert.Equal(t, byte(200), imgs[1].Pixels[3071])
}

func TestBadDataIsRefused(t *testing.T) {
	_, err := cifar10.Read(bytes.NewReader(nil))
	assert.ErrorContains(t, err, "no records (empty file)")
	_, err = cifar10.Read(bytes.NewReader(append(record(1, 0), record(2, 0)[:100]...)))
	assert.ErrorContains(t, err, "truncated: record 1 has 100 of 3073 bytes (after 1 whole records)")
	_, err = cifar10.Read(bytes.NewReader(record(10, 0)))
	assert.ErrorContains(t, err, "record 0: label 10, want 0–9")

	dir := t.TempDir()
	_, err = cifar10.ReadDir(dir)
	assert.ErrorContains(t, err, "no test_batch*.bin files in "+dir)
	_, err = cifar10.ReadDir(filepath.Join(dir, "missing"))
	assert.ErrorContains(t, err, "missing: no such file or directory")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "test_batch_00.bin"), record(0, 1), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "test_batch_01.bin"), record(0, 1)[:3000], 0o644))
	_, err = cifar10.ReadDir(dir)
	assert.ErrorContains(t, err, "test_batch_01.bin: truncated: record 0 has 3000 of 3073 bytes")
}

// Upstream's transform: ToTensor (x/255) then Normalize(mean, std), per
// channel in RGB order; values worked out by hand.
func TestNormalize(t *testing.T) {
	var img cifar10.Image
	img.Pixels[0] = 255        // R, top-left
	img.Pixels[1024+5] = 0     // G
	img.Pixels[2048+1023] = 51 // B, bottom-right: 51/255 = 0.2
	out := make([]float32, 3072)
	img.Normalize(out)
	assert.InDelta(t, (1-0.485)/0.229, out[0], 1e-6)
	assert.InDelta(t, (0-0.456)/0.224, out[1024+5], 1e-6)
	assert.InDelta(t, (0.2-0.406)/0.225, out[2048+1023], 1e-6)
}

func TestEvaluateCountsAndReportsErrors(t *testing.T) {
	imgs := make([]cifar10.Image, 25)
	for i := range imgs {
		imgs[i].Label = i % 10
		imgs[i].Pixels[0] = byte(i % 10) // the fake classifier reads the label from here
	}
	guess := func(in []float32) ([]float64, error) {
		label := int(in[0]*0.229*255 + 0.485*255 + 0.5)
		logits := make([]float64, 10)
		logits[(label+label/7)%10] = 1 // right for labels 0–6, wrong for 7–9
		return logits, nil
	}
	var progress bytes.Buffer
	res, err := cifar10.Evaluate(imgs, guess, 3, &progress)
	require.NoError(t, err)
	// Labels run 0–9, 0–9, 0–4; labels 0–6 are right: 7 + 7 + 5 = 19 of 25.
	assert.Equal(t, cifar10.Result{Images: 25, Correct: 19, Top1: 76}, res)
	assert.Contains(t, progress.String(), "25/25 images")

	failing := func(in []float32) ([]float64, error) { return nil, errors.New("boom") }
	_, err = cifar10.Evaluate(imgs, failing, 2, nil)
	assert.ErrorContains(t, err, "boom")
	assert.Equal(t, 0, cifar10.Argmax([]float64{3, 1, 3}), "ties go to the first")
}

// sweepImages is how many test images the float64 reference classifies
// with each published network by default: the sweep's answers are pinned
// (pinned), so a few hundred images check the checkpoint reader, the
// preprocessing and the reference image by image; -cifar-all runs all
// 10,000 against the published errors. (The generated networks reproduce
// the published errors on all 10,000 in cmd/resnet's
// TestGeneratedNetworksReproducePublishedAccuracy.)
const sweepImages = 500

// pinned is what the float64 reference answers on the first sweepImages
// test images with each published checkpoint: how many it gets right, and
// the first 16 hex digits of the SHA-256 of its predictions (one digit per
// image), so that two opposite flips fail too. Written down from a run of
// the reference that, on all 10,000, gave the published errors.
var pinned = map[int]struct {
	correct     int
	predictions string
}{
	20: {462, "aa6be5769eda1b99"},
	32: {471, "bec71c120517c05f"},
	44: {473, "61874f13cbad1d3d"},
	56: {472, "825c018bff0dc67d"},
}

// The published CIFAR-10 ResNets through our checkpoint reader,
// preprocessing and float64 reference: the pinned answers on the first
// sweepImages test images, and with -cifar-all their published top-1
// errors (upstream README) within 0.05 points on all 10,000.
func TestPublishedAccuracy(t *testing.T) {
	published := map[int]float64{20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61}
	images, err := cifar10.ReadDir(dataDir(t, "cifar10-test"))
	require.NoError(t, err)
	require.Len(t, images, 10000)
	n := sweepImages
	if *cifarAll {
		n = len(images)
	} else {
		t.Logf("the first %d images; -cifar-all evaluates all 10,000", n)
	}
	for _, depth := range []int{20, 32, 44, 56} {
		m, _ := filepath.Glob(filepath.Join(dataDir(t, "cifar10-resnet"), fmt.Sprintf("resnet%d-*.th", depth)))
		require.Len(t, m, 1, "checkpoint for resnet%d", depth)
		w, err := pytorch.Load(m[0])
		require.NoError(t, err)
		ref, err := resnet.NewReference(resnet.MustBuild(fmt.Sprintf("cifar-resnet%d", depth)), w)
		require.NoError(t, err)
		start := time.Now()
		pred := predict(t, ref.Forward, images[:n])
		correct := 0
		for i, p := range pred {
			if p == byte('0'+images[i].Label) {
				correct++
			}
		}
		sum := sha256.Sum256(pred[:sweepImages])
		got := hex.EncodeToString(sum[:8])
		t.Logf("resnet%d: %d/%d correct, predictions %s, %s", depth, correct, n, got, time.Since(start).Round(time.Second))
		if *cifarAll {
			assert.InDelta(t, published[depth], 100*float64(n-correct)/float64(n), 0.05, "resnet%d top-1 error (published %.2f%%)", depth, published[depth])
			continue
		}
		assert.Equal(t, pinned[depth].correct, correct, "resnet%d: correct of the first %d", depth, n)
		assert.Equal(t, pinned[depth].predictions, got, "resnet%d: the predictions on the first %d", depth, n)
	}
}

// predict classifies images with classify on every core and returns the
// predicted classes, one digit per image.
func predict(t *testing.T, classify cifar10.Classifier, images []cifar10.Image) []byte {
	t.Helper()
	pred := make([]byte, len(images))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, runtime.GOMAXPROCS(0))
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := make([]float32, 3*cifar10.Side*cifar10.Side)
			for i := int(next.Add(1)) - 1; i < len(images); i = int(next.Add(1)) - 1 {
				images[i].Normalize(in)
				logits, err := classify(in)
				if err != nil {
					errs <- err
					return
				}
				pred[i] = byte('0' + cifar10.Argmax(logits))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return pred
}

func FuzzRead(f *testing.F) {
	f.Add(append(record(3, 7), record(9, 200)...))
	f.Add(record(1, 0)[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		imgs, err := cifar10.Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(imgs)*cifar10.RecordSize != len(b) {
			t.Fatalf("%d images from %d bytes", len(imgs), len(b))
		}
		for _, img := range imgs {
			if img.Label < 0 || img.Label >= cifar10.Classes {
				t.Fatalf("label %d", img.Label)
			}
		}
	})
}
