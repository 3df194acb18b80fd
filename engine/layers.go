package engine

import (
	"fmt"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/resnet"
)

// Config is what a network's New takes besides its weights.
type Config struct {
	Tier    asm.Tier // default: asm.Best()
	Workers int      // default: GOMAXPROCS
	Batch   int      // images ForwardBatch accepts at once; default 1
}

// Option sets one field of Config.
type Option func(*Config)

// WithTier forces an instruction-set tier (asm.Purego, asm.AVX2, asm.AVX512).
func WithTier(t asm.Tier) Option { return func(c *Config) { c.Tier = t } }

// WithWorkers sets how many goroutines split each layer (default GOMAXPROCS).
func WithWorkers(n int) Option { return func(c *Config) { c.Workers = n } }

// WithBatch sets the capacity of ForwardBatch (default 1).
func WithBatch(n int) Option { return func(c *Config) { c.Batch = n } }

// NewConfig applies opts to the defaults and checks the result.
func NewConfig(opts ...Option) (Config, error) {
	c := Config{Tier: asm.Best(), Batch: 1}
	for _, o := range opts {
		o(&c)
	}
	if !asm.Has(c.Tier) {
		return c, fmt.Errorf("tier %v is not available here (have %v)", c.Tier, asm.Tiers())
	}
	if c.Workers < 0 || c.Batch < 1 {
		return c, fmt.Errorf("workers %d and batch %d: want workers ≥ 0 (0: GOMAXPROCS) and batch ≥ 1", c.Workers, c.Batch)
	}
	return c, nil
}

// Conv is one convolution layer ready to run: its kernel, BN-folded packed
// weights and bias.
type Conv struct {
	K            *asm.ConvKernel
	Packed, Bias []float32
}

// NewConv folds the BatchNorm named bn into the convolution weight named
// weight and packs it for shape s on tier t. The weights must have passed
// Validate.
func NewConv(w *resnet.Weights, weight, bn string, s asm.ConvShape, t asm.Tier) (Conv, error) {
	k, err := asm.Conv(s, t)
	if err != nil {
		return Conv{}, err
	}
	folded, bias := resnet.FoldBN(w.Tensors[weight].Data, w.Tensors[bn+".weight"].Data, w.Tensors[bn+".bias"].Data,
		w.Tensors[bn+".running_mean"].Data, w.Tensors[bn+".running_var"].Data, resnet.BNEpsilon)
	packed, err := k.PackWeights(folded)
	if err != nil {
		return Conv{}, err
	}
	return Conv{k, packed, bias}, nil
}

// Head is the global average pool and the classifier.
type Head struct {
	Pool        *asm.AvgPoolKernel
	FC          *asm.FCKernel
	W, B        []float32 // packed
	Pooled, Out []float32 // scratch: pooled features, padded logits
}

// NewHead prepares the average pool over an h×h map of c channels and the
// classifier named fc (fc.weight, fc.bias) to classes outputs.
func NewHead(w *resnet.Weights, fc string, c, h, classes int, t asm.Tier) (Head, error) {
	pool, err := asm.AvgPool(c, h, t)
	if err != nil {
		return Head{}, err
	}
	k, err := asm.FC(c, classes, t)
	if err != nil {
		return Head{}, err
	}
	pw, pb, err := k.Pack(w.Tensors[fc+".weight"].Data, w.Tensors[fc+".bias"].Data)
	if err != nil {
		return Head{}, err
	}
	return Head{pool, k, pw, pb, make([]float32, c), make([]float32, k.Padded())}, nil
}

// PoolStep averages in into Pooled; as a pool step only part 0 works (the
// map is small).
func (h *Head) PoolStep(in asm.Buffer, part int) {
	if part == 0 {
		if err := h.Pool.Run(in, h.Pooled); err != nil {
			panic(err) // shapes are constants checked at New
		}
	}
}

// FCStep computes part of the logits from Pooled into Out.
func (h *Head) FCStep(part, parts int) { h.FC.RunPart(h.Pooled, h.W, h.B, h.Out, part, parts) }

// Check reports whether the head accepts in.
func (h *Head) Check(in asm.Buffer) error {
	if err := h.Pool.Run(in, h.Pooled); err != nil {
		return err
	}
	return h.FC.Check(h.Pooled, h.W, h.B, h.Out)
}

// LoadCHW copies a CHW image (PyTorch's layout) into the interior of an
// NHWC buffer, leaving its halo zero: rows [part, parts) of it.
func LoadCHW(dst asm.Buffer, src []float32, part, parts int) {
	plane := dst.H * dst.W
	for y := part * dst.H / parts; y < (part+1)*dst.H/parts; y++ {
		for x := 0; x < dst.W; x++ {
			d := dst.Data[dst.Index(y, x, 0):][:dst.C]
			for c := range d {
				d[c] = src[c*plane+y*dst.W+x]
			}
		}
	}
}
