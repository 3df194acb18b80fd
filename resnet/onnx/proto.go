// Package onnx reads the parts of ONNX models that resnetgen uses: tensors
// (initializers and the .pb test data of ONNX's backend tests), and graphs
// of nodes with their attributes. The protobuf is decoded by
// google.golang.org/protobuf into the message types of package onnxpb,
// generated from onnx.proto (ONNX 1.12.0); this package turns them into
// the few plain structs below, every tensor converted to float32.
package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

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
	Name  string
	Dims  []int
	Type  string
	Float []float32
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
}

// ReadTensor decodes a TensorProto (a test's input_0.pb, or an initializer).
func ReadTensor(b []byte) (*Tensor, error) {
	var tp onnxpb.TensorProto
	if err := proto.Unmarshal(b, &tp); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return tensor(&tp)
}

// tensor converts a TensorProto to float32, checking that its data matches
// its dims.
func tensor(tp *onnxpb.TensorProto) (*Tensor, error) {
	name, dtype := tp.GetName(), tp.GetDataType()
	t := &Tensor{Name: name, Type: strings.ToLower(onnxpb.TensorProto_DataType(dtype).String())} // "float", "float16", …
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
	size := map[int32]int{typeFloat: 4, typeUint8: 1, typeInt64: 8, typeFloat16: 2, typeDouble: 8, typeBFloat16: 2}[dtype]
	if size == 0 {
		return nil, fmt.Errorf("tensor %q: data type %s is not supported", name, t.Type)
	}
	raw, hasRaw := tp.GetRawData(), tp.RawData != nil
	floats, doubles, ints := tp.GetFloatData(), tp.GetDoubleData(), tp.GetInt64Data()
	switch {
	case hasRaw && len(raw) != n*size:
		return nil, fmt.Errorf("tensor %q: %d raw bytes for dims %v of %s (want %d)", name, len(raw), tp.GetDims(), t.Type, n*size)
	case !hasRaw && !(dtype == typeFloat && len(floats) == n || dtype == typeDouble && len(doubles) == n || dtype == typeInt64 && len(ints) == n):
		return nil, fmt.Errorf("tensor %q: no data for dims %v of %s", name, tp.GetDims(), t.Type)
	}
	t.Float = make([]float32, n)
	switch {
	case hasRaw:
		for i := range t.Float {
			switch dtype {
			case typeFloat:
				t.Float[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			case typeDouble:
				t.Float[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
			case typeFloat16:
				t.Float[i] = resnet.HalfToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
			case typeBFloat16:
				t.Float[i] = resnet.BFloat16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
			case typeUint8:
				t.Float[i] = float32(raw[i])
			case typeInt64:
				t.Float[i] = float32(int64(binary.LittleEndian.Uint64(raw[8*i:])))
			}
		}
	case dtype == typeFloat:
		copy(t.Float, floats)
	case dtype == typeDouble:
		for i, d := range doubles {
			t.Float[i] = float32(d)
		}
	case dtype == typeInt64:
		for i, d := range ints {
			t.Float[i] = float32(d)
		}
	}
	return t, nil
}

func node(np *onnxpb.NodeProto) Node {
	nd := Node{Name: np.GetName(), OpType: np.GetOpType(), Inputs: np.GetInput(), Output: np.GetOutput(), Attrs: map[string]Attr{}}
	for _, a := range np.GetAttribute() {
		nd.Attrs[a.GetName()] = Attr{Int: a.GetI(), Ints: a.GetInts(), Float: a.GetF(), Floats: a.GetFloats(), String: string(a.GetS())}
	}
	return nd
}

// ReadModel decodes a ModelProto's graph: nodes, initializers, input and
// output names.
func ReadModel(b []byte) (*Model, error) {
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	g := mp.GetGraph()
	if g == nil {
		return nil, errors.New("onnx: no graph (not an ONNX model?)")
	}
	m := &Model{}
	for _, np := range g.GetNode() {
		m.Nodes = append(m.Nodes, node(np))
	}
	for i, tp := range g.GetInitializer() {
		t, err := tensor(tp)
		if err != nil {
			return nil, fmt.Errorf("onnx: initializer %d: %w", i, err)
		}
		m.Initializers = append(m.Initializers, *t)
		tp.RawData = nil // the float32 copy is what is kept
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
