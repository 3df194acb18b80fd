package engine

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/resnetgen/resnetgen/asm"
)

// Calibration is what an int8 Model needs besides its weights: the scale of
// every activation tensor an int8 layer reads or writes, by the name of the
// layer that writes it (a convolution, the max pool, an option-A
// shortcut), measured on calibration images by Calibrate, and the folded
// float32 weights it was measured with, by their SHA-256: New refuses to
// run other weights with it.
type Calibration struct {
	Method        string             `json:"method"` // how the scales were chosen (ScaleMethod)
	Images        int                `json:"images"` // how many images were run
	WeightsSHA256 string             `json:"weights_sha256"`
	Scales        map[string]float32 `json:"scales"`
}

// ScaleMethod is how Calibrate turns a tensor's observed values into its
// scale.
type ScaleMethod string

const (
	// ScaleMSE chooses the clipping threshold that minimises the expected
	// squared quantization error over the observed histogram (clipped
	// values cost their distance to the threshold, the others a rounding
	// error of step²/12): the default, by the CIFAR accuracies in the
	// README.
	ScaleMSE ScaleMethod = "mse"
	// ScaleMax takes the largest magnitude observed: no clipping.
	ScaleMax ScaleMethod = "max"
	// ScalePercentile clips at the 99.99th percentile of the magnitudes.
	ScalePercentile ScaleMethod = "percentile"
)

// CalibrateOptions are Calibrate's choices.
type CalibrateOptions struct {
	Method ScaleMethod // default ScaleMSE
	// Progress, if set, receives a line per pass.
	Progress func(format string, args ...any)
}

// Runner is what Calibrate runs: a float32 network (a generated Model, or
// an Interpreted one) that computes batches, exposes its layers and reports
// each layer as it finishes (Trace: the step's index in Layers).
type Runner interface {
	ForwardBatch(in, out []float32) error
	Layers() []Named
	Trace(func(step int, d time.Duration))
}

// histBins is the resolution of the magnitude histograms.
const histBins = 2048

// Calibrate runs images (CHW, normalised as for Forward, one after the
// other; imageLen floats each) through the float32 network m in batches
// of batch images, and returns the scale of every tensor an int8 network
// quantizes: the outputs of the convolutions, the max pool and the option-A
// shortcuts. One pass builds each tensor's histogram of magnitudes
// (histogram), from which o.Method picks the scale. f is the folded weights
// m runs (for their SHA-256).
func Calibrate(m Runner, f *Folded, images []float32, imageLen, batch int, o CalibrateOptions) (*Calibration, error) {
	if o.Method == "" {
		o.Method = ScaleMSE
	}
	if o.Method != ScaleMSE && o.Method != ScaleMax && o.Method != ScalePercentile {
		return nil, fmt.Errorf("unknown scale method %q (want mse, max or percentile)", o.Method)
	}
	if imageLen < 1 || len(images) == 0 || len(images)%imageLen != 0 {
		return nil, fmt.Errorf("calibration: %d floats are not a whole number of %d-float images (and at least one)", len(images), imageLen)
	}
	for i, v := range images {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("calibration image %d holds a non-finite value", i/imageLen)
		}
	}
	n := len(images) / imageLen
	say := func(format string, args ...any) {
		if o.Progress != nil {
			o.Progress(format, args...)
		}
	}
	stats := map[string]*histogram{}
	var order []string
	for _, l := range m.Layers() {
		if outputs(l.Layer) != nil {
			stats[l.Name] = &histogram{}
			order = append(order, l.Name)
		}
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("calibration: the network has no layers whose outputs an int8 network quantizes")
	}
	fc, ok := m.Layers()[len(m.Layers())-1].Layer.(*FC)
	if !ok {
		return nil, fmt.Errorf("calibration: the network does not end in its classifier")
	}
	// Each layer's outputs are read as soon as it has run: the buffer plan
	// hands a layer's buffers on to later values, so after the pass they
	// hold the last writer's (a ResNet-18 calibrated after the pass gave the
	// max pool the scale of layer1.1.conv2's sum).
	layers := m.Layers()
	m.Trace(func(step int, _ time.Duration) {
		l := layers[step]
		h := stats[l.Name]
		if h == nil {
			return
		}
		i0, i1 := batchOf(l.Layer).images()
		for _, b := range outputs(l.Layer)[i0:i1] {
			forInterior(b, h.add)
		}
	})
	defer m.Trace(nil)
	logits := make([]float32, batch*fc.Classes)
	for i := 0; i < n; i += batch {
		k := min(batch, n-i)
		if err := m.ForwardBatch(images[i*imageLen:(i+k)*imageLen], logits[:k*fc.Classes]); err != nil {
			return nil, err
		}
		if done := i + k; o.Progress != nil && (done == n || done/max(1, n/10) != i/max(1, n/10)) {
			say("calibration: %d of %d images", done, n)
		}
	}
	c := &Calibration{Method: string(o.Method), Images: n, WeightsSHA256: hexDigest(f.digest()), Scales: map[string]float32{}}
	for _, l := range m.Layers() {
		st, ok := stats[l.Name]
		if !ok {
			continue
		}
		levels := 255.0
		if conv, ok := l.Layer.(*Conv); ok && !conv.ReLU {
			levels = 127 // a signed tensor (a projection shortcut's output)
		}
		t := threshold(o.Method, st.bins[:], st.zero, st.max, st.top, levels)
		c.Scales[l.Name] = float32(t / levels)
	}
	return c, nil
}

