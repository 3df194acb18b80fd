// Package engine is what the generated networks run on: layer objects
// (convolution, max pool, option-A shortcut, average pool, classifier, input
// loading) that each split their work into parts, a fixed pool of worker
// goroutines that runs one layer at a time with no allocation and no
// goroutine creation per call, the schedule that orders a batch's layers
// (Schedule), BatchNorm folding and the weights format the generated
// packages embed.
package engine

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Step is one layer's work, split into parts: RunPart(part, parts) computes
// part part of parts, and the parts together compute the whole layer. Parts
// must not depend on each other.
type Step interface {
	RunPart(part, parts int)
}

// spinChecks is how many times an idle worker polls for the next step
// before it parks (a few tens of microseconds here). A network runs one
// step per layer, microseconds to milliseconds apart: parking on a channel
// between layers would cost a futex wake-up (tens of µs on a VM) per layer
// and worker, while polling costs nothing that the layer does not wait for.
const spinChecks = 1 << 14

// Pool runs a step on every worker at once and waits for all of them: one
// layer of a network at a time, each worker computing its part.
type Pool struct {
	parts   int
	step    Step          // written before gen is incremented
	gen     atomic.Uint64 // step number; workers run each once
	pending atomic.Int64  // workers still in the current step
	stop    atomic.Bool
	closed  bool
	wake    []chan struct{} // one token wakes a parked worker
	panics  []any           // per worker: what its part of the current step panicked with
	done    sync.WaitGroup
	once    sync.Once
	trace   func(step int, d time.Duration)
	steps   int // Runs since SetTrace, numbering the steps trace sees
}

// SetTrace makes every Run report its step's wall time to f, the steps
// numbered from 0 in the order they run (Forward runs a network's layers in
// the order of its Layers list, so the number is the layer's index there);
// nil stops it. It is for profiling: the timing costs two clock reads a
// step. Call it between runs, from the goroutine that calls Run.
func (p *Pool) SetTrace(f func(step int, d time.Duration)) {
	p.trace, p.steps = f, 0
}

// ResetTrace numbers the next step 0 again (the start of a forward pass).
func (p *Pool) ResetTrace() { p.steps = 0 }

// NewPool starts workers−1 goroutines (the caller of Run is the last
// worker). workers < 1 means GOMAXPROCS.
func NewPool(workers int) *Pool {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &Pool{parts: workers, panics: make([]any, workers)}
	for i := 1; i < workers; i++ {
		ch := make(chan struct{}, 1)
		p.wake = append(p.wake, ch)
		p.done.Add(1)
		go p.work(i, ch)
	}
	return p
}

func (p *Pool) work(part int, wake chan struct{}) {
	defer p.done.Done()
	var seen uint64
	for {
		for i := 0; p.gen.Load() == seen; i++ {
			if p.stop.Load() {
				return
			}
			if i%64 == 63 {
				runtime.Gosched() // never starve a goroutine that shares this thread
			}
			if i >= spinChecks {
				<-wake // a stale token only means one more check
				i = 0
			}
		}
		seen++
		p.runPart(part)
		p.pending.Add(-1)
	}
}

// runPart runs this worker's part of the current step; a panic is kept for
// Run to re-raise once every worker has finished, so the barrier holds.
func (p *Pool) runPart(part int) {
	defer func() {
		if r := recover(); r != nil {
			p.panics[part] = r
		}
	}()
	p.step.RunPart(part, p.parts)
}

// Workers is the number of parts each step is split into.
func (p *Pool) Workers() int { return p.parts }

// Run calls step.RunPart(part, Workers()) for every part, concurrently, and
// returns when all have returned: everything step wrote is then visible to
// the caller and to the next step. A pointer to a Step allocates nothing.
// Run must not be called concurrently with itself or after Close. If a part
// panics, Run panics too, after every other part has finished.
func (p *Pool) Run(step Step) {
	if p.closed {
		panic("engine: Run on a closed Pool")
	}
	if p.trace != nil {
		start := time.Now()
		p.run(step)
		p.trace(p.steps, time.Since(start))
		p.steps++
		return
	}
	p.run(step)
}

func (p *Pool) run(step Step) {
	if p.parts == 1 {
		step.RunPart(0, 1)
		return
	}
	p.step = step
	p.pending.Store(int64(len(p.wake)))
	p.gen.Add(1)
	for _, ch := range p.wake {
		select {
		case ch <- struct{}{}:
		default: // a token is already waiting
		}
	}
	p.runPart(0)
	for i := 0; p.pending.Load() != 0; i++ {
		if i%64 == 63 {
			runtime.Gosched()
		}
	}
	p.step = nil
	for i, r := range p.panics {
		if r != nil {
			clear(p.panics)
			panic(fmt.Sprintf("engine: part %d of %d panicked: %v", i, p.parts, r))
		}
	}
}

// Close stops the workers and waits until they have exited. It may be
// called more than once; the pool must not be used afterwards.
func (p *Pool) Close() {
	p.once.Do(func() {
		p.closed = true
		p.stop.Store(true)
		for _, ch := range p.wake {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
		p.done.Wait()
	})
}
