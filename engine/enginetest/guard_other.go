//go:build !unix

package enginetest

import (
	"testing"

	"github.com/resnetgen/resnetgen/asm"
)

// guard without unmapped pages (no mmap here): plain slices, so the guarded
// runs still check that every kernel runs, without the page-fault proof.
type guard struct{}

func newGuard(testing.TB, bool) *guard { return &guard{} }

func (*guard) floats(n int) []float32 { return make([]float32, n) }

func (g *guard) buffer(h, w, c, halo int) asm.Buffer { return asm.NewBuffer(h, w, c, halo) }

func (*guard) free() {}
