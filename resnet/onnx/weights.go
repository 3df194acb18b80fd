package onnx

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/resnetgen/resnetgen/resnet"
)

// ReadFile reads the ONNX model at path, its initializers' values too.
func ReadFile(path string) (*Model, error) {
	var m *Model
	err := open(path, func(r io.ReaderAt, size int64) (err error) {
		if m, err = ReadModelAt(r, size); err == nil {
			err = m.readAll()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	m.r = nil
	return m, nil
}

// Load reads the ONNX model at path and returns its weights for net,
// reading from the file only the tensors' values it takes.
func Load(path string, net *resnet.Network) (*resnet.Weights, error) {
	var w *resnet.Weights
	err := open(path, func(r io.ReaderAt, size int64) error {
		m, err := ReadModelAt(r, size)
		if err != nil {
			return err
		}
		w, err = Weights(m, net)
		return err
	})
	return w, err
}

// open calls read with the file at path, prefixing its error with the path.
func open(path string, read func(r io.ReaderAt, size int64) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := read(f, st.Size()); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Weights takes the weights of a ResNet exported with torch.onnx.export.
// Two export styles are handled:
//
//   - BatchNorm kept as nodes: the initializers carry the state_dict names
//     (conv1.weight, bn1.running_var, …) and are taken by name.
//   - BatchNorm folded into the convolutions (the exporter's constant
//     folding): each Conv has a weight and a bias under generated names
//     (onnx::Conv_497). The Conv nodes, in graph order, are matched to the
//     network's convolutions in module order (within a block conv1, conv2,
//     conv3, then downsample, as the exporter traces forward()), and each
//     weight's shape is checked against its layer. The folded bias becomes a
//     BatchNorm with γ = 1, β = bias, mean 0 and var 1 − ε, which FoldBN
//     turns back into the same bias.
//
// In both styles the exporter stores identical tensors once (torch ≥ 1.13
// deduplicates initializers: an untrained network's BatchNorm ones and
// zeros, for instance) and hands the other names out through Identity
// nodes; those are followed back to their initializer.
func Weights(m *Model, net *resnet.Network) (*resnet.Weights, error) {
	x, err := Index(m, net)
	if err != nil {
		return nil, err
	}
	return x.Read(m.r)
}

// Index is Weights without reading any value: which tensor of m each of
// the weights is, with its shape (or the values it stands for, for the
// BatchNorm of a folded export), to be read from the model's file.
func Index(m *Model, net *resnet.Network) (*resnet.Index, error) {
	init := constants(m)
	x := resnet.NewIndex()
	from := func(t *Tensor) func(io.ReaderAt, []float32) error { return t.read }
	first := net.Layers[0]
	if _, named := init[first.Weight]; named {
		for _, name := range slices.Sorted(maps.Keys(init)) {
			// The exporter's own names ("onnx::Conv_497", "/fc/Constant")
			// are not the model's parameters.
			if strings.Contains(name, "::") || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "num_batches_tracked") {
				continue
			}
			// Each name, an Identity's too, is read into its own array.
			x.Add(name, init[name].Dims, from(init[name]))
		}
		return x, nil
	}
	var convs, gemms []Node
	for _, n := range m.Nodes {
		switch n.OpType {
		case "Conv":
			convs = append(convs, n)
		case "Gemm", "MatMul":
			gemms = append(gemms, n)
		case "BatchNormalization":
			return nil, fmt.Errorf("the graph keeps BatchNormalization nodes but its initializers are not named like a state_dict (no %s); export with the model's parameter names", first.Weight)
		}
	}
	layers := moduleOrder(net)
	if len(convs) != len(layers) {
		return nil, fmt.Errorf("the graph has %d Conv nodes, %s has %d convolutions: weights for another network?", len(convs), net.Arch.Name, len(layers))
	}
	tensor := func(n Node, i int, what string) (*Tensor, error) {
		if i >= len(n.Inputs) || init[n.Inputs[i]] == nil {
			return nil, fmt.Errorf("%s node %q: its %s is not an initializer", n.OpType, n.Name, what)
		}
		return init[n.Inputs[i]], nil
	}
	fill := func(v float32) func(io.ReaderAt, []float32) error {
		return func(_ io.ReaderAt, dst []float32) error {
			for i := range dst {
				dst[i] = v
			}
			return nil
		}
	}
	for i, l := range layers {
		n := convs[i]
		wt, err := tensor(n, 1, "weight")
		if err != nil {
			return nil, err
		}
		want := []int{l.OutShape.C, l.InShape.C, l.Kernel, l.Kernel}
		if fmt.Sprint(wt.Dims) != fmt.Sprint(want) {
			return nil, fmt.Errorf("Conv node %d (%q) has a %v weight, layer %s of %s wants %v", i, n.Name, wt.Dims, l.Name, net.Arch.Name, want)
		}
		c := l.OutShape.C
		bias := fill(0)
		if len(n.Inputs) > 2 {
			bt, err := tensor(n, 2, "bias")
			if err != nil {
				return nil, err
			}
			if bt.Len() != c {
				return nil, fmt.Errorf("Conv node %d (%q) has %d biases, layer %s wants %d", i, n.Name, bt.Len(), l.Name, c)
			}
			bias = from(bt)
		}
		x.Add(l.Weight, want, from(wt))
		x.Add(l.BN+".weight", []int{c}, fill(1))
		x.Add(l.BN+".bias", []int{c}, bias)
		x.Add(l.BN+".running_mean", []int{c}, fill(0))
		x.Add(l.BN+".running_var", []int{c}, fill(float32(1-resnet.BNEpsilon)))
	}
	fc := net.Layers[len(net.Layers)-1]
	if len(gemms) != 1 {
		return nil, fmt.Errorf("the graph has %d Gemm nodes, want 1 (the classifier)", len(gemms))
	}
	g := gemms[0]
	if g.OpType != "Gemm" || g.Attrs["transB"].Int != 1 || len(g.Inputs) < 3 {
		return nil, fmt.Errorf("classifier node %q: want Gemm(x, W, b) with transB=1 as torch exports nn.Linear", g.Name)
	}
	wt, err := tensor(g, 1, "weight")
	if err != nil {
		return nil, err
	}
	bt, err := tensor(g, 2, "bias")
	if err != nil {
		return nil, err
	}
	x.Add(fc.Weight, wt.Dims, from(wt))
	x.Add(fc.Bias, bt.Dims, from(bt))
	return x, nil
}

// constants maps every value that holds a constant tensor to it: the
// initializers, and the outputs of Identity nodes whose input is one.
func constants(m *Model) map[string]*Tensor {
	init := map[string]*Tensor{}
	for i := range m.Initializers {
		init[m.Initializers[i].Name] = &m.Initializers[i]
	}
	// Identity chains are followed to any depth, whatever the node order.
	for changed := true; changed; {
		changed = false
		for _, n := range m.Nodes {
			if n.OpType != "Identity" || len(n.Inputs) != 1 || len(n.Output) != 1 {
				continue
			}
			if t, ok := init[n.Inputs[0]]; ok {
				if _, done := init[n.Output[0]]; !done {
					init[n.Output[0]] = t
					changed = true
				}
			}
		}
	}
	return init
}

// moduleOrder lists the conv layers in the order torch.onnx traces them:
// the layer list's order, except that a block's projection shortcut comes
// after the block's other convolutions (torchvision computes it last).
func moduleOrder(net *resnet.Network) []resnet.Layer {
	var out []resnet.Layer
	var held *resnet.Layer
	block := func(name string) string {
		parts := strings.SplitN(name, ".", 3)
		if len(parts) < 3 {
			return name
		}
		return parts[0] + "." + parts[1]
	}
	for i := range net.Layers {
		l := net.Layers[i]
		if held != nil && block(l.Name) != block(held.Name) {
			out = append(out, *held)
			held = nil
		}
		if l.Op != resnet.OpConv {
			continue
		}
		if strings.Contains(l.Name, ".downsample.") {
			held = &net.Layers[i]
			continue
		}
		out = append(out, l)
	}
	if held != nil {
		out = append(out, *held)
	}
	return out
}

// Classes returns the number of outputs of the model's classifier: the
// initializer fcName.weight of an export with BatchNorm nodes, or the
// weight of its single Gemm node; 0 if there is neither.
func Classes(m *Model, fcName string) int {
	init := constants(m)
	if t, ok := init[fcName+".weight"]; ok && len(t.Dims) == 2 {
		return t.Dims[0]
	}
	var gemm *Node
	for i := range m.Nodes {
		if m.Nodes[i].OpType == "Gemm" {
			if gemm != nil {
				return 0
			}
			gemm = &m.Nodes[i]
		}
	}
	if gemm == nil || len(gemm.Inputs) < 2 {
		return 0
	}
	if t, ok := init[gemm.Inputs[1]]; ok && len(t.Dims) == 2 {
		return t.Dims[0]
	}
	return 0
}

// InputSize returns the height and width of the model's image input: its
// first input that is not an initializer, declared N×3×H×W with H and W
// fixed. ok is false if there is no such input.
func InputSize(m *Model) (h, w int, ok bool) {
	init := constants(m)
	for _, name := range m.Inputs {
		if _, isInit := init[name]; isInit {
			continue
		}
		d := m.InputDims[name]
		if len(d) == 4 && d[1] == 3 && d[2] > 0 && d[3] > 0 {
			return d[2], d[3], true
		}
		return 0, 0, false
	}
	return 0, 0, false
}
