package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"unsafe"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/quant"
)

// The int8 embedded weights format: a safetensors file whose convolutions
// are already quantized — "L.weight" int8 (I8, OIHW, symmetric per output
// channel, quant.Weights), "L.weight_scale" and "L.bias" float32 — and whose
// classifier is float32, with the calibration the package runs with in its
// metadata and the SHA-256 of the tensor data. A package generated with
// -precision int8 -embed carries these (a quarter of the float32 bytes) and
// builds its int8 Model from them without the float32 weights.
const (
	quantFormat  = "resnetgen-int8"
	quantVersion = "1"
)

// qweight is one convolution's quantized weights.
type qweight struct {
	Q     []int8
	Scale []float32
	Shape []int
}

// WriteQuantized writes f's weights quantized for an int8 Model, with the
// calibration c measured on them, in the int8 embedded format.
func WriteQuantized(out io.Writer, f *Folded, c *Calibration) error {
	if hexDigest(f.digest()) != c.WeightsSHA256 {
		return fmt.Errorf("int8 weights: the calibration was measured on other weights")
	}
	type tensor struct {
		dtype string
		shape []int
		data  []byte
	}
	tensors := map[string]tensor{}
	f32 := func(x []float32) []byte {
		b := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b
	}
	for _, l := range f.Net.Layers {
		switch l.Op {
		case resnet.OpConv:
			w := f.tensor(l.Name + ".weight")
			if w == nil {
				return fmt.Errorf("int8 weights: no tensor %s.weight", l.Name)
			}
			q, scale, err := quant.Weights(w.Data, l.OutShape.C)
			if err != nil {
				return fmt.Errorf("%s: %w", l.Name, err)
			}
			qb := make([]byte, len(q))
			for i, v := range q {
				qb[i] = byte(v)
			}
			tensors[l.Name+".weight"] = tensor{"I8", w.Shape, qb}
			tensors[l.Name+".weight_scale"] = tensor{"F32", []int{len(scale)}, f32(scale)}
			b := f.tensor(l.Name + ".bias")
			tensors[l.Name+".bias"] = tensor{"F32", b.Shape, f32(b.Data)}
		case resnet.OpFC:
			for _, n := range []string{l.Weight, l.Bias} {
				t := f.tensor(n)
				if t == nil {
					return fmt.Errorf("int8 weights: no tensor %s", n)
				}
				tensors[n] = tensor{"F32", t.Shape, f32(t.Data)}
			}
		}
	}
	// Float32 tensors first, so that each starts 4-byte aligned.
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := tensors[names[i]], tensors[names[j]]
		if (a.dtype == "F32") != (b.dtype == "F32") {
			return a.dtype == "F32"
		}
		return names[i] < names[j]
	})
	type entry struct {
		DType   string  `json:"dtype"`
		Shape   []int   `json:"shape"`
		Offsets []int64 `json:"data_offsets"`
	}
	header := map[string]any{}
	sum := sha256.New()
	var off int64
	for _, n := range names {
		t := tensors[n]
		header[n] = entry{t.dtype, t.shape, []int64{off, off + int64(len(t.data))}}
		off += int64(len(t.data))
		sum.Write(t.data)
	}
	cal, err := json.Marshal(c)
	if err != nil {
		return err
	}
	a := f.Net.Arch
	header["__metadata__"] = map[string]string{
		"format": quantFormat, "version": quantVersion, "arch": a.Name,
		"input": fmt.Sprintf("%dx%d", a.InputH, a.InputW), "classes": strconv.Itoa(a.Classes),
		"sha256": hex.EncodeToString(sum.Sum(nil)), "calibration": string(cal),
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for (8+len(h))%8 != 0 {
		h = append(h, ' ')
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(h)))
	if _, err := out.Write(n[:]); err != nil {
		return err
	}
	if _, err := out.Write(h); err != nil {
		return err
	}
	for _, name := range names {
		if _, err := out.Write(tensors[name].data); err != nil {
			return err
		}
	}
	return nil
}

