package resnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"unsafe"
)

// Tensor is a dense float32 array in row-major (PyTorch) order.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Weights maps checkpoint tensor names (torchvision naming, e.g.
// "layer3.4.conv2.weight") to tensors.
type Weights struct {
	Tensors map[string]*Tensor
}

// NewWeights returns an empty set of weights.
func NewWeights() *Weights { return &Weights{Tensors: map[string]*Tensor{}} }

// Set stores a tensor under name. It panics if len(data) does not match the
// shape, a programming error rather than bad input.
func (w *Weights) Set(name string, shape []int, data []float32) {
	if numel(shape) != len(data) {
		panic(fmt.Sprintf("resnet: tensor %s: shape %v holds %d values, got %d", name, shape, numel(shape), len(data)))
	}
	w.Tensors[name] = &Tensor{Shape: append([]int(nil), shape...), Data: data}
}

// Names returns the tensor names, sorted.
func (w *Weights) Names() []string {
	names := make([]string, 0, len(w.Tensors))
	for n := range w.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ReadFile opens the file at path and decodes it with read (a format's
// Read: the file and its size), prefixing a decoding error with the path.
func ReadFile(path string, read func(r io.ReaderAt, size int64) (*Weights, error)) (*Weights, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	w, err := read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, nil
}

// Index is a weight file's table of contents: every tensor's name and
// shape, and how to read its values, which stay in the file until asked
// for. Which network a file fits needs only the names and shapes
// (ValidateShapes); Read then reads each tensor straight into its own
// float32 array, without a copy of the file's bytes.
type Index struct {
	Tensors map[string]*IndexEntry
}

// IndexEntry is one tensor of an Index.
type IndexEntry struct {
	Shape []int
	// Read puts the tensor's values, from the file r, into dst (as many
	// as Shape holds), converted to float32.
	Read func(r io.ReaderAt, dst []float32) error
}

// NewIndex returns an empty Index.
func NewIndex() *Index { return &Index{Tensors: map[string]*IndexEntry{}} }

// Add lists a tensor, read by read.
func (x *Index) Add(name string, shape []int, read func(r io.ReaderAt, dst []float32) error) {
	x.Tensors[name] = &IndexEntry{Shape: append([]int(nil), shape...), Read: read}
}

// Names returns the tensor names, sorted.
func (x *Index) Names() []string { return slices.Sorted(maps.Keys(x.Tensors)) }

// ValidateShapes is Weights.ValidateShapes for the tensors of x.
func (x *Index) ValidateShapes(net *Network) error {
	return validate(net, x.Names(), func(name string) ([]int, int, bool) {
		if e, ok := x.Tensors[name]; ok {
			return e.Shape, -1, true
		}
		return nil, 0, false
	}, func(string) bool { return true })
}

// Read reads every tensor of x from r, in name order.
func (x *Index) Read(r io.ReaderAt) (*Weights, error) {
	w := NewWeights()
	for _, name := range x.Names() {
		e := x.Tensors[name]
		data := make([]float32, numel(e.Shape))
		if err := e.Read(r, data); err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		w.Set(name, e.Shape, data)
	}
	return w, nil
}

// littleEndian is whether this machine stores numbers as the formats do.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// ReadFloat32s fills dst with the little-endian float32 values at byte off
// of r, read straight into dst's memory: no buffer the size of the tensor.
func ReadFloat32s(r io.ReaderAt, off int64, dst []float32) error {
	if len(dst) == 0 {
		return nil
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst))
	if err := readFull(r, off, b); err != nil {
		return err
	}
	if !littleEndian {
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	}
	return nil
}

// ReadConverted fills dst with the values at byte off of r, size bytes
// each, which convert turns into float32 (len(dst) values from
// size·len(dst) bytes), a chunk at a time through a small buffer.
func ReadConverted(r io.ReaderAt, off int64, size int, dst []float32, convert func(b []byte, dst []float32)) error {
	const chunk = 16 << 10 // values
	buf := make([]byte, size*min(chunk, len(dst)))
	for i := 0; i < len(dst); i += chunk {
		part := dst[i:min(i+chunk, len(dst))]
		b := buf[:size*len(part)]
		if err := readFull(r, off+int64(size*i), b); err != nil {
			return err
		}
		convert(b, part)
	}
	return nil
}

// readFull reads len(b) bytes at off, an error saying so if r has fewer.
func readFull(r io.ReaderAt, off int64, b []byte) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%d bytes at byte %d: read %d: %w", len(b), off, n, err)
}

// ValidationError lists every way a set of weights fails to fit a network.
type ValidationError struct {
	Arch       string
	Missing    []TensorSpec // expected, absent
	Unexpected []string     // present, not expected
	WrongShape []ShapeMismatch
	NonFinite  []string // tensors holding NaN or ±Inf
}

// ShapeMismatch is a tensor present under the expected name with another shape.
type ShapeMismatch struct {
	Name      string
	Want, Got []int
}