// outputs are the float32 output buffers (one per image) of a layer whose
// output an int8 network quantizes, or nil.
func outputs(l Layer) []asm.Buffer {
	switch l := l.(type) {
	case *Conv:
		return l.Out
	case *MaxPool:
		return l.Out
	case *Shortcut:
		out := make([]asm.Buffer, len(l.S))
		for i := range l.S {
			out[i] = l.S[i].Out
		}
		return out
	}
	return nil
}

// batchOf is the Batch of a layer outputs lists: the images its last step
// ran on.
func batchOf(l Layer) *Batch {
	switch l := l.(type) {
	case *Conv:
		return l.Batch
	case *MaxPool:
		return l.Batch
	case *Shortcut:
		return l.Batch
	}
	return nil
}

// histogram counts a tensor's nonzero magnitudes in histBins bins over
// [0, top), top a power of two that doubles — merging pairs of bins — when
// a larger magnitude comes: one pass over the images, bins at most twice as
// coarse as a second pass over [0, max] would give. Exact zeros (a ReLU's)
// are counted apart: they quantize without error.
type histogram struct {
	bins [histBins]int64
	top  float64
	max  float64
	zero int64
}

func (h *histogram) add(v float32) {
	if v == 0 {
		h.zero++
		return
	}
	a := math.Abs(float64(v))
	h.max = max(h.max, a)
	if h.top == 0 {
		h.top = math.Exp2(math.Ceil(math.Log2(a)) + 1)
	}
	for a >= h.top {
		for i := 0; i < histBins/2; i++ {
			h.bins[i] = h.bins[2*i] + h.bins[2*i+1]
		}
		clear(h.bins[histBins/2:])
		h.top *= 2
	}
	h.bins[int(a/h.top*histBins)]++
}

// forInterior calls f with every interior value of b.
func forInterior(b asm.Buffer, f func(float32)) {
	for y := 0; y < b.H; y++ {
		for _, v := range b.Data[b.Index(y, 0, 0):][:b.W*b.C] {
			f(v)
		}
	}
}

// threshold is the clipping threshold of a tensor whose nonzero magnitudes
// fell into hist (histBins bins up to top, the largest maxv; zero exact
// zeros) for a quantizer of levels steps above zero.
func threshold(method ScaleMethod, hist []int64, zero int64, maxv, top, levels float64) float64 {
	var total int64
	for _, c := range hist {
		total += c
	}
	if total == 0 {
		return 1 // a tensor of zeros: any scale
	}
	width := top / histBins
	center := func(i int) float64 { return (float64(i) + 0.5) * width }
	switch method {
	case ScaleMax:
		return maxv
	case ScalePercentile:
		keep := int64(math.Ceil(0.9999 * float64(total)))
		var run int64
		for i, c := range hist {
			run += c
			if run >= keep {
				return min(maxv, float64(i+1)*width)
			}
		}
		return maxv
	}
	// ScaleMSE: every candidate threshold at a bin's upper edge up to the
	// largest magnitude, from an eighth of it.
	best, bestErr := maxv, math.Inf(1)
	last := min(histBins, int(math.Ceil(maxv/width)))
	for k := max(1, last/8); k <= last; k++ {
		t := min(maxv, float64(k)*width)
		step := t / levels
		e := 0.0
		for i, c := range hist {
			if c == 0 {
				continue
			}
			if x := center(i); x > t {
				e += float64(c) * (x - t) * (x - t)
			} else {
				e += float64(c) * step * step / 12
			}
		}
		if e < bestErr {
			best, bestErr = t, e
		}
	}
	return best
}

// MarshalJSON writes the scales in name order (the generator embeds them;
// the same calibration must give the same bytes).
func (c *Calibration) MarshalJSON() ([]byte, error) {
	type entry struct {
		Name  string  `json:"name"`
		Scale float32 `json:"scale"`
	}
	names := make([]string, 0, len(c.Scales))
	for n := range c.Scales {
		names = append(names, n)
	}
	sort.Strings(names)
	es := make([]entry, len(names))
	for i, n := range names {
		es[i] = entry{n, c.Scales[n]}
	}
	return json.Marshal(struct {
		Method        string  `json:"method"`
		Images        int     `json:"images"`
		WeightsSHA256 string  `json:"weights_sha256"`
		Scales        []entry `json:"scales"`
	}{c.Method, c.Images, c.WeightsSHA256, es})
}

// ParseCalibration reads a Calibration from its JSON (MarshalJSON).
func ParseCalibration(b []byte) (*Calibration, error) {
	c := &Calibration{}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// UnmarshalJSON reads what MarshalJSON writes, checking every scale is a
// positive finite number.
func (c *Calibration) UnmarshalJSON(b []byte) error {
	var v struct {
		Method        string `json:"method"`
		Images        int    `json:"images"`
		WeightsSHA256 string `json:"weights_sha256"`
		Scales        []struct {
			Name  string  `json:"name"`
			Scale float32 `json:"scale"`
		} `json:"scales"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("calibration: %w", err)
	}
	if _, err := hex.DecodeString(v.WeightsSHA256); err != nil || len(v.WeightsSHA256) != 64 {
		return fmt.Errorf("calibration: weights_sha256 %q is not a SHA-256", v.WeightsSHA256)
	}
	c.Method, c.Images, c.WeightsSHA256, c.Scales = v.Method, v.Images, v.WeightsSHA256, map[string]float32{}
	for _, e := range v.Scales {
		if !(e.Scale > 0) || math.IsInf(float64(e.Scale), 0) {
			return fmt.Errorf("calibration: scale %v of %s is not a positive number", e.Scale, e.Name)
		}
		if _, dup := c.Scales[e.Name]; dup {
			return fmt.Errorf("calibration: %s has two scales", e.Name)
		}
		c.Scales[e.Name] = e.Scale
	}
	return nil
}
