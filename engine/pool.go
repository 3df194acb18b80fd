// Package engine is what the generated networks run on: a fixed pool of
// worker goroutines that split each layer's work, with no allocation and no
// goroutine creation per call.
package engine

import (
	"runtime"
	"sync"
	"sync/atomic"
)

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
	step    func(part, parts int) // written before gen is incremented
	gen     atomic.Uint64         // step number; workers run each once
	pending atomic.Int64          // workers still in the current step
	stop    atomic.Bool
	wake    []chan struct{} // one token wakes a parked worker
	once    sync.Once
}

// NewPool starts workers−1 goroutines (the caller of Run is the last
// worker). workers < 1 means GOMAXPROCS.
func NewPool(workers int) *Pool {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &Pool{parts: workers}
	for i := 1; i < workers; i++ {
		ch := make(chan struct{}, 1)
		p.wake = append(p.wake, ch)
		go p.work(i, ch)
	}
	return p
}

func (p *Pool) work(part int, wake chan struct{}) {
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
		p.step(part, p.parts)
		p.pending.Add(-1)
	}
}

// Workers is the number of parts each step is split into.
func (p *Pool) Workers() int { return p.parts }

// Run calls step(part, Workers()) for every part, concurrently, and
// returns when all have returned. step must be a func value made once (a
// method value stored at construction), so that Run allocates nothing. Run
// must not be called concurrently with itself.
func (p *Pool) Run(step func(part, parts int)) {
	if p.parts == 1 {
		step(0, 1)
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
	step(0, p.parts)
	for i := 0; p.pending.Load() != 0; i++ {
		if i%64 == 63 {
			runtime.Gosched()
		}
	}
}

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	p.once.Do(func() {
		p.stop.Store(true)
		for _, ch := range p.wake {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	})
}
