// Package onnx reads the parts of ONNX models that resnetgen uses: tensors
// (initializers and the .pb test data of ONNX's backend tests), and graphs
// of nodes with their attributes. The protobuf is decoded by
// google.golang.org/protobuf into the message types of package onnxpb,
// generated from onnx.proto (ONNX 1.12.0); this package turns them into
// the few plain structs below, every tensor converted to float32.
//
// A model file is read without holding it: ReadModelAt walks the
// protobuf in place, decoding everything but the initializers' raw data,
// whose place in the file it notes; each initializer's values are read
// from there, straight into their float32 array, only when asked for.
package onnx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/onnx/onnxpb"
)

// TensorProto.DataType values this package converts to float32.
const (
	typeFloat    = int32(onnxpb.TensorProto_FLOAT)
	typeUint8    = int32(onnxpb.TensorProto_UINT8)
	typeInt64    = int32(onnxpb.TensorProto_INT64)
	typeFloat16  = int32(onnxpb.TensorProto_FLOAT16)
	typeDouble   = int32(onnxpb.TensorProto_DOUBLE)
	typeBFloat16 = int32(onnxpb.TensorProto_BFLOAT16)
)

// Tensor is a TensorProto converted to float32.
type Tensor struct {
	Name string
	Dims []int
	Type string
	// Float holds the values; it is nil for an initializer of a Model from
	// ReadModelAt, whose values stay in the file (see Model.Values).
	Float []float32
	dtype int32
	raw   int64 // where the raw data starts in the file, if Float is nil
}

// Node is a NodeProto: an operator with named inputs, outputs and attributes.
type Node struct {
	Name, OpType   string
	Inputs, Output []string
	Attrs          map[string]Attr
}

// Attr is an AttributeProto of the kinds the operators here take.
type Attr struct {
	Int    int64
	Ints   []int64
	Float  float32
	Floats []float32
	String string
}

// Model is the graph of a ModelProto.
type Model struct {
	Nodes        []Node
	Initializers []Tensor
	Inputs       []string
	Outputs      []string
	// InputDims holds, per input name, its declared tensor dimensions; a
	// symbolic or unknown dimension is -1.
	InputDims map[string][]int
	r         io.ReaderAt // ReadModelAt's: where initializers' values are
}

// ReadTensor decodes a TensorProto (a test's input_0.pb, or an initializer).
func ReadTensor(b []byte) (*Tensor, error) {
	var tp onnxpb.TensorProto
	if err := proto.Unmarshal(b, &tp); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	t, err := describe(&tp, int64(len(tp.GetRawData())), tp.RawData != nil)
	if err != nil {
		return nil, err
	}
	if t.Float == nil {
		f := make([]float32, t.Len())
		if err := t.read(bytes.NewReader(tp.GetRawData()), f); err != nil {
			return nil, err
		}
		t.Float = f
	}
	return t, nil
}

