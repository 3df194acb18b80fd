// Package npy reads and writes float32 arrays in NumPy's .npy format
// (versions 1.0–3.0, little-endian '<f4', C order), so Python pipelines can
// hand tensors to resnetgen and compare its outputs.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

var magic = []byte("\x93NUMPY")

// MaxElements bounds what Read accepts (1 << 31 floats, 8 GiB), so a
// corrupt shape cannot ask for more memory than any input could hold.
const MaxElements = 1 << 31

// Array is a dense float32 array in C (row-major) order.
type Array struct {
	Shape []int
	Data  []float32
}

// ReadFile reads the .npy file at path.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := Read(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

var (
	descrRE   = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	fortranRE = regexp.MustCompile(`'fortran_order'\s*:\s*(True|False)`)
	shapeRE   = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

// Read decodes one array. Only float32 ('<f4', or '|f4'/'=f4' read as
// little-endian) in C order is accepted; anything else is an error that
// says what the file holds.
func Read(r io.Reader) (*Array, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, errors.New("not a .npy file: shorter than its 8-byte preamble")
	}
	if !bytes.Equal(pre[:6], magic) {
		return nil, errors.New("not a .npy file: no \\x93NUMPY magic")
	}
	var hlen int
	switch pre[6] {
	case 1:
		var n uint16
		if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
			return nil, errors.New(".npy header length truncated")
		}
		hlen = int(n)
	case 2, 3:
		var n uint32
		if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
			return nil, errors.New(".npy header length truncated")
		}
		if n > 1<<20 {
			return nil, fmt.Errorf(".npy header of %d bytes: too long", n)
		}
		hlen = int(n)
	default:
		return nil, fmt.Errorf(".npy format version %d.%d is not supported (1.0–3.0 are)", pre[6], pre[7])
	}
	header := make([]byte, hlen)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, fmt.Errorf(".npy header truncated: want %d bytes", hlen)
	}
	h := string(header)
	d := descrRE.FindStringSubmatch(h)
	f := fortranRE.FindStringSubmatch(h)
	s := shapeRE.FindStringSubmatch(h)
	if d == nil || f == nil || s == nil {
		return nil, fmt.Errorf(".npy header %q lacks descr, fortran_order or shape", strings.TrimSpace(h))
	}
	switch d[1] {
	case "<f4", "|f4", "=f4":
	default:
		return nil, fmt.Errorf(".npy dtype %q: only float32 ('<f4') is supported; convert with x.astype(np.float32)", d[1])
	}
	if f[1] == "True" {
		return nil, errors.New(".npy array is in Fortran order; save a C-ordered array (np.ascontiguousarray)")
	}
	a := &Array{Shape: []int{}}
	n := 1
	for _, part := range strings.Split(s[1], ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		dim, err := strconv.Atoi(part)
		if err != nil || dim < 0 {
			return nil, fmt.Errorf(".npy shape (%s): %q is not a dimension", s[1], part)
		}
		if dim > 0 && n > MaxElements/dim {
			return nil, fmt.Errorf(".npy shape (%s): more than %d elements", s[1], MaxElements)
		}
		n *= dim
		a.Shape = append(a.Shape, dim)
	}
	// Read in chunks so a shape larger than the file fails without first
	// allocating all of it.
	raw := make([]byte, 0, min(4*n, 1<<20))
	buf := make([]byte, 1<<16)
	for len(raw) < 4*n {
		k, err := r.Read(buf[:min(len(buf), 4*n-len(raw))])
		raw = append(raw, buf[:k]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(raw) < 4*n {
		return nil, fmt.Errorf(".npy data truncated: shape %v needs %d bytes, file has %d", a.Shape, 4*n, len(raw))
	}
	a.Data = make([]float32, n)
	for i := range a.Data {
		a.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return a, nil
}

// Write encodes a as a version 1.0 .npy ('<f4', C order).
func Write(w io.Writer, a *Array) error {
	n := 1
	dims := make([]string, len(a.Shape))
	for i, d := range a.Shape {
		n *= d
		dims[i] = strconv.Itoa(d)
	}
	if n != len(a.Data) {
		return fmt.Errorf("npy: shape %v holds %d values, got %d", a.Shape, n, len(a.Data))
	}
	shape := strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	h := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shape)
	// Pad with spaces so magic + version + length + header + '\n' is a multiple of 64.
	total := len(magic) + 2 + 2 + len(h) + 1
	h += strings.Repeat(" ", (64-total%64)%64) + "\n"
	if len(h) > math.MaxUint16 {
		return fmt.Errorf("npy: shape %v: header too long", a.Shape)
	}
	var b bytes.Buffer
	b.Write(magic)
	b.Write([]byte{1, 0})
	binary.Write(&b, binary.LittleEndian, uint16(len(h)))
	b.WriteString(h)
	raw := make([]byte, 4*n)
	for i, v := range a.Data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	b.Write(raw)
	_, err := w.Write(b.Bytes())
	return err
}

// WriteFile writes a to path.
func WriteFile(path string, a *Array) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, a); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