// readQuantized reads weights in the int8 embedded format for net (data
// is a go:embed string's bytes, read in place; meta its metadata, start the
// tensor data's offset): the tensors' names, types and shapes, their
// checksum, finite float values, and the calibration in the metadata.
func readQuantized(data []byte, meta map[string]string, start int64, net *resnet.Network) (*Folded, error) {
	got := sha256.Sum256(data[start:])
	if hex.EncodeToString(got[:]) != meta["sha256"] {
		return nil, fmt.Errorf("embedded int8 weights: the data's SHA-256 is %x, the header says %s: the file is damaged", got, meta["sha256"])
	}
	cal, err := ParseCalibration([]byte(meta["calibration"]))
	if err != nil {
		return nil, fmt.Errorf("embedded int8 weights: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:start], &raw); err != nil {
		return nil, fmt.Errorf("embedded int8 weights: %v", err)
	}
	type entry struct {
		DType   string  `json:"dtype"`
		Shape   []int   `json:"shape"`
		Offsets []int64 `json:"data_offsets"`
	}
	entries := map[string]entry{}
	for name, m := range raw {
		if name == "__metadata__" {
			continue
		}
		var e entry
		if err := json.Unmarshal(m, &e); err != nil {
			return nil, fmt.Errorf("embedded int8 weights: tensor %s: %v", name, err)
		}
		entries[name] = e
	}
	body := data[start:]
	f := &Folded{Net: net, stored: map[string]*resnet.Tensor{}, q: map[string]*qweight{}, sha: string(mustHex(cal.WeightsSHA256)), Calibration: cal}
	take := func(name, dtype string, shape []int) ([]byte, error) {
		e, ok := entries[name]
		if !ok {
			return nil, fmt.Errorf("embedded int8 weights have no tensor %s", name)
		}
		delete(entries, name)
		n := int64(1)
		for _, d := range shape {
			n *= int64(d)
		}
		size := n
		if dtype == "F32" {
			size *= 4
		}
		if e.DType != dtype || fmt.Sprint(e.Shape) != fmt.Sprint(shape) || len(e.Offsets) != 2 ||
			e.Offsets[0] < 0 || e.Offsets[1]-e.Offsets[0] != size || e.Offsets[1] > int64(len(body)) {
			return nil, fmt.Errorf("embedded int8 weights: tensor %s is %s %v at %v, want %s %v", name, e.DType, e.Shape, e.Offsets, dtype, shape)
		}
		return body[e.Offsets[0]:e.Offsets[1]], nil
	}
	floats := func(name string, shape []int) (*resnet.Tensor, error) {
		b, err := take(name, "F32", shape)
		if err != nil {
			return nil, err
		}
		x := make([]float32, len(b)/4)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		if !resnet.Finite(x) {
			return nil, fmt.Errorf("embedded int8 weights: tensor %s has a non-finite value", name)
		}
		return &resnet.Tensor{Shape: shape, Data: x}, nil
	}
	for _, s := range foldedSpecs(net) {
		l, part := f.layerOf(s.Name)
		switch {
		case l != nil && l.Op == resnet.OpConv && part == "weight":
			b, err := take(s.Name, "I8", s.Shape)
			if err != nil {
				return nil, err
			}
			sc, err := floats(l.Name+".weight_scale", []int{s.Shape[0]})
			if err != nil {
				return nil, err
			}
			for _, v := range sc.Data {
				if !(v > 0) {
					return nil, fmt.Errorf("embedded int8 weights: %s.weight_scale holds %v", l.Name, v)
				}
			}
			f.q[s.Name] = &qweight{Q: unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(b))), len(b)), Scale: sc.Data, Shape: s.Shape}
		default:
			t, err := floats(s.Name, s.Shape)
			if err != nil {
				return nil, err
			}
			f.stored[s.Name] = t
		}
	}
	for name := range entries {
		return nil, fmt.Errorf("embedded int8 weights: unexpected tensor %s", name)
	}
	return f, nil
}

// layerOf is the layer of net a folded tensor name belongs to, with the
// name's last part ("weight", "bias").
func (f *Folded) layerOf(name string) (*resnet.Layer, string) {
	for i := range f.Net.Layers {
		l := &f.Net.Layers[i]
		if l.Op == resnet.OpConv && (name == l.Name+".weight" || name == l.Name+".bias") {
			return l, name[len(l.Name)+1:]
		}
		if l.Op == resnet.OpFC && (name == l.Weight || name == l.Bias) {
			return l, ""
		}
	}
	return nil, ""
}

// quantized reports whether f holds int8 weights (the int8 embedded format).
func (f *Folded) quantized() bool { return f.q != nil }

// qweights returns layer's int8 weights, if f holds them.
func (f *Folded) qweights(layer string) (*qweight, bool) {
	q, ok := f.q[layer+".weight"]
	return q, ok
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err) // ParseCalibration checked it
	}
	return b
}
