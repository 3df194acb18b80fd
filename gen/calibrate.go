package gen

import (
	"encoding/json"
	"time"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/resnet"
)

// calibrate measures the int8 activation scales of folded weights on the
// images of o.Calibrate, running the network on the portable kernels
// (the package's own do not exist yet), and returns them as the JSON the
// package compiles in.
func calibrate(o Options, net *resnet.Network, folded *engine.Folded, say func(string, ...any)) (*engine.Calibration, []byte, error) {
	images, n, err := engine.ReadCalibrationImages(o.Calibrate, net, o.CalibrateN)
	if err != nil {
		return nil, nil, err
	}
	start := time.Now()
	say("calibrating on %d images of %s (the portable float32 kernels: this takes a while for big networks)", n, o.Calibrate)
	// The package's kernels do not exist yet: nil kernels, the portable
	// tier.
	m, err := engine.Interpret(folded, nil, engine.WithBatch(8))
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	c, err := engine.Calibrate(m, folded, images, net.Values[0].Len(), 8, engine.CalibrateOptions{
		Progress: func(format string, args ...any) { say(format, args...) },
	})
	if err != nil {
		return nil, nil, err
	}
	say("calibrated %d tensors in %v", len(c.Scales), time.Since(start).Round(time.Millisecond))
	js, err := json.Marshal(c)
	return c, js, err
}
