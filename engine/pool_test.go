package engine

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPoolRunsEveryPartOnce(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 8} {
		p := NewPool(workers)
		var hits [8]atomic.Int32
		var seenParts atomic.Int32
		step := func(part, parts int) {
			hits[part].Add(1)
			seenParts.Store(int32(parts))
		}
		for range 100 {
			p.Run(step)
		}
		for i := 0; i < workers; i++ {
			assert.Equal(t, int32(100), hits[i].Load(), "workers=%d part %d", workers, i)
		}
		assert.Equal(t, int32(workers), seenParts.Load())
		p.Close()
		p.Close() // idempotent
	}
}

func TestPoolRunAllocatesNothing(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	var sum atomic.Int64
	step := func(part, parts int) { sum.Add(int64(part + 1)) }
	allocs := testing.AllocsPerRun(100, func() { p.Run(step) })
	assert.Zero(t, allocs)
	assert.Positive(t, sum.Load())
}
