// Package onnx reads the parts of ONNX models that resnetgen uses: tensors
// (initializers and the .pb test data of ONNX's backend tests), and graphs
// of nodes with their attributes. It decodes the protobuf wire format with
// google.golang.org/protobuf/encoding/protowire against the field numbers
// of onnx.proto, rather than compiling onnx.proto into generated message
// types: seven messages and a few dozen fields do not justify a generated
// file or another module, and the decoder can bound every length it reads.
package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/resnetgen/resnetgen/resnet"
)

// TensorProto.DataType values this package converts to float32.
const (
	typeFloat    = 1
	typeUint8    = 2
	typeInt64    = 7
	typeFloat16  = 10
	typeDouble   = 11
	typeBFloat16 = 16
)

var typeNames = map[int64]string{1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
	8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64", 16: "bfloat16"}

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
}

// fields walks one message, calling f for every field. f receives the
// wire type and either the varint / fixed value or the bytes.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("protobuf: bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		var v uint64
		var data []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			v = uint64(x)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			data, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("protobuf: field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, data); err != nil {
			return err
		}
	}
	return nil
}

// int64s appends a repeated int64 field, packed or not.
func int64s(dst []int64, typ protowire.Type, v uint64, data []byte) ([]int64, error) {
	if typ == protowire.VarintType {
		return append(dst, int64(v)), nil
	}
	for len(data) > 0 {
		x, n := protowire.ConsumeVarint(data)
		if n < 0 {
			return nil, errors.New("protobuf: bad packed varint")
		}
		dst = append(dst, int64(x))
		data = data[n:]
	}
	return dst, nil
}

// float32s appends a repeated float field, packed or not.
func float32s(dst []float32, typ protowire.Type, v uint64, data []byte) ([]float32, error) {
	if typ == protowire.Fixed32Type {
		return append(dst, math.Float32frombits(uint32(v))), nil
	}
	if len(data)%4 != 0 {
		return nil, errors.New("protobuf: packed floats not a multiple of 4 bytes")
	}
	for i := 0; i < len(data); i += 4 {
		dst = append(dst, math.Float32frombits(binary.LittleEndian.Uint32(data[i:])))
	}
	return dst, nil
}

// ReadTensor decodes a TensorProto (a test's input_0.pb, or an initializer).
func ReadTensor(b []byte) (*Tensor, error) {
	var (
		dims        []int64
		dtype       int64
		floats      []float32
		doubles     []float64
		ints        []int64
		raw         []byte
		hasRaw, ext bool
		name        string
	)
	err := fields(b, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
		var err error
		switch num {
		case 1:
			dims, err = int64s(dims, typ, v, data)
		case 2:
			dtype = int64(v)
		case 4:
			floats, err = float32s(floats, typ, v, data)
		case 7:
			ints, err = int64s(ints, typ, v, data)
		case 8:
			name = string(data)
		case 9:
			raw, hasRaw = data, true
		case 10:
			if typ == protowire.Fixed64Type {
				doubles = append(doubles, math.Float64frombits(v))
			} else {
				for i := 0; i+8 <= len(data); i += 8 {
					doubles = append(doubles, math.Float64frombits(binary.LittleEndian.Uint64(data[i:])))
				}
			}
		case 13:
			ext = true
		case 14:
			ext = ext || v == 1
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	t := &Tensor{Name: name, Type: typeNames[dtype]}
	if t.Type == "" {
		t.Type = fmt.Sprintf("type %d", dtype)
	}
	if ext {
		return nil, fmt.Errorf("tensor %q: external data (a separate file) is not supported", name)
	}
	n := 1
	for _, d := range dims {
		if d < 0 || (d > 0 && int64(n) > math.MaxInt32/d) {
			return nil, fmt.Errorf("tensor %q: dims %v", name, dims)
		}
		n *= int(d)
		t.Dims = append(t.Dims, int(d))
	}
	size := map[int64]int{typeFloat: 4, typeUint8: 1, typeInt64: 8, typeFloat16: 2, typeDouble: 8, typeBFloat16: 2}[dtype]
	if size == 0 {
		return nil, fmt.Errorf("tensor %q: data type %s is not supported", name, t.Type)
	}
	// Check that the data is there before allocating for it: dims alone
	// could ask for gigabytes.
	switch {
	case hasRaw && len(raw) != n*size:
		return nil, fmt.Errorf("tensor %q: %d raw bytes for dims %v of %s (want %d)", name, len(raw), dims, t.Type, n*size)
	case !hasRaw && !(dtype == typeFloat && len(floats) == n || dtype == typeDouble && len(doubles) == n || dtype == typeInt64 && len(ints) == n):
		return nil, fmt.Errorf("tensor %q: no data for dims %v of %s", name, dims, t.Type)
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

func readNode(b []byte) (Node, error) {
	nd := Node{Attrs: map[string]Attr{}}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
		switch num {
		case 1:
			nd.Inputs = append(nd.Inputs, string(data))
		case 2:
			nd.Output = append(nd.Output, string(data))
		case 3:
			nd.Name = string(data)
		case 4:
			nd.OpType = string(data)
		case 5:
			var name string
			var a Attr
			err := fields(data, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
				var err error
				switch num {
				case 1:
					name = string(data)
				case 2:
					a.Float = math.Float32frombits(uint32(v))
				case 3:
					a.Int = int64(v)
				case 4:
					a.String = string(data)
				case 7:
					a.Floats, err = float32s(a.Floats, typ, v, data)
				case 8:
					a.Ints, err = int64s(a.Ints, typ, v, data)
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("attribute: %w", err)
			}
			nd.Attrs[name] = a
		}
		return nil
	})
	return nd, err
}

// valueName reads the name of a ValueInfoProto.
func valueName(b []byte) (string, error) {
	var name string
	err := fields(b, func(num protowire.Number, _ protowire.Type, _ uint64, data []byte) error {
		if num == 1 {
			name = string(data)
		}
		return nil
	})
	return name, err
}

// ReadModel decodes a ModelProto's graph: nodes, initializers, input and
// output names.
func ReadModel(b []byte) (*Model, error) {
	m := &Model{}
	found := false
	err := fields(b, func(num protowire.Number, _ protowire.Type, _ uint64, data []byte) error {
		if num != 7 {
			return nil
		}
		found = true
		return fields(data, func(num protowire.Number, _ protowire.Type, _ uint64, data []byte) error {
			switch num {
			case 1:
				nd, err := readNode(data)
				if err != nil {
					return fmt.Errorf("node %d: %w", len(m.Nodes), err)
				}
				m.Nodes = append(m.Nodes, nd)
			case 5:
				t, err := ReadTensor(data)
				if err != nil {
					return fmt.Errorf("initializer %d: %w", len(m.Initializers), err)
				}
				m.Initializers = append(m.Initializers, *t)
			case 11, 12:
				name, err := valueName(data)
				if err != nil {
					return err
				}
				if num == 11 {
					m.Inputs = append(m.Inputs, name)
				} else {
					m.Outputs = append(m.Outputs, name)
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	if !found {
		return nil, errors.New("onnx: no graph (not an ONNX model?)")
	}
	return m, nil
}
