// Package engine is what the generated networks run on: a fixed pool of
// worker goroutines that split each layer's work, with no allocation and no
// goroutine creation per call.
package engine

import (
	"runtime"
	"sync"
)

// Pool runs a step on every worker at once and waits for all of them: one
// layer of a network at a time, each worker computing its part.
type Pool struct {
	parts int
	wake  []chan func(part, parts int)
	done  sync.WaitGroup
	once  sync.Once
}

// NewPool starts workers−1 goroutines (the caller of Run is the last
// worker). workers < 1 means GOMAXPROCS.
func NewPool(workers int) *Pool {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &Pool{parts: workers}
	for i := 1; i < workers; i++ {
		ch := make(chan func(part, parts int))
		p.wake = append(p.wake, ch)
		go func(part int) {
			for step := range ch {
				step(part, workers)
				p.done.Done()
			}
		}(i)
	}
	return p
}

// Workers is the number of parts each step is split into.
func (p *Pool) Workers() int { return p.parts }

// Run calls step(part, Workers()) for every part, concurrently, and
// returns when all have returned. step must be a func value made once (a
// method value stored at construction), so that Run allocates nothing.
func (p *Pool) Run(step func(part, parts int)) {
	p.done.Add(len(p.wake))
	for _, ch := range p.wake {
		ch <- step
	}
	step(0, p.parts)
	p.done.Wait()
}

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	p.once.Do(func() {
		for _, ch := range p.wake {
			close(ch)
		}
	})
}
