package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/safetensors"
)

// Folded is a network's weights ready to pack: every BatchNorm folded into
// the convolution before it. Its tensors are, per convolution layer L,
// "L.weight" (OIHW, scaled by BatchNorm) and "L.bias"; and the classifier's
// weight and bias under their checkpoint names.
//
// A Folded serves one build: a Builder takes each layer's tensors out of it
// once it has packed them, so that memory the caller no longer holds (a
// checkpoint read only to build this Model) is free for the next layer's
// packed weights instead of staying until the whole network is packed.
type Folded struct {
	Net *resnet.Network
	// stored holds folded tensors by name (ReadFolded); nil when Fold made f.
	stored map[string]*resnet.Tensor
	// src holds the checkpoint's tensors by checkpoint name (Fold): each
	// convolution is folded when a Builder asks for it, into scratch.
	src     map[string]*resnet.Tensor
	convs   map[string]*resnet.Layer // convolution layers by name (Fold)
	fc      map[string]bool          // the classifier's tensors, folded as they are (Fold)
	scratch []float32
	// q holds int8 convolution weights by name (the int8 embedded format,
	// ReadFolded), the rest in stored; sha is then the SHA-256 of the
	// float32 weights they were quantized from, and Calibration the scales
	// measured on them.
	q           map[string]*qweight
	sha         string
	Calibration *Calibration
}

// Fold validates w against net (every tensor's name, shape and finite
// values) and returns its weights with each BatchNorm folded into its
// convolution, in float64 (resnet.FoldBN). The folding happens layer by
// layer as a Builder packs them: no second copy of the weights is made.
// f holds w's tensors, not w, until they are packed.
func Fold(net *resnet.Network, w *resnet.Weights) (*Folded, error) {
	if err := w.Validate(net); err != nil {
		return nil, err
	}
	f := &Folded{Net: net, src: map[string]*resnet.Tensor{}, convs: map[string]*resnet.Layer{}, fc: map[string]bool{}}
	for i, l := range net.Layers {
		for _, s := range l.Tensors() {
			f.src[s.Name] = w.Tensors[s.Name]
			f.fc[s.Name] = l.Op == resnet.OpFC
		}
		if l.Op == resnet.OpConv {
			f.convs[l.Name] = &net.Layers[i]
		}
	}
	return f, nil
}

// conv returns the convolution layer whose folded tensor name is (L.weight
// or L.bias) in a Folded that Fold made, with its tensors' suffix; nil if
// name is not one or f no longer has the layer.
func (f *Folded) conv(name string) (*resnet.Layer, string) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return nil, ""
	}
	return f.convs[name[:i]], name[i+1:]
}

// tensor returns the folded tensor name, or nil if f has none (or no
// longer has it: see release). A convolution's weight that f folds here
// lives in f's scratch, valid until the next call.
func (f *Folded) tensor(name string) *resnet.Tensor {
	if f.stored != nil {
		return f.stored[name]
	}
	l, part := f.conv(name)
	if l == nil {
		if f.fc[name] {
			return f.src[name] // as they are
		}
		return nil
	}
	t := f.src
	wt, gamma, beta, mean, variance := t[l.Weight], t[l.BN+".weight"], t[l.BN+".bias"], t[l.BN+".running_mean"], t[l.BN+".running_var"]
	bias := make([]float32, len(gamma.Data))
	switch part {
	case "weight":
		if cap(f.scratch) < len(wt.Data) {
			f.scratch = make([]float32, len(wt.Data))
		}
		folded := f.scratch[:len(wt.Data)]
		resnet.FoldBNInto(folded, bias, wt.Data, gamma.Data, beta.Data, mean.Data, variance.Data, resnet.BNEpsilon)
		return &resnet.Tensor{Shape: wt.Shape, Data: folded}
	case "bias":
		resnet.FoldBNInto(nil, bias, nil, gamma.Data, beta.Data, mean.Data, variance.Data, resnet.BNEpsilon)
		return &resnet.Tensor{Shape: []int{len(bias)}, Data: bias}
	}
	return nil
}

// shape returns the shape of the folded tensor name, nil if f has none,
// without folding it.
func (f *Folded) shape(name string) []int {
	if q, ok := f.q[name]; ok {
		return q.Shape
	}
	var t *resnet.Tensor
	if f.stored != nil {
		t = f.stored[name]
	} else if f.fc[name] {
		t = f.src[name]
	} else if l, part := f.conv(name); l != nil {
		if part != "weight" && part != "bias" {
			return nil
		}
		t = f.src[l.Weight]
		if part == "bias" {
			return []int{l.OutShape.C}
		}
	}
	if t == nil {
		return nil
	}
	return t.Shape
}

// release lets go of the tensors of layer (a convolution's name, or the
// classifier's), once packed: f then no longer has them.
func (f *Folded) release(layer string) {
	delete(f.q, layer+".weight")
	if f.stored != nil {
		delete(f.stored, layer+".weight")
		delete(f.stored, layer+".bias")
		return
	}
	if l := f.convs[layer]; l != nil {
		for _, s := range l.Tensors() {
			delete(f.src, s.Name)
		}
		delete(f.convs, layer)
		return
	}
	delete(f.src, layer+".weight")
	delete(f.src, layer+".bias")
}

// names lists f's folded tensors, sorted.
func (f *Folded) names() []string {
	if f.stored != nil {
		return slices.Sorted(maps.Keys(f.stored))
	}
	var names []string
	for _, s := range foldedSpecs(f.Net) {
		if f.shape(s.Name) != nil {
			names = append(names, s.Name)
		}
	}
	sort.Strings(names)
	return names
}

