package onnx

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/shape"
)

// nodeTests is where Debian's libonnx-testdata puts ONNX's backend node
// tests (.ci/run installs it).
const nodeTests = "/usr/share/libonnx-testdata/data/node"

// ops are the ONNX operators a ResNet is made of.
var ops = map[string]bool{"Conv": true, "MaxPool": true, "BatchNormalization": true, "Relu": true, "Add": true,
	"Gemm": true, "GlobalAveragePool": true, "AveragePool": true, "Flatten": true}

// errUnsupported marks a case that uses an attribute or form our ops do not
// implement; the test lists it with the reason.
type errUnsupported string

func (e errUnsupported) Error() string { return string(e) }

func ints(n Node, name string, def []int64) []int64 {
	if a, ok := n.Attrs[name]; ok && a.Ints != nil {
		return a.Ints
	}
	return def
}

func intAttr(n Node, name string, def int64) int64 {
	if a, ok := n.Attrs[name]; ok {
		return a.Int
	}
	return def
}

func allEqual(xs []int64, v int64) bool {
	for _, x := range xs {
		if x != v {
			return false
		}
	}
	return true
}

// image returns image i of an NCHW tensor as float64 planes.
func image(t *Tensor, i int) resnet.Planes {
	s := resnet.Shape{C: t.Dims[1], H: t.Dims[2], W: t.Dims[3]}
	p := resnet.NewPlanes(s)
	for j := range p.Data {
		p.Data[j] = float64(t.Float[i*s.Len()+j])
	}
	return p
}

func f64(xs []float32) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

// spatial checks the attributes of a 2-D window op and returns its square
// kernel, stride and symmetric padding.
func spatial(n Node, x *Tensor) (k, s, p int, err error) {
	if len(x.Dims) != 4 {
		return 0, 0, 0, errUnsupported(fmt.Sprintf("%d-D input (only 2-D images)", len(x.Dims)-2))
	}
	if ap := n.Attrs["auto_pad"].String; ap != "" && ap != "NOTSET" {
		return 0, 0, 0, errUnsupported("auto_pad " + ap)
	}
	ks := ints(n, "kernel_shape", nil)
	if ks == nil && n.OpType == "Conv" {
		return 0, 0, 0, errUnsupported("kernel_shape inferred from W")
	}
	if len(ks) != 2 || ks[0] != ks[1] {
		return 0, 0, 0, errUnsupported(fmt.Sprintf("kernel_shape %v (only square)", ks))
	}
	st := ints(n, "strides", []int64{1, 1})
	if len(st) != 2 || st[0] != st[1] {
		return 0, 0, 0, errUnsupported(fmt.Sprintf("strides %v (only equal)", st))
	}
	pads := ints(n, "pads", []int64{0, 0, 0, 0})
	if len(pads) != 4 || !allEqual(pads, pads[0]) {
		return 0, 0, 0, errUnsupported(fmt.Sprintf("pads %v (only symmetric)", pads))
	}
	if d := ints(n, "dilations", nil); d != nil && !allEqual(d, 1) {
		return 0, 0, 0, errUnsupported(fmt.Sprintf("dilations %v", d))
	}
	if intAttr(n, "ceil_mode", 0) != 0 {
		return 0, 0, 0, errUnsupported("ceil_mode 1")
	}
	if intAttr(n, "group", 1) != 1 {
		return 0, 0, 0, errUnsupported("group convolution")
	}
	return int(ks[0]), int(st[0]), int(pads[0]), nil
}

