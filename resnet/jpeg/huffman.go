package jpeg

// Huffman decoding and the entropy-coded bit stream.

const lookBits = 9 // codes up to this long are decoded by one table lookup

// huffTable is a decoding table built from a DHT segment the way libjpeg's
// jpeg_make_d_derived_tbl builds it.
type huffTable struct {
	lookup    [1 << lookBits]uint16 // code length<<8 | symbol; 0: longer than lookBits
	maxCode   [18]int32             // largest code of each length, -1 if none; [17] a sentinel
	valOffset [17]int32             // index into vals of length l's first code, minus that code
	vals      []byte
}

// newHuffTable builds a table from the 16 code counts and the symbols.
func newHuffTable(counts [16]int, vals []byte) (*huffTable, error) {
	t := &huffTable{vals: vals}
	code, k := int32(0), 0
	for l := 1; l <= 16; l++ {
		n := counts[l-1]
		t.valOffset[l] = int32(k) - code
		if n == 0 {
			t.maxCode[l] = -1
		} else {
			for range n {
				if code >= 1<<l {
					return nil, FormatError("bad Huffman table: more codes than the code space holds")
				}
				if l <= lookBits {
					// Every lookBits-bit string that starts with this code.
					first := code << (lookBits - l)
					for j := range int32(1) << (lookBits - l) {
						t.lookup[first+j] = uint16(l)<<8 | uint16(vals[k])
					}
				}
				code++
				k++
			}
			t.maxCode[l] = code - 1
		}
		// libjpeg's check: the codes of each length fit in it, and none is
		// all ones.
		if n > 0 && code >= 1<<l {
			return nil, FormatError("bad Huffman table: more codes than the code space holds")
		}
		code <<= 1
	}
	t.maxCode[17] = 1 << 30
	return t, nil
}

// bitReader reads the entropy-coded data of a scan MSB first, removing the
// zero byte stuffed after each 0xFF. At a marker (or the end of the data)
// it supplies zero bits, as libjpeg does, and counts them: using one of
// them means the scan's data ran out — libjpeg warns "premature end of
// data segment" and decodes zeros; we refuse the file.
type bitReader struct {
	data   []byte
	pos    int
	acc    uint64 // the low n bits are unread, most significant first
	n      int
	fake   int // how many of the low bits of acc are padding past a marker
	marker bool
}

func (r *bitReader) fill() {
	for r.n <= 56 {
		if !r.marker && r.pos < len(r.data) {
			b := r.data[r.pos]
			if b != 0xFF {
				r.pos++
				r.acc = r.acc<<8 | uint64(b)
				r.n += 8
				continue
			}
			if r.pos+1 < len(r.data) && r.data[r.pos+1] == 0 {
				r.pos += 2
				r.acc = r.acc<<8 | 0xFF
				r.n += 8
				continue
			}
		}
		r.marker = true // pos stays at the marker's 0xFF (or the end)
		r.acc <<= 8
		r.n += 8
		r.fake += 8
	}
}

// consume drops k bits, failing if any of them was padding.
func (r *bitReader) consume(k int) error {
	r.n -= k
	if r.n < r.fake {
		return FormatError("entropy-coded data ends before the scan does (truncated or corrupt)")
	}
	return nil
}

// bits reads k ≤ 16 bits as an unsigned number.
func (r *bitReader) bits(k int) (int32, error) {
	if k == 0 {
		return 0, nil
	}
	if r.n < k {
		r.fill()
	}
	v := int32(r.acc>>(r.n-k)) & (1<<k - 1)
	return v, r.consume(k)
}

// receiveExtend reads s bits and sign-extends them (JPEG's EXTEND: a
// leading 0 bit means negative).
func (r *bitReader) receiveExtend(s int) (int32, error) {
	v, err := r.bits(s)
	if s > 0 && v < 1<<(s-1) {
		v += -1<<s + 1
	}
	return v, err
}

// decode reads one Huffman-coded symbol.
func (r *bitReader) decode(t *huffTable) (byte, error) {
	if r.n < 16 {
		r.fill()
	}
	if e := t.lookup[(r.acc>>(r.n-lookBits))&(1<<lookBits-1)]; e != 0 {
		return byte(e), r.consume(int(e >> 8))
	}
	for l := lookBits + 1; l <= 16; l++ {
		code := int32(r.acc>>(r.n-l)) & (1<<l - 1)
		if code <= t.maxCode[l] {
			i := code + t.valOffset[l]
			if int(i) >= len(t.vals) {
				break
			}
			return t.vals[i], r.consume(l)
		}
	}
	return 0, FormatError("corrupt entropy-coded data: no Huffman code matches")
}

// reset discards the buffered bits, as at a restart marker.
func (r *bitReader) reset() {
	r.acc, r.n, r.fake, r.marker = 0, 0, 0, false
}
