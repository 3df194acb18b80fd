// Package weightfile reads a network's weights from any file format the
// resnet packages read, recognising the format by content (not by name), and
// can tell which catalogued network a file holds.
//
//	f, err := weightfile.Open("resnet50-11ad3fa6.pth")
//	arch, err := f.Detect()            // "resnet50"
//	w, err := f.Weights(resnet.MustBuild(arch))
package weightfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/onnx"
	"github.com/resnetgen/resnetgen/resnet/pytorch"
	"github.com/resnetgen/resnetgen/resnet/safetensors"
)

// Format names a weight file format.
type Format string

// The formats Open recognises.
const (
	PyTorch     Format = "pytorch"     // torch.save: zip (torch ≥ 1.6) or legacy pickle
	Safetensors Format = "safetensors" // torchvision or timm tensor names
	ONNX        Format = "onnx"        // torch.onnx.export, BatchNorm as nodes or folded
)

// File is an opened weight file: what it holds, without the tensors'
// values, which Weights reads from the file when asked.
type File struct {
	Path   string
	Format Format
	named  *resnet.Index // PyTorch and safetensors: tensors by state_dict name
	model  *onnx.Model   // ONNX: which tensor is which depends on the network
	stat   os.FileInfo   // the file Open read, which Weights reads again
}

