//go:build unix

package enginetest

import (
	"runtime/debug"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// The guard itself: one float past either end of a guarded slice faults,
// so the guarded kernel runs prove what they claim.
func TestGuardPagesFault(t *testing.T) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	g := newGuard(t, true)
	defer g.free()
	end := g.floats(10)
	require.Panics(t, func() { guardSink = *(*float32)(unsafe.Add(unsafe.Pointer(&end[9]), 4)) })
	g2 := newGuard(t, false)
	defer g2.free()
	start := g2.floats(10)
	require.Panics(t, func() { guardSink = *(*float32)(unsafe.Add(unsafe.Pointer(&start[0]), -4)) })
	require.NotPanics(t, func() { guardSink = end[9] + start[0] })
	b := g.buffer(3, 4, 5, 1)
	require.Len(t, b.Data, 5*6*5)
}

var guardSink float32
