package pytorch

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// This file writes checkpoints the way torch.save does, for tests that need
// a state_dict in a given shape (shared storages, strided views, integer
// buffers, corruptions). Reading bytes that torch itself wrote is covered by
// testdata/torch and the CIFAR checkpoints in ../shared/data.

// pickler emits protocol-2 pickle opcodes.
type pickler struct{ bytes.Buffer }

func (p *pickler) str(s string) {
	p.WriteByte('X')
	binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
}
func (p *pickler) int(n int) {
	p.WriteByte('J')
	binary.Write(p, binary.LittleEndian, int32(n))
}
func (p *pickler) global(module, name string) { p.WriteString("c" + module + "\n" + name + "\n") }
func (p *pickler) ints(xs []int) {
	p.WriteByte('(')
	for _, x := range xs {
		p.int(x)
	}
	p.WriteByte('t')
}

// stor is a storage to write: its key, torch type name and raw bytes.
type stor struct {
	key, class string
	numel      int
	raw        []byte
}

// view is a state_dict entry: a strided view of a storage.
type view struct {
	name          string
	st            *stor
	offset        int
	size, stride  []int
	asParameter   bool
	notATensorInt bool // write a plain int instead of a tensor
}

func floatStorage(key string, xs ...float32) *stor {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return &stor{key, "FloatStorage", len(xs), b}
}

func longStorage(key string, xs ...int64) *stor {
	b := make([]byte, 8*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return &stor{key, "LongStorage", len(xs), b}
}

// statePickle writes an OrderedDict of tensors, optionally wrapped as
// {"state_dict": …, "best_prec1": 91.0}. legacy selects the 6-tuple
// persistent id of the pre-zip format.
func statePickle(views []view, wrap, legacy bool) []byte {
	p := &pickler{}
	p.Write([]byte{0x80, 2})
	if wrap {
		p.WriteString("}(")
		p.str("state_dict")
	}
	p.global("collections", "OrderedDict")
	p.WriteString(")R(")
	for _, v := range views {
		p.str(v.name)
		if v.notATensorInt {
			p.int(7)
			continue
		}
		if v.asParameter {
			p.global("torch._utils", "_rebuild_parameter")
			p.WriteByte('(')
		}
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.WriteString("((")
		p.str("storage")
		p.global("torch", v.st.class)
		p.str(v.st.key)
		p.str("cpu")
		p.int(v.st.numel)
		if legacy {
			p.WriteByte('N')
		}
		p.WriteString("tQ")
		p.int(v.offset)
		p.ints(v.size)
		p.ints(v.stride)
		p.WriteByte(0x89) // False
		p.global("collections", "OrderedDict")
		p.WriteString(")RtR")
		if v.asParameter {
			p.WriteByte(0x88) // True
			p.global("collections", "OrderedDict")
			p.WriteString(")RtR")
		}
	}
	p.WriteByte('u')
	if wrap {
		p.str("best_prec1")
		p.WriteByte('G')
		binary.Write(p, binary.BigEndian, 91.0)
		p.WriteByte('u')
	}
	p.WriteByte('.')
	return p.Bytes()
}

func storagesOf(views []view) []*stor {
	var out []*stor
	seen := map[string]bool{}
	for _, v := range views {
		if v.st != nil && !seen[v.st.key] {
			seen[v.st.key] = true
			out = append(out, v.st)
		}
	}
	return out
}

// zipCheckpoint writes torch ≥ 1.6's format: archive/data.pkl, one
// archive/data/<key> record per storage, archive/version, archive/byteorder.
func zipCheckpoint(t testing.TB, views []view, wrap bool) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	add := func(name string, data []byte) {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/" + name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		f.Write(data)
	}
	add("data.pkl", statePickle(views, wrap, false))
	add("byteorder", []byte("little"))
	for _, s := range storagesOf(views) {
		add("data/"+s.key, s.raw)
	}
	add("version", []byte("3\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// legacyCheckpoint writes the pre-1.6 format: magic, protocol, sys_info,
// object and storage-key pickles, then each storage as count + elements.
func legacyCheckpoint(views []view, wrap bool) []byte {
	var b bytes.Buffer
	magic := []byte{0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}
	b.Write([]byte{0x80, 2, 0x8a, byte(len(magic))})
	b.Write(magic)
	b.WriteByte('.')
	p := &pickler{}
	p.Write([]byte{0x80, 2})
	p.int(1001)
	p.WriteByte('.')
	b.Write(p.Bytes())
	p.Reset()
	p.Write([]byte{0x80, 2, '}', '('})
	p.str("protocol_version")
	p.int(1001)
	p.str("little_endian")
	p.WriteString("\x88u.")
	b.Write(p.Bytes())
	b.Write(statePickle(views, wrap, true))
	p.Reset()
	p.Write([]byte{0x80, 2, ']', '('})
	sts := storagesOf(views)
	for _, s := range sts {
		p.str(s.key)
	}
	p.WriteString("e.")
	b.Write(p.Bytes())
	for _, s := range sts {
		binary.Write(&b, binary.LittleEndian, int64(s.numel))
		b.Write(s.raw)
	}
	return b.Bytes()
}
