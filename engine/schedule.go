package engine

// Schedule runs a network's layers, in the order of its Layers list, on a
// pool. A batch runs its leading, activation-heavy layers (the big maps of
// the first stages, whose weights are small) a group of images at a time,
// one image per worker, so that each group's activations stay in cache
// from one layer to the next; and the rest, whose weights outweigh an
// image's activations, layer by layer over the whole batch, reading each
// weight once per batch. At batch 8 the first stages of ResNet-50 hold
// tens of MB of activations, more than the last-level cache.
type Schedule struct {
	pool    *Pool
	steps   []Step
	batch   *Batch
	grouped int // leading steps a batch runs a group of images at a time
}

// NewSchedule makes the schedule of layers (a Builder's Layers, whose Batch
// is batch) on pool.
func NewSchedule(pool *Pool, layers []Named, batch *Batch) *Schedule {
	s := &Schedule{pool: pool, batch: batch}
	s.grouped = len(layers)
	for i, l := range layers {
		s.steps = append(s.steps, l.Layer)
		if s.grouped == len(layers) && weightsHeavy(l.Layer) {
			s.grouped = i
		}
	}
	return s
}

// weightsHeavy reports whether a batch should run the layer over all its
// images at once: its weights are read once per batch that way.
func weightsHeavy(l Layer) bool {
	switch l := l.(type) {
	case *Conv:
		if l.Q != nil {
			act := l.Q.In[0].Len() + l.Q.Out[0].Len()
			return len(l.Q.Packed) > act
		}
		if l.W != nil {
			return l.W.SharesWeights(4*len(l.WPacked), len(l.In))
		}
		return l.WeightsFirst
	case *FC, *AvgPool:
		return true
	}
	return false
}

// Run runs the layers on images [0, n) (n ≤ the Model's batch).
func (s *Schedule) Run(n int) {
	s.pool.ResetTrace()
	k := 0
	if n > 1 {
		g := min(s.pool.Workers(), n)
		for i := 0; i < n; i += g {
			*s.batch = Batch{First: i, N: min(g, n-i)}
			s.pool.ResetTrace()
			for _, st := range s.steps[:s.grouped] {
				s.pool.Run(st)
			}
		}
		k = s.grouped
	}
	*s.batch = Batch{First: 0, N: n}
	for _, st := range s.steps[k:] {
		s.pool.Run(st)
	}
}
