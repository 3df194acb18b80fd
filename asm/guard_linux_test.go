package asm_test

import (
	"os"
	"runtime/debug"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/resnet"
)

// guarded returns n float32s placed between two inaccessible pages: flush
// against the one after (atEnd) or the one before. A kernel that reads or
// writes one float outside the slice faults and kills the test binary.
func guarded(t *testing.T, n int, atEnd bool) []float32 {
	t.Helper()
	page := os.Getpagesize()
	size := n * 4
	pages := (size + page - 1) / page
	mem, err := syscall.Mmap(-1, 0, (pages+2)*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Munmap(mem) })
	require.NoError(t, syscall.Mprotect(mem[:page], syscall.PROT_NONE))
	require.NoError(t, syscall.Mprotect(mem[(pages+1)*page:], syscall.PROT_NONE))
	start := page
	if atEnd {
		start = (pages+1)*page - size
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&mem[start])), n)
}

func guardedBuffer(t *testing.T, h, w, c, halo int, atEnd bool) asm.Buffer {
	b := asm.Buffer{H: h, W: w, C: c, Halo: halo}
	b.Data = guarded(t, b.Len(), atEnd)
	return b
}

// Every kernel of every tier runs with each of its buffers flush against an
// unmapped page, at the end and then at the start, with the smallest halos
// allowed (so the first and last pixels read or written are the buffer's
// first and last floats).
func TestKernelsStayInsideTheirBuffers(t *testing.T) {
	// A fault becomes a panic that names the kernel instead of a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	for _, tier := range asm.Tiers() {
		for _, atEnd := range []bool{true, false} {
			for _, s := range familyShapes() {
				k, err := asm.Conv(s, tier)
				require.NoError(t, err)
				if tier == asm.Purego && s.InH > 32 {
					continue // the portable kernel is bounds-checked Go; keep the slow tier short
				}
				in := guardedBuffer(t, s.InH, s.InH, s.InC, s.Pad, atEnd)
				out := guardedBuffer(t, s.OutH, s.OutH, s.OutC, 0, atEnd)
				res := guardedBuffer(t, s.OutH, s.OutH, s.OutC, 0, atEnd)
				packed := guarded(t, s.OutC*s.InC*s.K*s.K, atEnd)
				bias := guarded(t, s.OutC, atEnd)
				require.NotPanics(t, func() { require.NoError(t, k.Run(in, out, &res, packed, bias, true)) }, k.Name)
			}
			for _, l := range poolLayers() {
				switch l.Op {
				case resnet.OpMaxPool:
					k, err := asm.MaxPool(l.InShape.C, l.InShape.H, tier)
					require.NoError(t, err)
					in := guardedBuffer(t, l.InShape.H, l.InShape.W, l.InShape.C, 1, atEnd)
					out := guardedBuffer(t, l.OutShape.H, l.OutShape.W, l.OutShape.C, 0, atEnd)
					require.NotPanics(t, func() { require.NoError(t, k.Run(in, out)) }, k.Name)
				case resnet.OpGlobalAvgPool:
					k, err := asm.AvgPool(l.InShape.C, l.InShape.H, tier)
					require.NoError(t, err)
					in := guardedBuffer(t, l.InShape.H, l.InShape.W, l.InShape.C, 0, atEnd)
					o := guarded(t, l.InShape.C, atEnd)
					require.NotPanics(t, func() { require.NoError(t, k.Run(in, o)) }, k.Name)
				case resnet.OpFC:
					k, err := asm.FC(l.InShape.C, l.OutShape.C, tier)
					require.NoError(t, err)
					p := k.Padded()
					x, w, b, o := guarded(t, k.In, atEnd), guarded(t, p*k.In, atEnd), guarded(t, p, atEnd), guarded(t, p, atEnd)
					require.NotPanics(t, func() { require.NoError(t, k.Run(x, w, b, o)) }, k.Name)
				}
			}
		}
	}
}

// The guard itself: one float past either end faults.
func TestGuardPagesFault(t *testing.T) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	end := guarded(t, 10, true)
	require.Panics(t, func() { guardSink = *(*float32)(unsafe.Add(unsafe.Pointer(&end[9]), 4)) })
	start := guarded(t, 10, false)
	require.Panics(t, func() { guardSink = *(*float32)(unsafe.Add(unsafe.Pointer(&start[0]), -4)) })
	require.NotPanics(t, func() { guardSink = end[9] + start[0] })
}

var guardSink float32
