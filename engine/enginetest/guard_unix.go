//go:build unix

package enginetest

import (
	"os"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
)

// guard hands out float32 slices placed between two inaccessible pages,
// flush against the one after (atEnd) or the one before: a kernel that reads
// or writes one float outside its slice faults.
type guard struct {
	t     testing.TB
	atEnd bool
	maps  [][]byte
}

func newGuard(t testing.TB, atEnd bool) *guard { return &guard{t: t, atEnd: atEnd} }

func (g *guard) floats(n int) []float32 {
	page := os.Getpagesize()
	size := n * 4
	pages := (size + page - 1) / page
	mem, err := syscall.Mmap(-1, 0, (pages+2)*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	require.NoError(g.t, err)
	g.maps = append(g.maps, mem)
	require.NoError(g.t, syscall.Mprotect(mem[:page], syscall.PROT_NONE))
	require.NoError(g.t, syscall.Mprotect(mem[(pages+1)*page:], syscall.PROT_NONE))
	start := page
	if g.atEnd {
		start = (pages+1)*page - size
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&mem[start])), n)
}

func (g *guard) buffer(h, w, c, halo int) asm.Buffer {
	b := asm.Buffer{H: h, W: w, C: c, Halo: halo}
	b.Data = g.floats(b.Len())
	return b
}

func (g *guard) free() {
	for _, m := range g.maps {
		syscall.Munmap(m)
	}
	g.maps = nil
}
