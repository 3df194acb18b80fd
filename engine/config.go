package engine

import (
	"fmt"
	"runtime"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/resnet"
)

// Config is what a network's New takes besides its weights.
type Config struct {
	Tier    asm.Tier // default: asm.Best()
	Workers int      // default: GOMAXPROCS
	Batch   int      // images ForwardBatch accepts at once; default 1
	// Conv picks the algorithm of the 3x3 stride-1 convolutions that have
	// a Winograd kernel (default Auto).
	Conv Algorithm
	// Shared, when set, holds packed weights that Models of the same
	// weights share (see WithShared).
	Shared *Shared
	// Precision is the convolutions' arithmetic (default FP32). Int8 needs
	// a package generated with int8 kernels and a calibration: Calibration,
	// or images to calibrate on at New (CalibrationImages).
	Precision Precision
	// Calibration holds the int8 activation scales (WithInt8).
	Calibration *Calibration
	// CalibrationImages are CHW images (normalised as for Forward, one
	// after the other) New calibrates an int8 Model on (WithInt8Calibrating).
	CalibrationImages []float32
	// Progress, if set, receives a line per stage of long work at New
	// (calibration).
	Progress func(format string, args ...any)
	// keepWeights: the Builder leaves the folded weights in place (the
	// network Interpret builds to calibrate on them).
	keepWeights bool
}

// Precision is the arithmetic of a Model's convolutions.
type Precision int

const (
	// FP32 runs every layer in float32.
	FP32 Precision = iota
	// Int8 runs every convolution but the stem on uint8 activations and
	// int8 weights (int32 accumulation); the stem, the pools and the
	// classifier stay float32.
	Int8
)

func (p Precision) String() string {
	if p == Int8 {
		return "int8"
	}
	return "fp32"
}

// ParsePrecision is the inverse of Precision.String.
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "fp32":
		return FP32, nil
	case "int8":
		return Int8, nil
	}
	return 0, fmt.Errorf("unknown precision %q (want fp32 or int8)", s)
}

// WithInt8 runs the Model in int8 with the activation scales of c
// (Calibrate), which must have been measured on the Model's weights.
func WithInt8(c *Calibration) Option {
	return func(cfg *Config) { cfg.Precision, cfg.Calibration, cfg.CalibrationImages = Int8, c, nil }
}

// WithInt8Calibrating runs the Model in int8 with activation scales New
// measures on images (CHW, normalised as for Forward, one after the
// other; see Calibrate).
func WithInt8Calibrating(images []float32) Option {
	return func(cfg *Config) { cfg.Precision, cfg.Calibration, cfg.CalibrationImages = Int8, nil, images }
}

// WithPrecision sets the precision; WithPrecision(FP32) runs a package
// whose default is int8 in float32.
func WithPrecision(p Precision) Option { return func(cfg *Config) { cfg.Precision = p } }

// WithProgress reports New's long stages (calibration) to f.
func WithProgress(f func(format string, args ...any)) Option {
	return func(cfg *Config) { cfg.Progress = f }
}

// Algorithm is how a convolution is computed.
type Algorithm int

const (
	// Auto takes what a tuning cache measured on this CPU for the layer's
	// shape and tier (see Tuning), or else the generator's default rule.
	Auto Algorithm = iota
	// Direct is the direct convolution everywhere.
	Direct
	// Winograd is Winograd wherever the package has a kernel for the
	// layer: in the tile size a tuning cache measured best, or else the
	// first the generator lists (F(4,3), or F(2,3) on the layers whose
	// F(4,3) weights stream from memory; see Builder.choose).
	Winograd
)

func (a Algorithm) String() string {
	return [...]string{"auto", "direct", "winograd"}[a]
}

// WithConv sets how the 3x3 stride-1 convolutions are computed.
func WithConv(a Algorithm) Option { return func(c *Config) { c.Conv = a } }

// Option sets one field of Config.
type Option func(*Config)

// WithTier forces an instruction-set tier (asm.Purego, asm.AVX2, asm.AVX512, asm.NEON).
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
	if c.Conv < Auto || c.Conv > Winograd {
		return c, fmt.Errorf("unknown convolution algorithm %d", c.Conv)
	}
	if c.Precision != FP32 && c.Precision != Int8 {
		return c, fmt.Errorf("unknown precision %d", c.Precision)
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c, nil
}

// Network rebuilds the layer list a package was generated from: the
// catalogued architecture arch with an h×w input and classes outputs. The
// package's layer count and MACs must still match, or the resnet package
// has changed since generation and the package must be generated again.
func Network(arch string, h, w, classes, layers int, macs int64) (*resnet.Network, error) {
	a, err := resnet.Lookup(arch)
	if err != nil {
		return nil, err
	}
	a.InputH, a.InputW, a.Classes = h, w, classes
	net, err := resnet.Build(a)
	if err != nil {
		return nil, err
	}
	if len(net.Layers) != layers || net.MACs() != macs {
		return nil, fmt.Errorf("this package was generated from another layer list of %s (%d layers, %d MACs; resnet now builds %d, %d): run go generate again",
			arch, layers, macs, len(net.Layers), net.MACs())
	}
	return net, nil
}