func (e *ValidationError) Error() string {
	var parts []string
	const show = 3
	list := func(what string, items []string) {
		if len(items) == 0 {
			return
		}
		s := fmt.Sprintf("%d %s: %s", len(items), what, strings.Join(items[:min(show, len(items))], ", "))
		if len(items) > show {
			s += ", …"
		}
		parts = append(parts, s)
	}
	var shapes, missing []string
	for _, m := range e.WrongShape {
		shapes = append(shapes, fmt.Sprintf("%s is %v, want %v", m.Name, m.Got, m.Want))
	}
	for _, m := range e.Missing {
		missing = append(missing, fmt.Sprintf("%s %v", m.Name, m.Shape))
	}
	list("tensors with the wrong shape", shapes)
	list("missing tensors", missing)
	list("unexpected tensors", e.Unexpected)
	list("tensors with NaN or Inf", e.NonFinite)
	return fmt.Sprintf("weights do not fit %s: %s", e.Arch, strings.Join(parts, "; "))
}

// Validate checks that w holds exactly the tensors net reads, each with the
// expected shape and finite values. The error, a *ValidationError, names
// every offending tensor with both shapes.
func (w *Weights) Validate(net *Network) error { return w.validate(net, true) }

// ValidateShapes is Validate without the scan for NaN and Inf: the cheap
// test of which network a file's tensors are for (the scan reads every
// weight; ResNet-50 has 25 M).
func (w *Weights) ValidateShapes(net *Network) error { return w.validate(net, false) }

func (w *Weights) validate(net *Network, values bool) error {
	return validate(net, w.Names(), func(name string) ([]int, int, bool) {
		t, ok := w.Tensors[name]
		if !ok {
			return nil, 0, false
		}
		return t.Shape, len(t.Data), true
	}, func(name string) bool { return !values || finite(w.Tensors[name].Data) })
}

// validate checks that the tensors names are exactly those net reads,
// each with the expected shape (tensor tells a tensor's shape and how many
// values it holds, -1 if unknown), and that those are ok (finite).
func validate(net *Network, names []string, tensor func(string) (shape []int, values int, present bool), ok func(string) bool) error {
	e := &ValidationError{Arch: net.Arch.Name}
	expected := map[string]bool{}
	for _, s := range net.Tensors() {
		expected[s.Name] = true
		got, n, present := tensor(s.Name)
		switch {
		case !present:
			e.Missing = append(e.Missing, s)
		case !equalShape(got, s.Shape):
			e.WrongShape = append(e.WrongShape, ShapeMismatch{s.Name, s.Shape, got})
		case n >= 0 && n != numel(got):
			e.WrongShape = append(e.WrongShape, ShapeMismatch{s.Name, s.Shape, []int{n}})
		case !ok(s.Name):
			e.NonFinite = append(e.NonFinite, s.Name)
		}
	}
	for _, name := range names {
		if !expected[name] {
			e.Unexpected = append(e.Unexpected, name)
		}
	}
	if len(e.Missing)+len(e.Unexpected)+len(e.WrongShape)+len(e.NonFinite) == 0 {
		return nil
	}
	return e
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Finite reports whether no element of xs is NaN or ±Inf.
func Finite(xs []float32) bool { return finite(xs) }

// finite reports whether no element is NaN or ±Inf: those, alone among
// float32 values, have every exponent bit set. (A bit test: over ResNet-50's
// 25 M weights it measured 15 ms a pass, math.IsNaN/IsInf through float64
// 24 ms.)
func finite(xs []float32) bool {
	const exponent = 0x7f800000
	for _, x := range xs {
		if math.Float32bits(x)&exponent == exponent {
			return false
		}
	}
	return true
}

// BNEpsilon is BatchNorm's eps in every network of the family (PyTorch's default).
const BNEpsilon = 1e-5

// FoldBN folds an eval-mode BatchNorm into the convolution before it.
// With s[o] = gamma[o] / sqrt(variance[o] + eps), BN(conv(x, W)) equals
// conv(x, W') + b where W'[o,…] = W[o,…]·s[o] and b[o] = beta[o] − mean[o]·s[o].
// weight is OIHW with len(gamma) output channels; the arithmetic is float64.
func FoldBN(weight, gamma, beta, mean, variance []float32, eps float64) (folded, bias []float32) {
	folded, bias = make([]float32, len(weight)), make([]float32, len(gamma))
	FoldBNInto(folded, bias, weight, gamma, beta, mean, variance, eps)
	return folded, bias
}

// FoldBNInto is FoldBN writing into folded (len(weight) values; it may be
// weight itself) and bias (len(gamma)), so that a loader can fold layer
// after layer into one buffer. The values are FoldBN's, bit for bit.
func FoldBNInto(folded, bias, weight, gamma, beta, mean, variance []float32, eps float64) {
	oc := len(gamma)
	if oc == 0 || len(weight)%oc != 0 || len(beta) != oc || len(mean) != oc || len(variance) != oc ||
		len(folded) != len(weight) || len(bias) != oc {
		panic(fmt.Sprintf("resnet: FoldBN: %d weights into %d, %d/%d/%d/%d BN values into %d",
			len(weight), len(folded), len(gamma), len(beta), len(mean), len(variance), len(bias)))
	}
	per := len(weight) / oc
	for o := 0; o < oc; o++ {
		s := float64(gamma[o]) / math.Sqrt(float64(variance[o])+eps)
		src, dst := weight[o*per:][:per], folded[o*per:][:per]
		for i, x := range src {
			dst[i] = float32(float64(x) * s)
		}
		bias[o] = float32(float64(beta[o]) - float64(mean[o])*s)
	}
}
