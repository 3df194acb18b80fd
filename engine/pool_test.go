package engine_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/engine/enginetest"
)

type stepFunc func(part, parts int)

func (f stepFunc) RunPart(part, parts int) { f(part, parts) }

func TestPoolRunsEveryPartOnce(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 8} {
		p := engine.NewPool(workers)
		var hits [8]atomic.Int32
		var seenParts atomic.Int32
		step := stepFunc(func(part, parts int) {
			hits[part].Add(1)
			seenParts.Store(int32(parts))
		})
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

type counter struct{ n atomic.Int64 }

func (c *counter) RunPart(part, parts int) { c.n.Add(int64(part + 1)) }

func TestPoolRunAllocatesNothing(t *testing.T) {
	p := engine.NewPool(2)
	defer p.Close()
	c := &counter{}
	allocs := testing.AllocsPerRun(100, func() { p.Run(c) })
	assert.Zero(t, allocs)
	assert.Positive(t, c.n.Load())
}

// Step N+1 starts on no worker before step N has finished on every worker:
// each part of step N+1 sees every part of step N done, even when some
// parts of step N are slow.
func TestPoolStepsDoNotOverlap(t *testing.T) {
	p := engine.NewPool(4)
	defer p.Close()
	var done [4]atomic.Int64 // per part: the last step it finished
	var violations atomic.Int64
	for step := int64(1); step <= 300; step++ {
		p.Run(stepFunc(func(part, parts int) {
			for q := range parts {
				if done[q].Load() < step-1 { // a part of step-1 still running
					violations.Add(1)
				}
			}
			if part == int(step)%parts {
				time.Sleep(20 * time.Microsecond) // one slow part per step
			}
			done[part].Store(step)
		}))
		for q := range 4 {
			require.Equal(t, step, done[q].Load(), "after Run(%d) returned, part %d had not finished", step, q)
		}
	}
	assert.Zero(t, violations.Load(), "a step started before the previous one finished on every worker")
}

// A panicking part does not break the barrier: Run waits for the other
// parts, then panics naming the part; the pool keeps working.
func TestPoolPanicKeepsTheBarrier(t *testing.T) {
	p := engine.NewPool(3)
	defer p.Close()
	var finished atomic.Int32
	require.PanicsWithValue(t, "engine: part 1 of 3 panicked: boom", func() {
		p.Run(stepFunc(func(part, parts int) {
			if part == 1 {
				panic("boom")
			}
			time.Sleep(time.Millisecond)
			finished.Add(1)
		}))
	})
	assert.Equal(t, int32(2), finished.Load(), "Run returned before the other parts finished")
	c := &counter{}
	p.Run(c)
	assert.Equal(t, int64(1+2+3), c.n.Load(), "the pool still runs every part after a panic")
}

// Close waits until every worker goroutine has exited; Run after Close
// panics instead of spinning forever. The pool's workers are counted
// apart from any other goroutine (an earlier test's workers may still be
// exiting): they are the ones this test started (enginetest.Goroutines).
// The count must first see all 3, so the check cannot pass by counting
// nothing.
func TestPoolCloseWaitsAndRunAfterClosePanics(t *testing.T) {
	g := enginetest.TrackGoroutines(t)
	p := engine.NewPool(4)
	p.Run(&counter{})
	n, _ := g.Count(t, "engine.(*Pool).work")
	require.Equal(t, 3, n, "workers of a pool of 4 (the caller of Run is the fourth)")
	p.Close()
	// A worker calls done.Done in its last deferred statement, so Close can
	// return while the goroutine is still being torn down; under qemu that
	// window is wide enough to be seen (CI, stop 14). A leaked worker never
	// exits, so waiting a moment keeps the check able to fail. (Polled here,
	// not with assert.Eventually: its condition runs on a goroutine of its own.)
	n, left := g.Count(t, "engine.(*Pool).work")
	for deadline := time.Now().Add(5 * time.Second); n > 0 && time.Now().Before(deadline); n, left = g.Count(t, "engine.(*Pool).work") {
		time.Sleep(time.Millisecond)
	}
	assert.Zero(t, n, "workers left running after Close:\n%s", left)
	assert.PanicsWithValue(t, "engine: Run on a closed Pool", func() { p.Run(&counter{}) })
}