// run computes a node with resnet's reference ops (and, for single-image
// convolutions, asm's portable kernel too) and returns its output.
func run(n Node, in []*Tensor) (ref []float64, kernel []float32, err error) {
	x := in[0]
	if x.Type != "float" {
		return nil, nil, errUnsupported(x.Type + " input (only float)")
	}
	if len(n.Output) != 1 {
		return nil, nil, errUnsupported(fmt.Sprintf("%d outputs", len(n.Output)))
	}
	switch n.OpType {
	case "Conv":
		k, s, p, err := spatial(n, x)
		if err != nil {
			return nil, nil, err
		}
		w := in[1]
		outC := w.Dims[0]
		for i := 0; i < x.Dims[0]; i++ {
			o := resnet.Conv2D(image(x, i), f64(w.Float), outC, k, s, p)
			if len(in) > 2 {
				for c := 0; c < outC; c++ {
					for j := c * o.H * o.W; j < (c+1)*o.H*o.W; j++ {
						o.Data[j] += float64(in[2].Float[c])
					}
				}
			}
			ref = append(ref, o.Data...)
			if x.Dims[0] == 1 {
				kernel, err = convKernel(x, w, in, k, s, p, o.Shape)
				if err != nil {
					return nil, nil, err
				}
			}
		}
	case "MaxPool":
		k, s, p, err := spatial(n, x)
		if err != nil {
			return nil, nil, err
		}
		if intAttr(n, "storage_order", 0) != 0 {
			return nil, nil, errUnsupported("storage_order 1")
		}
		for i := 0; i < x.Dims[0]; i++ {
			ref = append(ref, resnet.MaxPool(image(x, i), k, s, p).Data...)
		}
	case "AveragePool":
		return nil, nil, errUnsupported("windowed average pooling is not an op of the family (only the global one)")
	case "GlobalAveragePool":
		if len(x.Dims) != 4 {
			return nil, nil, errUnsupported(fmt.Sprintf("%d-D input", len(x.Dims)-2))
		}
		for i := 0; i < x.Dims[0]; i++ {
			ref = append(ref, resnet.GlobalAvgPool(image(x, i)).Data...)
		}
	case "BatchNormalization":
		if intAttr(n, "training_mode", 0) != 0 {
			return nil, nil, errUnsupported("training_mode 1 (inference only)")
		}
		if len(x.Dims) != 4 {
			return nil, nil, errUnsupported(fmt.Sprintf("%d-D input", len(x.Dims)))
		}
		eps := 1e-5
		if a, ok := n.Attrs["epsilon"]; ok {
			eps = float64(a.Float)
		}
		for i := 0; i < x.Dims[0]; i++ {
			p := image(x, i)
			resnet.BatchNorm(p, f64(in[1].Float), f64(in[2].Float), f64(in[3].Float), f64(in[4].Float), eps)
			ref = append(ref, p.Data...)
		}
	case "Relu":
		p := resnet.Planes{Shape: resnet.Shape{C: 1, H: 1, W: len(x.Float)}, Data: f64(x.Float)}
		resnet.ReLU(p)
		ref = p.Data
	case "Add":
		if !equalDims(x.Dims, in[1].Dims) {
			return nil, nil, errUnsupported(fmt.Sprintf("broadcast %v + %v (residual adds have equal shapes)", x.Dims, in[1].Dims))
		}
		if in[1].Type != "float" {
			return nil, nil, errUnsupported(in[1].Type + " input")
		}
		p := resnet.Planes{Shape: resnet.Shape{C: 1, H: 1, W: len(x.Float)}, Data: f64(x.Float)}
		resnet.Add(p, resnet.Planes{Shape: p.Shape, Data: f64(in[1].Float)})
		ref = p.Data
	case "Gemm":
		if a := n.Attrs["alpha"]; a.Float != 0 && a.Float != 1 {
			return nil, nil, errUnsupported(fmt.Sprintf("alpha %v", a.Float))
		}
		if b, ok := n.Attrs["beta"]; ok && b.Float != 1 {
			return nil, nil, errUnsupported(fmt.Sprintf("beta %v", b.Float))
		}
		if intAttr(n, "transA", 0) != 0 {
			return nil, nil, errUnsupported("transA 1")
		}
		b := in[1]
		m, kk, nOut := x.Dims[0], x.Dims[1], b.Dims[1]
		w := f64(b.Float) // W must be [out][in]: B is [in][out] unless transB
		if intAttr(n, "transB", 0) == 0 {
			w = make([]float64, len(b.Float))
			for i := 0; i < kk; i++ {
				for j := 0; j < nOut; j++ {
					w[j*kk+i] = float64(b.Float[i*nOut+j])
				}
			}
		} else {
			nOut = b.Dims[0]
		}
		bias := make([]float64, nOut)
		if len(in) > 2 {
			c := in[2]
			if !(len(c.Dims) == 1 && c.Dims[0] == nOut || len(c.Dims) == 2 && c.Dims[0] == 1 && c.Dims[1] == nOut) {
				return nil, nil, errUnsupported(fmt.Sprintf("bias of shape %v (the classifier's is a vector of %d)", c.Dims, nOut))
			}
			bias = f64(c.Float)
		}
		for i := 0; i < m; i++ {
			ref = append(ref, resnet.Linear(f64(x.Float[i*kk:(i+1)*kk]), w, bias)...)
		}
	case "Flatten":
		// resnetgen never reorders data to flatten: the pooled C×1×1 value
		// is read as a vector in place. Flatten's result must be its input.
		ref = f64(x.Float)
	default:
		return nil, nil, errUnsupported("operator " + n.OpType)
	}
	return ref, kernel, nil
}