// foldedSpecs lists the tensors of net's folded weights with their shapes.
func foldedSpecs(net *resnet.Network) []resnet.TensorSpec {
	var out []resnet.TensorSpec
	for _, l := range net.Layers {
		for _, s := range l.Tensors() {
			switch {
			case l.Op == resnet.OpConv && s.Name == l.Weight:
				out = append(out, resnet.TensorSpec{Name: l.Name + ".weight", Shape: s.Shape})
			case l.Op == resnet.OpConv && s.Name == l.BN+".bias":
				out = append(out, resnet.TensorSpec{Name: l.Name + ".bias", Shape: s.Shape})
			case l.Op == resnet.OpFC:
				out = append(out, s)
			}
		}
	}
	return out
}

// The embedded weights format: a safetensors file of F32 tensors (the
// folded ones, by name) whose metadata says what they are and holds the
// SHA-256 of the tensor data, so that a damaged or mismatched file is
// refused rather than run.
const (
	foldedFormat  = "resnetgen-folded-bn"
	foldedVersion = "1"
)

// WriteFolded writes f in the embedded weights format.
func WriteFolded(out io.Writer, f *Folded) error {
	w := resnet.NewWeights()
	for _, name := range f.names() {
		t := f.tensor(name)
		w.Set(name, t.Shape, slices.Clone(t.Data))
	}
	sum := sha256.New()
	if err := safetensors.WriteData(sum, w); err != nil {
		return err
	}
	a := f.Net.Arch
	meta := map[string]string{
		"format":  foldedFormat,
		"version": foldedVersion,
		"arch":    a.Name,
		"input":   fmt.Sprintf("%dx%d", a.InputH, a.InputW),
		"classes": strconv.Itoa(a.Classes),
		"sha256":  hex.EncodeToString(sum.Sum(nil)),
	}
	return safetensors.WriteMetadata(out, w, meta)
}

// FoldedInfo reads the metadata of weights in the embedded format (arch,
// input, classes, sha256, …); it is an error if data is not in that format.
func FoldedInfo(data []byte) (map[string]string, error) {
	meta, _, err := foldedMeta(data)
	return meta, err
}

func foldedMeta(data []byte) (map[string]string, int64, error) {
	meta, start, err := safetensors.Metadata(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, 0, fmt.Errorf("embedded weights: %w", err)
	}
	if (meta["format"] != foldedFormat || meta["version"] != foldedVersion) && (meta["format"] != quantFormat || meta["version"] != quantVersion) {
		return nil, 0, fmt.Errorf("embedded weights: format %q version %q, want %q version %s or %q version %s",
			meta["format"], meta["version"], foldedFormat, foldedVersion, quantFormat, quantVersion)
	}
	return meta, start, nil
}

// ReadFolded reads weights in the embedded format for net (a go:embed
// string, read in place): the metadata must name net (architecture, input
// size, classes), the data must match its checksum, and every tensor must
// be present with its shape and finite values.
func ReadFolded(embedded string, net *resnet.Network) (*Folded, error) {
	data := unsafe.Slice(unsafe.StringData(embedded), len(embedded)) // read only
	meta, start, err := foldedMeta(data)
	if err != nil {
		return nil, err
	}
	r := bytes.NewReader(data)
	a := net.Arch
	want := map[string]string{"arch": a.Name, "input": fmt.Sprintf("%dx%d", a.InputH, a.InputW), "classes": strconv.Itoa(a.Classes)}
	for _, k := range []string{"arch", "input", "classes"} {
		if meta[k] != want[k] {
			return nil, fmt.Errorf("embedded weights are for %s %s input, %s classes; this network is %s %s, %s classes",
				meta["arch"], meta["input"], meta["classes"], want["arch"], want["input"], want["classes"])
		}
	}
	if meta["format"] == quantFormat {
		return readQuantized(data, meta, start, net)
	}
	got := sha256.Sum256(data[start:])
	if hex.EncodeToString(got[:]) != meta["sha256"] {
		return nil, fmt.Errorf("embedded weights: the data's SHA-256 is %x, the header says %s: the file is damaged", got, meta["sha256"])
	}
	w, err := safetensors.Read(r, int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("embedded weights: %w", err)
	}
	v := &resnet.ValidationError{Arch: a.Name + " (folded)"}
	expected := map[string]bool{}
	for _, s := range foldedSpecs(net) {
		expected[s.Name] = true
		t, ok := w.Tensors[s.Name]
		switch {
		case !ok:
			v.Missing = append(v.Missing, s)
		case fmt.Sprint(t.Shape) != fmt.Sprint(s.Shape):
			v.WrongShape = append(v.WrongShape, resnet.ShapeMismatch{Name: s.Name, Want: s.Shape, Got: t.Shape})
		case !resnet.Finite(t.Data):
			v.NonFinite = append(v.NonFinite, s.Name)
		}
	}
	for _, name := range w.Names() {
		if !expected[name] {
			v.Unexpected = append(v.Unexpected, name)
		}
	}
	if len(v.Missing)+len(v.WrongShape)+len(v.NonFinite)+len(v.Unexpected) > 0 {
		return nil, fmt.Errorf("embedded weights: %w", v)
	}
	return &Folded{Net: net, stored: w.Tensors}, nil
}

// Tensor returns a copy of the folded tensor name (a convolution's L.weight
// or L.bias, the classifier's fc.weight or fc.bias), for tools that
// quantize or export the folded weights themselves (bench's QDQ models); an
// error if f has none — a quantized Folded keeps its convolutions' weights
// as int8, and a Builder that packed a layer without keepWeights released
// it.
func (f *Folded) Tensor(name string) (*resnet.Tensor, error) {
	t := f.tensor(name)
	if t == nil {
		return nil, fmt.Errorf("%s: no folded tensor %s", f.Net.Arch.Name, name)
	}
	return &resnet.Tensor{Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}, nil
}
