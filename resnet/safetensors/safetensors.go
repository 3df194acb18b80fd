// Package safetensors reads weights in Hugging Face's safetensors format
// (torchvision and timm ResNets use torchvision's tensor names) into
// resnet.Weights.
//
// The format: an 8-byte little-endian header length N, N bytes of JSON
// mapping each tensor name to {"dtype", "shape", "data_offsets": [begin,
// end]} (offsets into the data that follows the header), and an optional
// "__metadata__" entry of strings.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/resnetgen/resnetgen/resnet"
)

// MaxHeader bounds the JSON header (100 MB, the limit of the reference
// implementation).
const MaxHeader = 100 << 20

type entry struct {
	DType   string  `json:"dtype"`
	Shape   []int   `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

var sizes = map[string]int{"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}

// Load reads the file at path.
func Load(path string) (*resnet.Weights, error) { return resnet.ReadFile(path, Read) }

// Read decodes size bytes. Floating tensors (F32, F16, BF16, F64) become
// float32; integer tensors named *num_batches_tracked are skipped; any other
// integer tensor is an error naming it.
func Read(r io.ReaderAt, size int64) (*resnet.Weights, error) {
	x, err := Index(r, size)
	if err != nil {
		return nil, err
	}
	return x.Read(r)
}

// Index reads the header of size bytes of safetensors in r: the tensors
// Read would return, with their shapes, each read from r when asked.
func Index(r io.ReaderAt, size int64) (*resnet.Index, error) {
	header, err := readHeader(r, size)
	if err != nil {
		return nil, err
	}
	n := len(header)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, fmt.Errorf("safetensors header is not a JSON object: %v", err)
	}
	dataStart := 8 + int64(n)
	dataLen := size - dataStart
	names := make([]string, 0, len(raw))
	for name := range raw {
		if name != "__metadata__" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	x := resnet.NewIndex()
	for _, name := range names {
		var e entry
		if err := json.Unmarshal(raw[name], &e); err != nil {
			return nil, fmt.Errorf("tensor %s: bad header entry: %v", name, err)
		}
		es, ok := sizes[e.DType]
		if !ok {
			return nil, fmt.Errorf("tensor %s: unknown dtype %q", name, e.DType)
		}
		numel := 1
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && numel > math.MaxInt32/d) {
				return nil, fmt.Errorf("tensor %s: shape %v", name, e.Shape)
			}
			numel *= d
		}
		if len(e.Offsets) != 2 || e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] || e.Offsets[1] > dataLen {
			return nil, fmt.Errorf("tensor %s: data_offsets %v outside the %d data bytes (truncated file?)", name, e.Offsets, dataLen)
		}
		if e.Offsets[1]-e.Offsets[0] != int64(numel*es) {
			return nil, fmt.Errorf("tensor %s: %d data bytes for shape %v of %s (want %d)", name, e.Offsets[1]-e.Offsets[0], e.Shape, e.DType, numel*es)
		}
		if strings.HasSuffix(name, "num_batches_tracked") {
			continue
		}
		if !strings.HasPrefix(e.DType, "F") && e.DType != "BF16" {
			return nil, fmt.Errorf("tensor %s: dtype %s, want a floating type", name, e.DType)
		}
		off, dtype := dataStart+e.Offsets[0], e.DType
		x.Add(name, e.Shape, func(r io.ReaderAt, dst []float32) error {
			if dtype == "F32" {
				return resnet.ReadFloat32s(r, off, dst)
			}
			return resnet.ReadConverted(r, off, sizes[dtype], dst, func(b []byte, dst []float32) { toFloat32(dtype, b, dst) })
		})
	}
	if len(x.Tensors) == 0 {
		return nil, errors.New("safetensors file holds no floating-point tensors")
	}
	return x, nil
}

// Write encodes w as safetensors with F32 tensors in name order (what a
// converted checkpoint or a test fixture needs).
func Write(out io.Writer, w *resnet.Weights) error { return WriteMetadata(out, w, nil) }

// WriteMetadata is Write with a "__metadata__" entry of strings (none if
// meta is empty). The output is deterministic: the header's keys are sorted.
func WriteMetadata(out io.Writer, w *resnet.Weights, meta map[string]string) error {
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	var offset int64
	names := w.Names()
	for _, name := range names {
		t := w.Tensors[name]
		header[name] = entry{DType: "F32", Shape: t.Shape, Offsets: []int64{offset, offset + 4*int64(len(t.Data))}}
		offset += 4 * int64(len(t.Data))
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	buf := make([]byte, 8, 8+len(h))
	binary.LittleEndian.PutUint64(buf, uint64(len(h)))
	if _, err := out.Write(append(buf, h...)); err != nil {
		return err
	}
	return WriteData(out, w)
}

// WriteData writes the tensor data of Write alone (F32, in name order): a
// checksum over it can go into the header's metadata.
func WriteData(out io.Writer, w *resnet.Weights) error {
	for _, name := range w.Names() {
		data := w.Tensors[name].Data
		b := make([]byte, 4*len(data))
		for i, v := range data {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		if _, err := out.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// Metadata reads the "__metadata__" strings of a safetensors file of size
// bytes (nil if it has none) and the offset at which the tensor data starts.
func Metadata(r io.ReaderAt, size int64) (meta map[string]string, dataStart int64, err error) {
	header, err := readHeader(r, size)
	if err != nil {
		return nil, 0, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, 0, fmt.Errorf("safetensors header is not a JSON object: %v", err)
	}
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, 0, fmt.Errorf("safetensors __metadata__ is not an object of strings: %v", err)
		}
	}
	return meta, 8 + int64(len(header)), nil
}

// readHeader returns the JSON header of a file of size bytes.
func readHeader(r io.ReaderAt, size int64) ([]byte, error) {
	var pre [8]byte
	if size < 8 {
		return nil, fmt.Errorf("not a safetensors file: %d bytes, shorter than its 8-byte header length", size)
	}
	if _, err := r.ReadAt(pre[:], 0); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint64(pre[:])
	if n > MaxHeader || int64(n) > size-8 {
		return nil, fmt.Errorf("not a safetensors file (or truncated): header length %d, file has %d bytes after it", n, size-8)
	}
	header := make([]byte, n)
	if _, err := r.ReadAt(header, 8); err != nil {
		return nil, err
	}
	return header, nil
}

// toFloat32 converts little-endian values of a floating dtype other than
// F32 into dst, one loop per dtype rather than a dtype switch per value.
func toFloat32(dtype string, b []byte, data []float32) {
	switch dtype {
	case "F64":
		for i := range data {
			data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case "BF16":
		for i := range data {
			data[i] = resnet.BFloat16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case "F16":
		for i := range data {
			data[i] = resnet.HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}
}
