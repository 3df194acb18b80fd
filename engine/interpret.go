package engine

import (
	"fmt"
	"time"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/resnet"
)

// Interpreted is a network built from its layer list at run time, where a
// generated package's build has one statement per layer: the same Builder
// calls on the same buffer plan (PlanBuffers), in float32. resnetgen
// calibrates a user's network with it before the package exists (with the
// portable kernels); Calibrate runs on it with a package's own kernels.
type Interpreted struct {
	net      *resnet.Network
	pool     *Pool
	batch    Batch
	capacity int
	input    Input
	avgpool  AvgPool
	fc       FC
	layers   []Named
	sched    *Schedule
}

// Interpret builds f's network with the kernels ks (nil: the portable
// kernels only) and the options (precision float32 whatever they say).
func Interpret(f *Folded, ks *asm.KernelSet, opts ...Option) (*Interpreted, error) {
	cfg, err := NewConfig(opts...)
	if err != nil {
		return nil, err
	}
	cfg.Precision, cfg.Calibration, cfg.CalibrationImages = FP32, nil, nil
	if ks == nil {
		cfg.Tier = asm.Purego
	}
	net := f.Net
	p := PlanBuffers(net)
	m := &Interpreted{net: net, capacity: cfg.Batch}
	buf := NewBuffers(cfg.Batch, p.Slots)
	slot := func(v int) []asm.Buffer { return buf[p.Slot[v]] }
	b := NewBuilder(ks, f, cfg, &m.batch)
	b.Input(&m.input, slot(0))
	for _, l := range p.Body {
		switch l.Op {
		case resnet.OpConv:
			var res []asm.Buffer
			if l.Residual != resnet.NoValue {
				res = slot(l.Residual)
			}
			b.Conv(&Conv{}, l.Name, l.Stride, slot(l.In), slot(l.Out), res, l.ReLU)
		case resnet.OpMaxPool:
			b.MaxPool(&MaxPool{}, l.Name, slot(l.In), slot(l.Out))
		case resnet.OpShortcutA:
			b.Shortcut(&Shortcut{}, l.Name, l.Stride, slot(l.In), slot(l.Out))
		default:
			return nil, fmt.Errorf("%s: no layer for %v", l.Name, l.Op)
		}
	}
	b.Head(&m.avgpool, &m.fc, p.FC.Name, slot(p.Head.In), net.Arch.Classes)
	if err := b.Err(); err != nil {
		return nil, err
	}
	m.layers = b.Layers()
	m.pool = NewPool(cfg.Workers)
	m.sched = NewSchedule(m.pool, m.layers, &m.batch)
	return m, nil
}

// ForwardBatch computes the logits of n = len(in)/(C·H·W) images, n at most
// the batch set at Interpret; out holds n·classes logits.
func (m *Interpreted) ForwardBatch(in, out []float32) error {
	s := m.net.Values[0]
	n := len(in) / s.Len()
	classes := m.net.Arch.Classes
	if len(in) != n*s.Len() || len(out) != n*classes || n > m.capacity {
		return fmt.Errorf("%s: batch of %d input and %d output floats; want n·%d and n·%d with n ≤ %d", m.net.Arch.Name, len(in), len(out), s.Len(), classes, m.capacity)
	}
	if n == 0 {
		return nil
	}
	m.input.Set(in)
	m.sched.Run(n)
	m.fc.Logits(out)
	m.input.Set(nil)
	return nil
}

// Layers lists the layers in the order they run.
func (m *Interpreted) Layers() []Named { return m.layers }

// Trace makes ForwardBatch report each step to f as it finishes, by its
// index in Layers (nil: off); see Pool.SetTrace.
func (m *Interpreted) Trace(f func(step int, d time.Duration)) { m.pool.SetTrace(f) }

// Close stops the workers.
func (m *Interpreted) Close() { m.pool.Close() }
