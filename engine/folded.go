package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"unsafe"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/safetensors"
)

// Folded is a network's weights ready to pack: every BatchNorm folded into
// the convolution before it. Tensors holds, per convolution layer L,
// "L.weight" (OIHW, scaled by BatchNorm) and "L.bias"; and the classifier's
// weight and bias under their checkpoint names.
type Folded struct {
	Net     *resnet.Network
	Tensors map[string]*resnet.Tensor
}

// Fold validates w against net (every tensor's name, shape and finite
// values) and folds each BatchNorm into its convolution, in float64.
func Fold(net *resnet.Network, w *resnet.Weights) (*Folded, error) {
	if err := w.Validate(net); err != nil {
		return nil, err
	}
	f := &Folded{Net: net, Tensors: map[string]*resnet.Tensor{}}
	for _, l := range net.Layers {
		switch l.Op {
		case resnet.OpConv:
			t := w.Tensors
			wt, bias := resnet.FoldBN(t[l.Weight].Data, t[l.BN+".weight"].Data, t[l.BN+".bias"].Data,
				t[l.BN+".running_mean"].Data, t[l.BN+".running_var"].Data, resnet.BNEpsilon)
			f.Tensors[l.Name+".weight"] = &resnet.Tensor{Shape: t[l.Weight].Shape, Data: wt}
			f.Tensors[l.Name+".bias"] = &resnet.Tensor{Shape: []int{l.OutShape.C}, Data: bias}
		case resnet.OpFC:
			f.Tensors[l.Weight] = w.Tensors[l.Weight]
			f.Tensors[l.Bias] = w.Tensors[l.Bias]
		}
	}
	return f, nil
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
	w := &resnet.Weights{Tensors: f.Tensors}
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
	if meta["format"] != foldedFormat || meta["version"] != foldedVersion {
		return nil, 0, fmt.Errorf("embedded weights: format %q version %q, want %q version %s", meta["format"], meta["version"], foldedFormat, foldedVersion)
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
	return &Folded{Net: net, Tensors: w.Tensors}, nil
}