// describe checks that a TensorProto's data matches its dims (raw data of
// rawLen bytes if hasRaw, else its typed fields) and returns the Tensor:
// with Float converted from the typed fields, or (raw data) without Float,
// to be read by read from where the raw data is.
func describe(tp *onnxpb.TensorProto, rawLen int64, hasRaw bool) (*Tensor, error) {
	name, dtype := tp.GetName(), tp.GetDataType()
	t := &Tensor{Name: name, Type: strings.ToLower(onnxpb.TensorProto_DataType(dtype).String()), dtype: dtype} // "float", "float16", …
	if tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(tp.GetExternalData()) > 0 {
		return nil, fmt.Errorf("tensor %q: external data (a separate file) is not supported", name)
	}
	n := 1
	for _, d := range tp.GetDims() {
		if d < 0 || (d > 0 && int64(n) > math.MaxInt32/d) {
			return nil, fmt.Errorf("tensor %q: dims %v", name, tp.GetDims())
		}
		n *= int(d)
		t.Dims = append(t.Dims, int(d))
	}
	size := sizes[dtype]
	if size == 0 {
		return nil, fmt.Errorf("tensor %q: data type %s is not supported", name, t.Type)
	}
	floats, doubles, ints := tp.GetFloatData(), tp.GetDoubleData(), tp.GetInt64Data()
	switch {
	case hasRaw && rawLen != int64(n*size):
		return nil, fmt.Errorf("tensor %q: %d raw bytes for dims %v of %s (want %d)", name, rawLen, tp.GetDims(), t.Type, n*size)
	case !hasRaw && !(dtype == typeFloat && len(floats) == n || dtype == typeDouble && len(doubles) == n || dtype == typeInt64 && len(ints) == n):
		return nil, fmt.Errorf("tensor %q: no data for dims %v of %s", name, tp.GetDims(), t.Type)
	case hasRaw:
		return t, nil
	}
	t.Float = make([]float32, n)
	switch dtype {
	case typeFloat:
		copy(t.Float, floats)
	case typeDouble:
		for i, d := range doubles {
			t.Float[i] = float32(d)
		}
	case typeInt64:
		for i, d := range ints {
			t.Float[i] = float32(d)
		}
	}
	return t, nil
}

// sizes is the bytes of one value of each data type this package reads.
var sizes = map[int32]int{typeFloat: 4, typeUint8: 1, typeInt64: 8, typeFloat16: 2, typeDouble: 8, typeBFloat16: 2}

