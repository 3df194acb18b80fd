package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"unsafe"
)

// Shared lets Models of one network share their packed weights: several
// replicas of a server, for instance, which would otherwise each hold a
// copy (ResNet-50: ~100 MB apiece). Kernels only read packed weights, so
// Models running at once may share them. Sharing is by content: a Model
// whose folded weights differ (other weights, other classes) packs its own
// and shares them with the Models that have the same. Pass one Shared to
// every New with WithShared; it is safe for concurrent use.
type Shared struct {
	mu     sync.Mutex
	packed map[string][][]float32 // digest of the folded weights, layer, kernel → packed slices
}

// NewShared returns an empty Shared.
func NewShared() *Shared { return &Shared{packed: map[string][][]float32{}} }

// WithShared makes New take packed weights from s, and leave there the
// ones it packs.
func WithShared(s *Shared) Option { return func(c *Config) { c.Shared = s } }

// Len is the number of packed tensors s holds.
func (s *Shared) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.packed)
}

// get returns the packed slices under key, packing them with pack the
// first time.
func (s *Shared) get(key string, pack func() ([][]float32, error)) ([][]float32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.packed[key]; ok {
		return p, nil
	}
	p, err := pack()
	if err != nil {
		return nil, err
	}
	s.packed[key] = p
	return p, nil
}

// digest identifies folded weights by content: SHA-256 over every tensor's
// name, shape and bits, in name order.
func (f *Folded) digest() string {
	if f.sha != "" {
		return f.sha // int8 weights: the digest of the float32 ones they came from
	}
	h := sha256.New()
	var b [8]byte
	for _, n := range f.names() {
		t := f.tensor(n)
		h.Write([]byte(n))
		for _, d := range t.Shape {
			binary.LittleEndian.PutUint64(b[:], uint64(d))
			h.Write(b[:])
		}
		if len(t.Data) > 0 {
			h.Write(unsafe.Slice((*byte)(unsafe.Pointer(&t.Data[0])), 4*len(t.Data)))
		}
	}
	return string(h.Sum(nil))
}
