package engine

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type stepFunc func(part, parts int)

func (f stepFunc) RunPart(part, parts int) { f(part, parts) }

func TestPoolRunsEveryPartOnce(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 8} {
		p := NewPool(workers)
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
	p := NewPool(2)
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
	p := NewPool(4)
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
	p := NewPool(3)
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
// panics instead of spinning forever.
//
// The pool's workers are told apart from any other goroutine (an earlier
// test's workers may still be exiting, the runtime's and the testing
// package's come and go) by a profiler label that goroutines inherit from
// the goroutine that starts them: workers of this pool carry it, no other
// worker does. The count must first see all 3 workers, so the check cannot
// pass by counting nothing.
func TestPoolCloseWaitsAndRunAfterClosePanics(t *testing.T) {
	const label = "TestPoolCloseWaitsAndRunAfterClosePanics"
	defer pprof.SetGoroutineLabels(context.Background())
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("test", label)))
	p := NewPool(4)
	p.Run(&counter{})
	require.Equal(t, 3, poolWorkers(t, label), "workers of a pool of 4 (the caller of Run is the fourth)")
	p.Close()
	// A worker calls done.Done in its last deferred statement, so Close can
	// return while the goroutine is still being torn down; under qemu that
	// window is wide enough to be seen (CI, stop 14). A leaked worker never
	// exits, so waiting a moment keeps the check able to fail. (Polled here,
	// not with assert.Eventually: its condition runs on a goroutine of its own.)
	n := poolWorkers(t, label)
	for deadline := time.Now().Add(5 * time.Second); n > 0 && time.Now().Before(deadline); n = poolWorkers(t, label) {
		time.Sleep(time.Millisecond)
	}
	if n > 0 {
		var all bytes.Buffer
		require.NoError(t, pprof.Lookup("goroutine").WriteTo(&all, 1))
		t.Errorf("%d workers left running after Close:\n%s", n, all.String())
	}
	assert.PanicsWithValue(t, "engine: Run on a closed Pool", func() { p.Run(&counter{}) })
}

// poolWorkers counts the goroutines running Pool.work that carry the
// profiler label test=label (see the goroutine profile's debug=1 format:
// records separated by blank lines (the first after a header line), "N @ …", "# labels: {…}", "#\tPC\tfunc…").
func poolWorkers(t *testing.T, label string) int {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, pprof.Lookup("goroutine").WriteTo(&b, 1))
	records := strings.Split(b.String(), "\n\n")
	require.Greater(t, len(records), 1, "a goroutine profile: %q", b.String())
	n := 0
	for _, r := range records {
		if !strings.Contains(r, `"test":"`+label+`"`) || !strings.Contains(r, "engine.(*Pool).work") {
			continue
		}
		var c int
		for _, line := range strings.Split(r, "\n") {
			if count, _, ok := strings.Cut(line, " @ "); ok {
				var err error
				c, err = strconv.Atoi(count)
				require.NoError(t, err, "a profile record: %q", r)
			}
		}
		require.Positive(t, c, "a profile record: %q", r)
		n += c
	}
	return n
}
