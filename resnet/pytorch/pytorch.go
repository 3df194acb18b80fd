// Package pytorch reads PyTorch checkpoints (torch.save of a state_dict) into
// resnet.Weights: the zip format of torch ≥ 1.6, which torchvision ships, and
// the legacy format of older releases.
//
// The pickle virtual machine is github.com/nlpodyssey/gopickle's; the
// container formats are read here rather than with gopickle's pytorch
// package because that one takes only a file name (nothing to fuzz from
// memory), panics on some inputs (tar archives, storage views), and allocates
// storages from sizes in the file before checking that the file holds them.
// Here every length is checked against the bytes present first, and any
// panic from the unpickler is returned as an error.
package pytorch

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"

	"github.com/resnetgen/resnetgen/resnet"
)

// MaxFileSize bounds what Read accepts (16 GiB), far above ResNet-152's 240 MB.
const MaxFileSize = 16 << 30

// Load reads the checkpoint file at path.
func Load(path string) (*resnet.Weights, error) { return resnet.ReadFile(path, Read) }

// Read reads a checkpoint of size bytes. The checkpoint may be a bare
// state_dict or a dict wrapping one under "state_dict" (as the CIFAR
// checkpoints do) or "model". A "module." prefix (nn.DataParallel) is
// removed and "num_batches_tracked" counters are skipped. Tensors of any
// floating dtype are converted to float32.
func Read(r io.ReaderAt, size int64) (*resnet.Weights, error) {
	x, err := Index(r, size)
	if err != nil {
		return nil, err
	}
	return x.Read(r)
}

// Index reads what a checkpoint of size bytes in r holds without the
// tensors' values: the tensors Read would return, with their shapes, each
// read from r, straight into its float32 array, when asked. Only the
// pickle is read whole.
func Index(r io.ReaderAt, size int64) (*resnet.Index, error) {
	obj, err := readObject(r, size)
	if err != nil {
		return nil, err
	}
	return stateDict(obj)
}

// readObject returns the unpickled object of a checkpoint, its tensors'
// storages filled in.
func readObject(r io.ReaderAt, size int64) (obj any, err error) {
	if size < 0 || size > MaxFileSize {
		return nil, fmt.Errorf("checkpoint of %d bytes: size outside [0, %d]", size, int64(MaxFileSize))
	}
	defer func() {
		if p := recover(); p != nil {
			obj, err = nil, fmt.Errorf("corrupt checkpoint: %v", p)
		}
	}()
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil {
		return nil, fmt.Errorf("not a PyTorch checkpoint: %d bytes, too short", size)
	}
	if string(magic[:]) == "PK\x03\x04" {
		return readZip(r, size)
	}
	return readLegacy(r, size)
}

// dtype is a storage element type and its conversion to float32.
type dtype struct {
	name    string
	size    int
	convert func(b []byte, out []float32)
}

var dtypes = map[string]dtype{
	"FloatStorage": {"float32", 4, func(b []byte, out []float32) {
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	}},
	"DoubleStorage": {"float64", 8, func(b []byte, out []float32) {
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	}},
	"HalfStorage": {"float16", 2, func(b []byte, out []float32) {
		for i := range out {
			out[i] = resnet.HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}},
	"BFloat16Storage": {"bfloat16", 2, func(b []byte, out []float32) {
		for i := range out {
			out[i] = resnet.BFloat16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}},
	// Integer storages appear for num_batches_tracked; they are read (to
	// keep the legacy stream in step) but never converted.
	"LongStorage":  {"int64", 8, nil},
	"IntStorage":   {"int32", 4, nil},
	"ShortStorage": {"int16", 2, nil},
	"CharStorage":  {"int8", 1, nil},
	"ByteStorage":  {"uint8", 1, nil},
	"BoolStorage":  {"bool", 1, nil},
}

// storageClass is what the unpickler returns for torch.FloatStorage & co.
type storageClass struct{ dt dtype }

// storage is one persistent storage; where its bytes are is filled in
// after unpickling.
type storage struct {
	dt    dtype
	key   string
	numel int
	at    int64  // where its bytes start in the file, or -1
	raw   []byte // its bytes, when the file holds them compressed
}

// tensorRef is a tensor as the pickle describes it: a strided view of a storage.
type tensorRef struct {
	st           *storage
	offset       int
	size, stride []int
}

type callable func(args ...any) (any, error)

func (c callable) Call(args ...any) (any, error) { return c(args...) }

func ints(v any, what string) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("tensor %s: want a tuple, got %T", what, v)
	}
	out := make([]int, t.Len())
	for i := range out {
		n, ok := t.Get(i).(int)
		if !ok {
			return nil, fmt.Errorf("tensor %s: element %d is %T, not int", what, i, t.Get(i))
		}
		out[i] = n
	}
	return out, nil
}