// Len is the number of values of t (the product of its dims).
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// read puts t's values into dst (t.Len() of them): from Float, or
// converted from the raw data at t.raw in r.
func (t *Tensor) read(r io.ReaderAt, dst []float32) error {
	if t.Float != nil {
		copy(dst, t.Float)
		return nil
	}
	if r == nil {
		return fmt.Errorf("tensor %q: its values were not read", t.Name)
	}
	var convert func(b []byte, dst []float32)
	switch t.dtype {
	case typeFloat:
		return resnet.ReadFloat32s(r, t.raw, dst)
	case typeDouble:
		convert = func(b []byte, dst []float32) {
			for i := range dst {
				dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
			}
		}
	case typeFloat16:
		convert = func(b []byte, dst []float32) {
			for i := range dst {
				dst[i] = resnet.HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		}
	case typeBFloat16:
		convert = func(b []byte, dst []float32) {
			for i := range dst {
				dst[i] = resnet.BFloat16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		}
	case typeUint8:
		convert = func(b []byte, dst []float32) {
			for i := range dst {
				dst[i] = float32(b[i])
			}
		}
	case typeInt64:
		convert = func(b []byte, dst []float32) {
			for i := range dst {
				dst[i] = float32(int64(binary.LittleEndian.Uint64(b[8*i:])))
			}
		}
	}
	return resnet.ReadConverted(r, t.raw, sizes[t.dtype], dst, convert)
}

func node(np *onnxpb.NodeProto) Node {
	nd := Node{Name: np.GetName(), OpType: np.GetOpType(), Inputs: np.GetInput(), Output: np.GetOutput(), Attrs: map[string]Attr{}}
	for _, a := range np.GetAttribute() {
		nd.Attrs[a.GetName()] = Attr{Int: a.GetI(), Ints: a.GetInts(), Float: a.GetF(), Floats: a.GetFloats(), String: string(a.GetS())}
	}
	return nd
}

// ReadModel decodes a ModelProto's graph: nodes, initializers (their
// values read), input and output names.
func ReadModel(b []byte) (*Model, error) {
	m, err := ReadModelAt(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	if err := m.readAll(); err != nil {
		return nil, err
	}
	m.r = nil
	return m, nil
}

// readAll reads every initializer's values into its Float.
func (m *Model) readAll() error {
	for i := range m.Initializers {
		t := &m.Initializers[i]
		if t.Float == nil {
			f := make([]float32, t.Len())
			if err := t.read(m.r, f); err != nil {
				return fmt.Errorf("onnx: initializer %d: %w", i, err)
			}
			t.Float = f
		}
	}
	return nil
}

// ReadModelAt decodes the ModelProto in r (size bytes) as ReadModel does,
// but leaves the initializers' raw data in r: their Float is nil until read
// (Model.Values), and only the rest of the model is held in memory.
func ReadModelAt(r io.ReaderAt, size int64) (*Model, error) {
	w := &walker{r: r}
	var rest, graph []byte // the model's and the graph's other fields, to decode
	var inits []Tensor
	sawGraph := false
	err := w.fields(size, func(num protowire.Number, typ protowire.Type, start, end int64) error {
		if num != 7 || typ != protowire.BytesType { // ModelProto.graph
			return w.keep(&rest, start, end)
		}
		sawGraph = true
		return w.fields(end, func(num protowire.Number, typ protowire.Type, start, end int64) error {
			if num != 5 || typ != protowire.BytesType { // GraphProto.initializer
				return w.keep(&graph, start, end)
			}
			t, err := w.tensor(end)
			if err != nil {
				return fmt.Errorf("initializer %d: %w", len(inits), err)
			}
			inits = append(inits, *t)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	var mp onnxpb.ModelProto
	var g onnxpb.GraphProto
	if err := proto.Unmarshal(rest, &mp); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	if err := proto.Unmarshal(graph, &g); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	if !sawGraph {
		return nil, errors.New("onnx: no graph (not an ONNX model?)")
	}
	m := &Model{Initializers: inits, r: r}
	for _, np := range g.GetNode() {
		m.Nodes = append(m.Nodes, node(np))
	}
	m.InputDims = map[string][]int{}
	for _, v := range g.GetInput() {
		m.Inputs = append(m.Inputs, v.GetName())
		var dims []int
		for _, d := range v.GetType().GetTensorType().GetShape().GetDim() {
			n := -1
			if x, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); ok && x.DimValue > 0 && x.DimValue < 1<<31 {
				n = int(x.DimValue)
			}
			dims = append(dims, n)
		}
		m.InputDims[v.GetName()] = dims
	}
	for _, v := range g.GetOutput() {
		m.Outputs = append(m.Outputs, v.GetName())
	}
	return m, nil
}

// Values reads the values of t, an initializer of m, into a new array.
func (m *Model) Values(t *Tensor) ([]float32, error) {
	if t.Float != nil {
		return t.Float, nil
	}
	f := make([]float32, t.Len())
	if err := t.read(m.r, f); err != nil {
		return nil, err
	}
	return f, nil
}

// walker reads the protobuf encoding in r field by field, a small window
// at a time, so that it can step over a field (the raw data of a
// tensor) without reading it.
type walker struct {
	r    io.ReaderAt
	pos  int64
	buf  []byte // the bytes of r at [at, at+len(buf))
	at   int64
	grow [8 << 10]byte
}

// byte returns the byte at pos and advances.
func (w *walker) byte(end int64) (byte, error) {
	if w.pos >= end {
		return 0, fmt.Errorf("truncated field at byte %d", w.pos)
	}
	if w.pos < w.at || w.pos >= w.at+int64(len(w.buf)) {
		n, err := w.r.ReadAt(w.grow[:min(int64(len(w.grow)), end-w.pos)], w.pos)
		if n == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("byte %d: %w", w.pos, err)
		}
		w.buf, w.at = w.grow[:n], w.pos
	}
	b := w.buf[w.pos-w.at]
	w.pos++
	return b, nil
}

// varint reads a base-128 varint at pos.
func (w *walker) varint(end int64) (uint64, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		b, err := w.byte(end)
		if err != nil {
			return 0, err
		}
		if i == 9 && b > 1 {
			break
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("varint overflows 64 bits at byte %d", w.pos)
}

// fields calls f with each field from pos to end: its number, wire type,
// and where it starts (its key) and ends. For a length-delimited field f is
// called with pos at the payload, which it may walk; the walk goes on after
// the field, however much f read.
func (w *walker) fields(end int64, f func(num protowire.Number, typ protowire.Type, start, end int64) error) error {
	for w.pos < end {
		start := w.pos
		num, typ, err := w.key(end)
		if err != nil {
			return err
		}
		if typ == protowire.BytesType {
			n, err := w.varint(end)
			if err != nil {
				return err
			}
			if n > uint64(end-w.pos) {
				return fmt.Errorf("field %d at byte %d holds %d bytes, %d remain (truncated file?)", num, start, n, end-w.pos)
			}
			payload := w.pos
			if err := f(num, typ, start, payload+int64(n)); err != nil {
				return err
			}
			w.pos = payload + int64(n)
			continue
		}
		if err := w.skip(num, typ, start, end); err != nil {
			return err
		}
		if err := f(num, typ, start, w.pos); err != nil {
			return err
		}
	}
	return nil
}

// key reads a field's key at pos.
func (w *walker) key(end int64) (protowire.Number, protowire.Type, error) {
	at := w.pos
	key, err := w.varint(end)
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(key)
	if num < protowire.MinValidNumber || num > protowire.MaxValidNumber {
		return 0, 0, fmt.Errorf("invalid field number %d at byte %d", num, at)
	}
	return num, typ, nil
}

// skip steps over the value of a field that is not length-delimited (a
// group: up to its end, whatever it holds).
func (w *walker) skip(num protowire.Number, typ protowire.Type, start, end int64) error {
	switch typ {
	case protowire.VarintType:
		if _, err := w.varint(end); err != nil {
			return err
		}
	case protowire.Fixed32Type:
		w.pos += 4
	case protowire.Fixed64Type:
		w.pos += 8
	case protowire.StartGroupType:
		for {
			at := w.pos
			n, t, err := w.key(end)
			if err != nil {
				return err
			}
			if t == protowire.EndGroupType {
				if n != num {
					return fmt.Errorf("group %d at byte %d ends as group %d", num, start, n)
				}
				break
			}
			if t == protowire.BytesType {
				l, err := w.varint(end)
				if err != nil {
					return err
				}
				w.pos += int64(min(l, uint64(end-w.pos)+1))
			} else if err := w.skip(n, t, at, end); err != nil {
				return err
			}
			if w.pos > end {
				break
			}
		}
	default:
		return fmt.Errorf("field %d at byte %d: wire type %d out of place", num, start, typ)
	}
	if w.pos > end {
		return fmt.Errorf("truncated field %d at byte %d", num, start)
	}
	return nil
}

// keep appends the encoded field at [start, end) to b.
func (w *walker) keep(b *[]byte, start, end int64) error {
	if start >= w.at && end <= w.at+int64(len(w.buf)) {
		*b = append(*b, w.buf[start-w.at:end-w.at]...)
		return nil
	}
	n := len(*b)
	*b = append(*b, make([]byte, end-start)...)
	if k, err := w.r.ReadAt((*b)[n:], start); k < int(end-start) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("byte %d: %w", start, err)
	}
	return nil
}

// tensor decodes the TensorProto from pos to end but for its raw data,
// whose place it notes.
func (w *walker) tensor(end int64) (*Tensor, error) {
	var rest []byte
	raw, rawLen, hasRaw := int64(0), int64(0), false
	err := w.fields(end, func(num protowire.Number, typ protowire.Type, start, end int64) error {
		if num == 9 && typ == protowire.BytesType { // TensorProto.raw_data: the last one counts
			raw, rawLen, hasRaw = w.pos, end-w.pos, true
			return nil
		}
		return w.keep(&rest, start, end)
	})
	if err != nil {
		return nil, err
	}
	var tp onnxpb.TensorProto
	if err := proto.Unmarshal(rest, &tp); err != nil {
		return nil, err
	}
	t, err := describe(&tp, rawLen, hasRaw)
	if err != nil {
		return nil, err
	}
	t.raw = raw
	return t, nil
}