// convKernel runs asm's portable convolution kernel (the one that takes any
// shape) on a single-image node test.
func convKernel(x, w *Tensor, in []*Tensor, k, s, p int, out resnet.Shape) ([]float32, error) {
	shape := shape.Conv{K: k, Stride: s, Pad: p, InC: x.Dims[1], OutC: out.C, InH: x.Dims[2], InW: x.Dims[3], OutH: out.H, OutW: out.W}
	kern, err := asm.PortableConv(shape)
	if err != nil {
		return nil, err
	}
	packed, err := kern.PackWeights(w.Float)
	if err != nil {
		return nil, err
	}
	bias := make([]float32, out.C)
	if len(in) > 2 {
		copy(bias, in[2].Float)
	}
	src := asm.NewBuffer(x.Dims[2], x.Dims[3], x.Dims[1], p)
	for c := 0; c < x.Dims[1]; c++ {
		for y := 0; y < x.Dims[2]; y++ {
			for xx := 0; xx < x.Dims[3]; xx++ {
				src.Data[src.Index(y, xx, c)] = x.Float[(c*x.Dims[2]+y)*x.Dims[3]+xx]
			}
		}
	}
	dst := asm.NewBuffer(out.H, out.W, out.C, 0)
	if err := kern.Run(src, dst, nil, packed, bias, false); err != nil {
		return nil, err
	}
	chw := make([]float32, out.Len())
	for c := 0; c < out.C; c++ {
		for y := 0; y < out.H; y++ {
			for xx := 0; xx < out.W; xx++ {
				chw[(c*out.H+y)*out.W+xx] = dst.Data[dst.Index(y, xx, c)]
			}
		}
	}
	return chw, nil
}

func equalDims(a, b []int) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func readPB(t *testing.T, path string) *Tensor {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	x, err := ReadTensor(b)
	require.NoError(t, err, path)
	return x
}

// TestONNXNodeTests runs every ONNX backend node test of the operators a
// ResNet uses through resnet's reference ops (and, for the single-image
// convolutions, asm's portable kernel), and compares with ONNX's expected
// outputs: |got − want| ≤ 1e-5 · max(1, max|want|). Cases with an
// attribute our ops do not implement are listed with the reason.
func TestONNXNodeTests(t *testing.T) {
	dirs, err := os.ReadDir(nodeTests)
	require.NoError(t, err, "ONNX's node tests must be at %s: apt-get install libonnx-testdata (.ci/run does)", nodeTests)
	var ran, skipped []string
	for _, d := range dirs {
		dir := filepath.Join(nodeTests, d.Name())
		b, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
		if err != nil {
			continue
		}
		m, err := ReadModel(b)
		require.NoError(t, err, d.Name())
		if len(m.Nodes) != 1 || !ops[m.Nodes[0].OpType] {
			continue
		}
		node := m.Nodes[0]
		sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
		require.NotEmpty(t, sets, d.Name())
		var reason string
		for _, set := range sets {
			var in []*Tensor
			for i := 0; ; i++ {
				p := filepath.Join(set, fmt.Sprintf("input_%d.pb", i))
				if _, err := os.Stat(p); err != nil {
					break
				}
				in = append(in, readPB(t, p))
			}
			want := readPB(t, filepath.Join(set, "output_0.pb"))
			got, kernel, err := run(node, in)
			if u, ok := err.(errUnsupported); ok {
				reason = string(u)
				break
			}
			require.NoError(t, err, d.Name())
			require.Len(t, got, len(want.Float), "%s: output size", d.Name())
			scale := 1.0
			for _, v := range want.Float {
				scale = math.Max(scale, math.Abs(float64(v)))
			}
			for i := range got {
				require.InDelta(t, float64(want.Float[i]), got[i], 1e-5*scale, "%s (%s) element %d", d.Name(), node.OpType, i)
			}
			for i := range kernel {
				require.InDelta(t, float64(want.Float[i]), float64(kernel[i]), 1e-5*scale, "%s: asm kernel, element %d", d.Name(), i)
			}
			if kernel != nil {
				reason = "+kernel"
			}
		}
		switch {
		case reason == "" || reason == "+kernel":
			label := d.Name()
			if reason != "" {
				label += " (reference and asm kernel)"
			}
			ran = append(ran, label)
		default:
			skipped = append(skipped, fmt.Sprintf("%s: %s", d.Name(), reason))
		}
	}
	sort.Strings(ran)
	sort.Strings(skipped)
	t.Logf("ran %d ONNX node tests:\n  %s", len(ran), strings.Join(ran, "\n  "))
	t.Logf("did not run %d (unsupported attributes):\n  %s", len(skipped), strings.Join(skipped, "\n  "))
	require.GreaterOrEqual(t, len(ran), 20, "the node tests that apply to our ops")
}
