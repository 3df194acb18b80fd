package pytorch

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// scanPickle walks the opcodes of one pickle stream at the start of data
// without executing them and returns the length of the stream (through its
// STOP opcode). It checks that every length-prefixed argument fits in the
// bytes that remain, so the unpickler never allocates a buffer from a length
// the file cannot back: a corrupt 8-byte length would otherwise ask for
// terabytes before the read fails. The argument formats are those of
// CPython's pickletools.
func scanPickle(data []byte) (int, error) {
	p := 0
	need := func(n uint64, what string) error {
		if n > uint64(len(data)-p) {
			return fmt.Errorf("pickle: %s at byte %d needs %d bytes, %d remain", what, p, n, len(data)-p)
		}
		return nil
	}
	// counted reads an n-byte little-endian length, then skips that many bytes.
	counted := func(n int, op byte) error {
		if err := need(uint64(n), "length"); err != nil {
			return err
		}
		var l uint64
		switch n {
		case 1:
			l = uint64(data[p])
		case 4:
			l = uint64(binary.LittleEndian.Uint32(data[p:]))
			if op == opLong4 && int32(l) < 0 {
				return fmt.Errorf("pickle: negative LONG4 length at byte %d", p)
			}
		case 8:
			l = binary.LittleEndian.Uint64(data[p:])
		}
		p += n
		if err := need(l, fmt.Sprintf("opcode 0x%02x argument", op)); err != nil {
			return err
		}
		p += int(l)
		return nil
	}
	line := func() error {
		i := bytes.IndexByte(data[p:], '\n')
		if i < 0 {
			return fmt.Errorf("pickle: unterminated line argument at byte %d", p)
		}
		p += i + 1
		return nil
	}
	for p < len(data) {
		op := data[p]
		p++
		var err error
		switch op {
		case '.': // STOP
			return p, nil
		case '(', ')', '0', '1', '2', 'N', 'R', 'a', 'b', 'd', 'e', 'l', 's', 't', 'u', '}', ']',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98, 'Q', 'o':
			// no argument
		case 'K', 'q', 'h', 0x80, 0x82: // BININT1 BINPUT BINGET PROTO EXT1
			err = need(1, "argument")
			p++
		case 'M', 0x83: // BININT2 EXT2
			err = need(2, "argument")
			p += 2
		case 'J', 'r', 'j', 0x84: // BININT LONG_BINPUT LONG_BINGET EXT4
			err = need(4, "argument")
			p += 4
		case 'G': // BINFLOAT
			err = need(8, "argument")
			p += 8
		case 0x95: // FRAME: a length, then that many bytes of more opcodes
			if err = need(8, "argument"); err == nil {
				err = need(binary.LittleEndian.Uint64(data[p:])+8, "frame")
			}
			p += 8
		case 0x8a, 'U', 0x8c, 'C': // LONG1 SHORT_BINSTRING SHORT_BINUNICODE SHORT_BINBYTES
			err = counted(1, op)
		case opLong4, 'T', 'X', 'B': // LONG4 BINSTRING BINUNICODE BINBYTES
			err = counted(4, op)
		case 0x8d, 0x8e, 0x96: // BINUNICODE8 BINBYTES8 BYTEARRAY8
			err = counted(8, op)
		case 'I', 'L', 'F', 'S', 'V', 'P', 'g', 'p':
			err = line()
		case 'c', 'i': // GLOBAL INST: module and name lines
			if err = line(); err == nil {
				err = line()
			}
		default:
			return 0, fmt.Errorf("pickle: unknown opcode 0x%02x at byte %d", op, p-1)
		}
		if err != nil {
			return 0, err
		}
		if p > len(data) {
			return 0, fmt.Errorf("pickle: truncated argument of opcode 0x%02x", op)
		}
	}
	return 0, fmt.Errorf("pickle: stream ends after %d bytes without STOP", len(data))
}

const opLong4 = 0x8b