// rebuildTensor implements torch._utils._rebuild_tensor(_v2):
// (storage, storage_offset, size, stride, …).
func rebuildTensor(args ...any) (any, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("_rebuild_tensor: %d arguments, want at least 4", len(args))
	}
	st, ok := args[0].(*storage)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor: storage is %T", args[0])
	}
	off, ok := args[1].(int)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor: offset is %T", args[1])
	}
	size, err := ints(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := ints(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(size) != len(stride) {
		return nil, fmt.Errorf("_rebuild_tensor: size %v and stride %v differ in rank", size, stride)
	}
	return &tensorRef{st, off, size, stride}, nil
}

func newUnpickler(data []byte, storages map[string]*storage) pickle.Unpickler {
	u := pickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = func(module, name string) (any, error) {
		switch module + "." + name {
		case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
			return callable(rebuildTensor), nil
		case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
			return callable(func(args ...any) (any, error) {
				if len(args) == 0 {
					return nil, fmt.Errorf("_rebuild_parameter: no arguments")
				}
				return args[0], nil
			}), nil
		}
		if module == "torch" {
			if dt, ok := dtypes[name]; ok {
				return &storageClass{dt}, nil
			}
		}
		// Anything else (argparse.Namespace, optimizer state, …) becomes an
		// opaque object; it is an error only if it sits where a tensor should.
		return types.NewGenericClass(module, name), nil
	}
	u.PersistentLoad = func(id any) (any, error) {
		t, ok := id.(*types.Tuple)
		if !ok || t.Len() < 5 {
			return nil, fmt.Errorf("persistent id %v: want ('storage', type, key, location, numel)", id)
		}
		kind, _ := t.Get(0).(string)
		cls, okc := t.Get(1).(*storageClass)
		key, okk := t.Get(2).(string)
		numel, okn := t.Get(4).(int)
		if kind != "storage" || !okc || !okk || !okn || numel < 0 {
			return nil, fmt.Errorf("persistent id %v: want ('storage', torch.<Type>Storage, key, location, numel ≥ 0)", id)
		}
		if numel > MaxFileSize/cls.dt.size {
			return nil, fmt.Errorf("storage %s: %d elements of %s exceed the %d-byte file limit", key, numel, cls.dt.name, int64(MaxFileSize))
		}
		if t.Len() > 5 && t.Get(5) != nil {
			return nil, fmt.Errorf("storage %s: storage views are not supported", key)
		}
		if st, ok := storages[key]; ok {
			if st.dt.name != cls.dt.name || st.numel != numel {
				return nil, fmt.Errorf("storage %s: referenced as %d×%s and %d×%s", key, st.numel, st.dt.name, numel, cls.dt.name)
			}
			return st, nil
		}
		st := &storage{dt: cls.dt, key: key, numel: numel, at: -1}
		storages[key] = st
		return st, nil
	}
	return u
}

// unpickle runs one pickle stream at the start of data and returns the
// object and the stream's length.
func unpickle(data []byte, storages map[string]*storage) (any, int, error) {
	n, err := scanPickle(data)
	if err != nil {
		return nil, 0, err
	}
	u := newUnpickler(data[:n], storages)
	obj, err := u.Load()
	return obj, n, err
}

func readZip(r io.ReaderAt, size int64) (any, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("zip checkpoint: %w", err)
	}
	files := map[string]*zip.File{}
	var pkl string
	for _, f := range zr.File {
		files[f.Name] = f
		switch {
		case strings.HasSuffix(f.Name, "/constants.pkl"):
			return nil, errors.New("zip checkpoint is a TorchScript archive (torch.jit.save); save the model's state_dict with torch.save instead")
		case strings.HasSuffix(f.Name, "/data.pkl") && strings.Count(f.Name, "/") == 1:
			pkl = f.Name
		}
	}
	if pkl == "" {
		return nil, errors.New("zip checkpoint: no <archive>/data.pkl record")
	}
	prefix := strings.TrimSuffix(pkl, "data.pkl")
	if f, ok := files[prefix+"byteorder"]; ok {
		b, err := readEntry(f, 16)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(b)); s != "little" {
			return nil, fmt.Errorf("zip checkpoint: byte order %q, only little-endian is supported", s)
		}
	}
	data, err := readEntry(files[pkl], size)
	if err != nil {
		return nil, err
	}
	storages := map[string]*storage{}
	obj, _, err := unpickle(data, storages)
	if err != nil {
		return nil, fmt.Errorf("zip checkpoint %s: %w", pkl, err)
	}
	for _, key := range slices.Sorted(maps.Keys(storages)) {
		st := storages[key]
		f, ok := files[prefix+"data/"+key]
		if !ok {
			return nil, fmt.Errorf("zip checkpoint: storage %s has no record %sdata/%s", key, prefix, key)
		}
		want := int64(st.numel) * int64(st.dt.size)
		held := int64(0)
		if f.Method == zip.Store {
			// Stored as they are (torch.save does): read in place when needed.
			at, err := f.DataOffset()
			if err != nil {
				return nil, fmt.Errorf("zip record %s: %w", f.Name, err)
			}
			st.at, held = at, min(int64(f.CompressedSize64), max(size-at, 0))
		} else {
			if st.raw, err = readEntry(f, want); err != nil {
				return nil, err
			}
			held = int64(len(st.raw))
		}
		if held < want {
			return nil, fmt.Errorf("zip checkpoint: storage %s holds %d bytes, want %d (%d×%s)", key, held, want, st.numel, st.dt.name)
		}
	}
	return obj, nil
}