// Open reads the weight file at path: its header, pickle or graph, not
// the tensors' values. A zip archive or a pickle is a PyTorch checkpoint;
// an 8-byte little-endian length followed by '{' is safetensors; a
// protobuf starting with ir_version (field 1, varint) is an ONNX model.
func Open(path string) (*File, error) {
	out := &File{Path: path}
	err := out.read(func(r io.ReaderAt, size int64) (err error) {
		var head [9]byte
		n, _ := r.ReadAt(head[:], 0)
		switch {
		case n >= 4 && bytes.Equal(head[:4], []byte("PK\x03\x04")), n >= 1 && head[0] == 0x80:
			out.Format = PyTorch
			out.named, err = pytorch.Index(r, size)
		case n == 9 && head[8] == '{':
			out.Format = Safetensors
			out.named, err = safetensors.Index(r, size)
		case n >= 1 && head[0] == 0x08:
			out.Format = ONNX
			out.model, err = onnx.ReadModelAt(r, size)
		default:
			return fmt.Errorf("%s: not a weight file resnet reads (PyTorch .pth/.th, zip or legacy; safetensors; ONNX)", path)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// read calls read with the file, open for the call: the same file Open
// read (an error if it has changed since).
func (f *File) read(read func(r io.ReaderAt, size int64) error) error {
	file, err := os.Open(f.Path)
	if err != nil {
		return err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return err
	}
	if f.stat == nil {
		f.stat = st
	} else if !os.SameFile(f.stat, st) || st.Size() != f.stat.Size() || !st.ModTime().Equal(f.stat.ModTime()) {
		return fmt.Errorf("%s: the file changed after it was opened", f.Path)
	}
	return read(file, st.Size())
}

// Load opens path and returns its weights for net (see File.Weights).
func Load(path string, net *resnet.Network) (*resnet.Weights, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	return f.Weights(net)
}

// Weights returns the file's weights for net, validated: every tensor net
// reads is present with its shape and finite values, and no other tensor is.
// The error names the offending tensors with both shapes
// (a *resnet.ValidationError inside). The values are read from the file
// now, each tensor straight into its own array.
func (f *File) Weights(net *resnet.Network) (*resnet.Weights, error) {
	x, err := f.index(net)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	var w *resnet.Weights
	err = f.read(func(r io.ReaderAt, _ int64) (err error) {
		w, err = x.Read(r)
		return err
	})
	if err == nil {
		err = w.Validate(net)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return w, nil
}

// index returns the file's tensors for net (an ONNX model's depend on it).
func (f *File) index(net *resnet.Network) (*resnet.Index, error) {
	if f.model != nil {
		return onnx.Index(f.model, net)
	}
	return f.named, nil
}

// Detect names the catalogued network (resnet.Names) whose tensors the file
// holds exactly, with the catalogue's class count. Weights for another
// class count (a fine-tuned classifier) are an error that says so: only a
// generated package for them can run them (see DetectArch).
func (f *File) Detect() (string, error) {
	a, err := f.DetectArch()
	if err != nil {
		return "", err
	}
	def, _ := resnet.Lookup(a.Name)
	if a.Classes != def.Classes {
		return "", fmt.Errorf("%s: %s weights with %d classes, not the catalogue's %d: generate a package for them with resnetgen -weights %s",
			f.Path, a.Name, a.Classes, def.Classes, f.Path)
	}
	return a.Name, nil
}

// DetectArch returns the catalogued architecture (resnet.Names) whose
// tensors the file holds, with Classes set to the file's classifier outputs
// (any number: transfer learning replaces the classifier). A v1 bottleneck
// network has the tensors of its v1.5 twin (only a stride moves), so when
// both fit the v1.5 one is returned: torchvision and timm publish v1.5
// weights; name the v1 architecture explicitly to run weights trained as
// v1. Any other tie, or no fit, is an error; with no fit it quotes the
// closest network's mismatches. It compares names and shapes only; Weights
// then checks the values (NaN, Inf) of the one chosen.
func (f *File) DetectArch() (resnet.Arch, error) {
	type miss struct {
		problems int
		err      error
	}
	var fits []resnet.Arch
	var misses []miss
	for _, name := range resnet.Names() {
		a, _ := resnet.Lookup(name)
		if c := f.Classes(a); c > 0 {
			a.Classes = c
		}
		net, err := resnet.Build(a)
		if err == nil {
			var x *resnet.Index
			if x, err = f.index(net); err == nil {
				err = x.ValidateShapes(net)
			}
		}
		if err != nil {
			misses = append(misses, miss{problems(err), err})
			continue
		}
		fits = append(fits, net.Arch)
	}
	var found []resnet.Arch
	for _, a := range fits {
		if !hasV15Twin(a, fits) {
			found = append(found, a)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		var names []string
		for _, a := range found {
			names = append(names, a.Name)
		}
		return resnet.Arch{}, fmt.Errorf("%s: the tensors fit %s alike; choose one with -arch", f.Path, strings.Join(names, ", "))
	}
	sort.SliceStable(misses, func(i, j int) bool { return misses[i].problems < misses[j].problems })
	return resnet.Arch{}, fmt.Errorf("%s: the tensors fit no catalogued network; the closest: %w", f.Path, misses[0].err)
}

// Classes returns the number of outputs of the file's classifier for
// architecture a (the first dimension of its weight), or 0 if the file has
// no classifier where a expects one.
func (f *File) Classes(a resnet.Arch) int {
	if f.named != nil {
		if t, ok := f.named.Tensors[a.FCName+".weight"]; ok && len(t.Shape) == 2 {
			return t.Shape[0]
		}
		return 0
	}
	return onnx.Classes(f.model, a.FCName)
}

// InputSize returns the image height and width an ONNX model was exported
// for (its input's declared N×3×H×W shape); ok is false for other formats,
// or when the model declares no fixed size.
func (f *File) InputSize() (h, w int, ok bool) {
	if f.model == nil {
		return 0, 0, false
	}
	return onnx.InputSize(f.model)
}

// hasV15Twin reports whether a is a V1 network and archs holds the same
// network with the v1.5 stride placement.
func hasV15Twin(a resnet.Arch, archs []resnet.Arch) bool {
	if a.Variant != resnet.V1 {
		return false
	}
	for _, b := range archs {
		if b.Variant == resnet.V1_5 && sameBut(a, b) {
			return true
		}
	}
	return false
}

// sameBut reports whether a and b differ only in name and variant.
func sameBut(a, b resnet.Arch) bool {
	a.Name, a.Variant = b.Name, b.Variant
	return reflect.DeepEqual(a, b)
}

// problems counts how badly weights missed a network: the validation
// problems, or a large number when the file could not even be mapped to it.
func problems(err error) int {
	var v *resnet.ValidationError
	if errors.As(err, &v) {
		return len(v.Missing) + len(v.Unexpected) + len(v.WrongShape) + len(v.NonFinite)
	}
	return 1 << 30
}
