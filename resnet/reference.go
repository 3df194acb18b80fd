package resnet

import (
	"fmt"
	"math"
)

// This file is the oracle: a deliberately plain float64 forward pass over the
// layer list, in NCHW with one image, BatchNorm applied unfolded in eval
// mode. Every kernel and generated network is tested against it, so it
// favours obviousness over speed; the only concession is that loops over
// padding are clipped to the valid range instead of testing every tap.

// Planes is one image's activation in CHW order, float64.
type Planes struct {
	Shape
	Data []float64
}

// NewPlanes returns zeroed planes of shape s.
func NewPlanes(s Shape) Planes { return Planes{s, make([]float64, s.Len())} }

// At returns the value at channel c, row y, column x.
func (p Planes) At(c, y, x int) float64 { return p.Data[(c*p.H+y)*p.W+x] }

// Conv2D is a square convolution without bias: out[o][y][x] =
// Σ_{i,ky,kx} w[o][i][ky][kx] · in[i][y·s−p+ky][x·s−p+kx], taps outside the
// input reading zero. w is OIHW with outC·in.C·k·k values.
func Conv2D(in Planes, w []float64, outC, k, stride, pad int) Planes {
	if len(w) != outC*in.C*k*k {
		panic(fmt.Sprintf("resnet: Conv2D: %d weights for %d×%d×%d×%d", len(w), outC, in.C, k, k))
	}
	out := NewPlanes(Shape{outC, convOut(in.H, k, stride, pad), convOut(in.W, k, stride, pad)})
	for o := 0; o < outC; o++ {
		dst := out.Data[o*out.H*out.W : (o+1)*out.H*out.W]
		for i := 0; i < in.C; i++ {
			src := in.Data[i*in.H*in.W : (i+1)*in.H*in.W]
			for ky := 0; ky < k; ky++ {
				y0, y1 := validRange(out.H, in.H, ky, stride, pad)
				for kx := 0; kx < k; kx++ {
					x0, x1 := validRange(out.W, in.W, kx, stride, pad)
					wv := w[((o*in.C+i)*k+ky)*k+kx]
					for y := y0; y < y1; y++ {
						row := src[(y*stride-pad+ky)*in.W:]
						d := dst[y*out.W+x0 : y*out.W+x1]
						if stride == 1 { // the same sum, written so the compiler drops bounds checks
							r := row[x0-pad+kx : x1-pad+kx]
							for j := range d {
								d[j] += wv * r[j]
							}
							continue
						}
						for j := range d {
							d[j] += wv * row[(x0+j)*stride-pad+kx]
						}
					}
				}
			}
		}
	}
	return out
}

// validRange returns the output positions [lo, hi) whose tap at kernel offset
// kk lands inside an input of length inLen: 0 ≤ o·s − p + kk < inLen.
func validRange(outLen, inLen, kk, stride, pad int) (lo, hi int) {
	for lo = 0; lo < outLen && lo*stride-pad+kk < 0; lo++ {
	}
	for hi = outLen; hi > lo && (hi-1)*stride-pad+kk >= inLen; hi-- {
	}
	return lo, hi
}

// BatchNorm applies eval-mode batch normalisation in place:
// x = (x − mean[c]) / sqrt(var[c] + eps) · gamma[c] + beta[c].
func BatchNorm(x Planes, gamma, beta, mean, variance []float64, eps float64) {
	n := x.H * x.W
	for c := 0; c < x.C; c++ {
		inv := 1 / math.Sqrt(variance[c]+eps)
		for i := c * n; i < (c+1)*n; i++ {
			x.Data[i] = (x.Data[i]-mean[c])*inv*gamma[c] + beta[c]
		}
	}
}

// ReLU sets negative values to zero, in place.
func ReLU(x Planes) {
	for i, v := range x.Data {
		if v < 0 {
			x.Data[i] = 0
		}
	}
}

// Add adds y to x element-wise, in place.
func Add(x, y Planes) {
	if x.Shape != y.Shape {
		panic(fmt.Sprintf("resnet: Add: shapes %v and %v", x.Shape, y.Shape))
	}
	for i := range x.Data {
		x.Data[i] += y.Data[i]
	}
}

// MaxPool takes the maximum over each k×k window; padded taps are ignored
// (PyTorch pads max pooling with −inf).
func MaxPool(in Planes, k, stride, pad int) Planes {
	out := NewPlanes(Shape{in.C, convOut(in.H, k, stride, pad), convOut(in.W, k, stride, pad)})
	for c := 0; c < in.C; c++ {
		for y := 0; y < out.H; y++ {
			for x := 0; x < out.W; x++ {
				m := math.Inf(-1)
				for ky := 0; ky < k; ky++ {
					for kx := 0; kx < k; kx++ {
						iy, ix := y*stride-pad+ky, x*stride-pad+kx
						if iy >= 0 && iy < in.H && ix >= 0 && ix < in.W {
							m = math.Max(m, in.At(c, iy, ix))
						}
					}
				}
				out.Data[(c*out.H+y)*out.W+x] = m
			}
		}
	}
	return out
}