// readEntry reads at most limit bytes of a zip record. The buffer grows with
// what is actually read, not with the size the header claims.
func readEntry(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("zip record %s: %w", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit))
	if err != nil {
		return nil, fmt.Errorf("zip record %s: %w", f.Name, err)
	}
	return b, nil
}

// readLegacy reads the pre-1.6 format: pickles of the magic number, the
// protocol version, sys_info, the object and the storage keys, followed by
// each storage as an int64 element count and its raw elements. The pickles
// are read from a prefix of the file that doubles until they fit in it;
// the storages are only located.
func readLegacy(r io.ReaderAt, size int64) (any, error) {
	for n := min(size, 1<<16); ; n = min(2*n, size) {
		obj, err := readLegacyPrefix(r, size, n)
		if err == nil || n == size {
			return obj, err
		}
	}
}

// readLegacyPrefix is readLegacy reading the pickles from the first n bytes.
func readLegacyPrefix(r io.ReaderAt, size, n int64) (any, error) {
	data := make([]byte, n)
	if _, err := r.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	storages := map[string]*storage{}
	p := 0
	next := func(what string) (any, error) {
		obj, n, err := unpickle(data[p:], storages)
		if err != nil {
			return nil, fmt.Errorf("legacy checkpoint: %s at byte %d: %w", what, p, err)
		}
		p += n
		return obj, nil
	}
	magic, err := next("magic number")
	if err != nil {
		return nil, fmt.Errorf("not a PyTorch checkpoint (neither a zip archive nor the legacy format): %w", err)
	}
	if m, ok := magic.(interface{ Text(int) string }); !ok || m.Text(16) != "1950a86a20f9469cfc6c" {
		return nil, fmt.Errorf("not a PyTorch checkpoint: magic number %v", magic)
	}
	if v, err := next("protocol version"); err != nil {
		return nil, err
	} else if v != 1001 {
		return nil, fmt.Errorf("legacy checkpoint: protocol version %v, want 1001", v)
	}
	if _, err := next("sys_info"); err != nil {
		return nil, err
	}
	obj, err := next("object")
	if err != nil {
		return nil, err
	}
	rawKeys, err := next("storage keys")
	if err != nil {
		return nil, err
	}
	list, ok := rawKeys.(*types.List)
	if !ok {
		return nil, fmt.Errorf("legacy checkpoint: storage keys are %T, want a list", rawKeys)
	}
	at := int64(p)
	for i, k := range *list {
		key, ok := k.(string)
		st := storages[key]
		if !ok || st == nil {
			return nil, fmt.Errorf("legacy checkpoint: storage key %d (%v) names no storage", i, k)
		}
		var count [8]byte
		if size-at < 8 {
			return nil, fmt.Errorf("legacy checkpoint truncated: storage %s starts at byte %d of %d", key, at, size)
		}
		if _, err := r.ReadAt(count[:], at); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		n := binary.LittleEndian.Uint64(count[:])
		at += 8
		if n != uint64(st.numel) {
			return nil, fmt.Errorf("legacy checkpoint: storage %s has %d elements, the pickle says %d", key, n, st.numel)
		}
		want := uint64(st.numel) * uint64(st.dt.size)
		if want > uint64(size-at) {
			return nil, fmt.Errorf("legacy checkpoint truncated: storage %s needs %d bytes at byte %d, %d remain", key, want, at, size-at)
		}
		st.at = at
		at += int64(want)
	}
	return obj, nil
}

