// Package quant is the arithmetic of int8 inference, written plainly so
// that the kernels can be held to it: per-output-channel symmetric weight
// quantization, per-tensor activation scales chosen from calibration
// histograms, and an exact integer reference convolution with its
// requantization in float64.
//
// The scheme (DESIGN.md's int8 section): activations are uint8 with zero
// point 0 wherever they are non-negative (ReLU outputs and post-ReLU
// residual sums), int8 for a projection shortcut's output (no ReLU);
// weights int8 in [−127, 127], one scale per output channel; products
// accumulate exactly in int32; the epilogue dequantizes, adds the folded
// BatchNorm bias and the residual, applies ReLU and requantizes.
package quant

import (
	"fmt"
	"math"
)

// Weights quantizes OIHW float32 weights of outC output channels to int8
// with one symmetric scale per output channel: scale = max|w|/127, q =
// round(w/scale) (half away from zero, as torch's per-channel observers
// do). A channel of zeros gets scale 1.
func Weights(oihw []float32, outC int) (q []int8, scale []float32, err error) {
	if outC < 1 || len(oihw)%outC != 0 {
		return nil, nil, fmt.Errorf("quant: %d weights for %d output channels", len(oihw), outC)
	}
	per := len(oihw) / outC
	q = make([]int8, len(oihw))
	scale = make([]float32, outC)
	for o := 0; o < outC; o++ {
		w := oihw[o*per : (o+1)*per]
		m := 0.0
		for _, v := range w {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, nil, fmt.Errorf("quant: output channel %d has a non-finite weight", o)
			}
			m = max(m, math.Abs(float64(v)))
		}
		s := float32(m / 127)
		if s == 0 {
			s = 1
		}
		scale[o] = s
		for i, v := range w {
			q[o*per+i] = int8(max(-127, min(127, math.Round(float64(v)/float64(s)))))
		}
	}
	return q, scale, nil
}

// Activation quantizes x with scale s to uint8 (signed false: [0, 255]) or
// int8 ([−128, 127]), rounding half to even as the kernels do.
func Activation(x, s float32, signed bool) int32 {
	lo, hi := 0.0, 255.0
	if signed {
		lo, hi = -128, 127
	}
	return int32(math.RoundToEven(min(max(float64(x)/float64(s), lo), hi)))
}

// Planes is an integer activation or accumulator in CHW order.
type Planes struct {
	C, H, W int
	Data    []int32
}

// NewPlanes returns zeroed planes.
func NewPlanes(c, h, w int) Planes { return Planes{c, h, w, make([]int32, c*h*w)} }

// At is the value at channel c, row y, column x.
func (p Planes) At(c, y, x int) int32 { return p.Data[(c*p.H+y)*p.W+x] }

// Conv is the exact integer convolution: out[o][y][x] = Σ w[o][i][ky][kx] ·
// in[i][y·s−p+ky][x·s−p+kx] in int64, taps outside the input reading zero,
// checked to fit int32 (it panics otherwise: the kernels' accumulators are
// int32). w is OIHW int8.
func Conv(in Planes, w []int8, outC, k, stride, pad int) Planes {
	if len(w) != outC*in.C*k*k {
		panic(fmt.Sprintf("quant: Conv: %d weights for %d×%d×%d×%d", len(w), outC, in.C, k, k))
	}
	oh, ow := (in.H+2*pad-k)/stride+1, (in.W+2*pad-k)/stride+1
	out := NewPlanes(outC, oh, ow)
	for o := 0; o < outC; o++ {
		for y := 0; y < oh; y++ {
			for x := 0; x < ow; x++ {
				var acc int64
				for i := 0; i < in.C; i++ {
					for ky := 0; ky < k; ky++ {
						iy := y*stride - pad + ky
						if iy < 0 || iy >= in.H {
							continue
						}
						for kx := 0; kx < k; kx++ {
							ix := x*stride - pad + kx
							if ix < 0 || ix >= in.W {
								continue
							}
							acc += int64(in.At(i, iy, ix)) * int64(w[((o*in.C+i)*k+ky)*k+kx])
						}
					}
				}
				if acc != int64(int32(acc)) {
					panic(fmt.Sprintf("quant: Conv: accumulator %d overflows int32", acc))
				}
				out.Data[(o*oh+y)*ow+x] = int32(acc)
			}
		}
	}
	return out
}

// Requantize is the epilogue in float64: y = acc·inScale·wScale + bias (+
// res·resScale), ReLU if relu, then round(y/outScale) clamped to uint8
// (int8 if signed). The kernels compute it in float32 and agree with it to
// within one unit.
func Requantize(acc int32, inScale, wScale, bias float32, res int32, resScale float32, relu bool, outScale float32, signed bool) int32 {
	y := float64(acc)*float64(inScale)*float64(wScale) + float64(bias) + float64(res)*float64(resScale)
	if relu {
		y = max(y, 0)
	}
	lo, hi := 0.0, 255.0
	if signed {
		lo, hi = -128, 127
	}
	return int32(math.RoundToEven(min(max(y/float64(outScale), lo), hi)))
}