// GlobalAvgPool averages every channel plane to one value.
func GlobalAvgPool(in Planes) Planes {
	out := NewPlanes(Shape{in.C, 1, 1})
	n := in.H * in.W
	for c := 0; c < in.C; c++ {
		s := 0.0
		for _, v := range in.Data[c*n : (c+1)*n] {
			s += v
		}
		out.Data[c] = s / float64(n)
	}
	return out
}

// Linear computes out[o] = Σ_i w[o][i]·in[i] + b[o]; w is [len(b), len(in)].
func Linear(in []float64, w, b []float64) []float64 {
	if len(w) != len(b)*len(in) {
		panic(fmt.Sprintf("resnet: Linear: %d weights for %d×%d", len(w), len(b), len(in)))
	}
	out := make([]float64, len(b))
	for o := range out {
		s := b[o]
		for i, v := range in {
			s += w[o*len(in)+i] * v
		}
		out[o] = s
	}
	return out
}

// SubsamplePad is the option-A shortcut: out = pad_C(x[:, ::s, ::s]) with
// (outC − in.C)/2 zero channels before and after the input's channels,
// exactly F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4)) for
// the CIFAR nets.
func SubsamplePad(in Planes, outC, stride int) Planes {
	out := NewPlanes(Shape{outC, convOut(in.H, 1, stride, 0), convOut(in.W, 1, stride, 0)})
	before := (outC - in.C) / 2
	for c := 0; c < in.C; c++ {
		for y := 0; y < out.H; y++ {
			for x := 0; x < out.W; x++ {
				out.Data[((before+c)*out.H+y)*out.W+x] = in.At(c, y*stride, x*stride)
			}
		}
	}
	return out
}

// Reference runs a network in float64 from its unfolded weights. It is safe
// for concurrent use: Forward keeps all its state on the stack.
type Reference struct {
	Net *Network
	w   map[string][]float64
}

// NewReference validates w against net and converts it to float64 once.
func NewReference(net *Network, w *Weights) (*Reference, error) {
	if err := w.Validate(net); err != nil {
		return nil, err
	}
	r := &Reference{Net: net, w: map[string][]float64{}}
	for _, s := range net.Tensors() {
		src := w.Tensors[s.Name].Data
		d := make([]float64, len(src))
		for i, v := range src {
			d[i] = float64(v)
		}
		r.w[s.Name] = d
	}
	return r, nil
}

// Forward returns the logits for one CHW image.
func (r *Reference) Forward(input []float32) ([]float64, error) {
	acts, err := r.Activations(input)
	if err != nil {
		return nil, err
	}
	return acts[r.Net.Output].Data, nil
}

// Activations runs the network and returns every value it computes, indexed
// like Network.Values, so tests can compare any single layer.
func (r *Reference) Activations(input []float32) ([]Planes, error) {
	n := r.Net
	if len(input) != n.Input().Len() {
		return nil, fmt.Errorf("%s: input has %d values, want %d (%v CHW)", n.Arch.Name, len(input), n.Input().Len(), n.Input())
	}
	v := make([]Planes, len(n.Values))
	v[0] = NewPlanes(n.Input())
	for i, x := range input {
		v[0].Data[i] = float64(x)
	}
	for _, l := range n.Layers {
		in := v[l.In]
		var out Planes
		switch l.Op {
		case OpConv:
			out = Conv2D(in, r.w[l.Weight], l.OutShape.C, l.Kernel, l.Stride, l.Pad)
			BatchNorm(out, r.w[l.BN+".weight"], r.w[l.BN+".bias"], r.w[l.BN+".running_mean"], r.w[l.BN+".running_var"], BNEpsilon)
			if l.Residual != NoValue {
				Add(out, v[l.Residual])
			}
			if l.ReLU {
				ReLU(out)
			}
		case OpMaxPool:
			out = MaxPool(in, l.Kernel, l.Stride, l.Pad)
		case OpGlobalAvgPool:
			out = GlobalAvgPool(in)
		case OpFC:
			out = Planes{l.OutShape, Linear(in.Data, r.w[l.Weight], r.w[l.Bias])}
		case OpShortcutA:
			out = SubsamplePad(in, l.OutShape.C, l.Stride)
		default:
			return nil, fmt.Errorf("%s: layer %s: unknown op %v", n.Arch.Name, l.Name, l.Op)
		}
		if out.Shape != l.OutShape {
			return nil, fmt.Errorf("%s: layer %s computed %v, layer list says %v", n.Arch.Name, l.Name, out.Shape, l.OutShape)
		}
		v[l.Out] = out
	}
	return v, nil
}