// stateDict unwraps the checkpoint object and lists its tensors.
func stateDict(obj any) (*resnet.Index, error) {
	entries, err := dictEntries(obj)
	if err != nil {
		return nil, err
	}
	for _, wrapper := range []string{"state_dict", "model"} {
		for _, e := range entries {
			if e.key == wrapper {
				if inner, err := dictEntries(e.value); err == nil {
					entries = inner
				}
			}
		}
	}
	x := resnet.NewIndex()
	for _, e := range entries {
		name := strings.TrimPrefix(e.key, "module.")
		if strings.HasSuffix(name, "num_batches_tracked") {
			continue
		}
		t, ok := e.value.(*tensorRef)
		if !ok {
			return nil, fmt.Errorf("checkpoint entry %q is %T, not a tensor", e.key, e.value)
		}
		if err := t.check(); err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		if _, dup := x.Tensors[name]; dup {
			return nil, fmt.Errorf("tensor %s appears twice (with and without a module. prefix)", name)
		}
		x.Add(name, t.size, t.read)
	}
	if len(x.Tensors) == 0 {
		return nil, errors.New("checkpoint holds no tensors")
	}
	return x, nil
}

type entry struct {
	key   string
	value any
}

func dictEntries(obj any) ([]entry, error) {
	var out []entry
	add := func(k, v any) error {
		s, ok := k.(string)
		if !ok {
			return fmt.Errorf("checkpoint dict has a %T key, want string", k)
		}
		out = append(out, entry{s, v})
		return nil
	}
	switch d := obj.(type) {
	case *types.OrderedDict:
		for el := d.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*types.OrderedDictEntry)
			if err := add(e.Key, e.Value); err != nil {
				return nil, err
			}
		}
	case *types.Dict:
		for _, e := range *d {
			if err := add(e.Key, e.Value); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("checkpoint holds a %T, want a dict of tensors (a state_dict)", obj)
	}
	return out, nil
}

// check checks the strided view against its storage (every index in
// it), and that it is of a floating dtype, before anything is read.
func (t *tensorRef) check() error {
	st := t.st
	if st.dt.convert == nil {
		return fmt.Errorf("dtype %s: only floating-point tensors are supported", st.dt.name)
	}
	if st.at < 0 && st.raw == nil && st.numel > 0 {
		return fmt.Errorf("storage %s was never read", st.key)
	}
	n, last := 1, t.offset
	for i, d := range t.size {
		if d < 0 || t.stride[i] < 0 {
			return fmt.Errorf("size %v stride %v: negative", t.size, t.stride)
		}
		if d > 0 && n > math.MaxInt32/d {
			return fmt.Errorf("size %v: too many elements", t.size)
		}
		n *= d
		if d > 0 {
			last += (d - 1) * t.stride[i]
		}
	}
	if t.offset < 0 || (n > 0 && last >= st.numel) {
		return fmt.Errorf("view offset %d size %v stride %v reaches element %d of a %d-element storage", t.offset, t.size, t.stride, last, st.numel)
	}
	if n > st.numel {
		// Only a view that overlaps itself (stride 0, as expand() makes)
		// has more elements than its storage; no state_dict holds one, and
		// a corrupt size could otherwise ask for gigabytes.
		return fmt.Errorf("view size %v stride %v: %d elements from a %d-element storage", t.size, t.stride, n, st.numel)
	}
	return nil
}

// contiguous reports whether the view is a row-major run of its storage.
func (t *tensorRef) contiguous() bool {
	want := 1
	for i := len(t.size) - 1; i >= 0; i-- {
		if t.size[i] != 1 && t.stride[i] != want {
			return false
		}
		want *= t.size[i]
	}
	return true
}

// read puts the view's values (checked) into dst: read in place from r
// when the view is a run of its storage, else gathered from the whole
// storage.
func (t *tensorRef) read(r io.ReaderAt, dst []float32) error {
	st := t.st
	at := st.at
	if st.raw != nil {
		r, at = bytes.NewReader(st.raw), 0
	}
	size := st.dt.size
	get := func(offset int, dst []float32) error {
		if len(dst) == 0 {
			return nil
		}
		if st.dt.name == "float32" {
			return resnet.ReadFloat32s(r, at+int64(offset*size), dst)
		}
		return resnet.ReadConverted(r, at+int64(offset*size), size, dst, st.dt.convert)
	}
	if t.contiguous() {
		return get(t.offset, dst)
	}
	all := make([]float32, st.numel)
	if err := get(0, all); err != nil {
		return err
	}
	idx := make([]int, len(t.size))
	for i := range dst {
		src := t.offset
		for d := range idx {
			src += idx[d] * t.stride[d]
		}
		dst[i] = all[src]
		for d := len(idx) - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < t.size[d] {
				break
			}
			idx[d] = 0
		}
	}
	return nil
}
