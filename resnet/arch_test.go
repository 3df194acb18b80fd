package resnet

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func build(t *testing.T, name string, edit func(*Arch)) *Network {
	t.Helper()
	a, err := Lookup(name)
	require.NoError(t, err)
	if edit != nil {
		edit(&a)
	}
	n, err := Build(a)
	require.NoError(t, err)
	return n
}

// The figures are the issue's: conv + fc multiply-adds, and the parameter
// counts torchvision reports for its models.
func TestTable1MACsAndParams(t *testing.T) {
	for _, c := range []struct {
		name        string
		v1, v15     string // ×10^9, three decimals
		params      int64
		paperFLOPs  float64
		convLayers  int // weighted layers on the main path: the depth in the name
		downsamples int // projection shortcuts (option B)
	}{
		{"resnet18", "1.814", "1.814", 11689512, 1.8e9, 18, 3},
		{"resnet34", "3.664", "3.664", 21797672, 3.6e9, 34, 3},
		{"resnet50", "3.858", "4.089", 25557032, 3.8e9, 50, 4},
		{"resnet101", "7.570", "7.801", 44549160, 7.6e9, 101, 4},
		{"resnet152", "11.282", "11.514", 60192808, 11.3e9, 152, 4},
	} {
		v15 := build(t, c.name, nil)
		v1 := build(t, c.name, func(a *Arch) { a.Variant = V1 })
		assert.Equal(t, c.v1, fmt.Sprintf("%.3f", float64(v1.MACs())/1e9), c.name+" v1")
		assert.Equal(t, c.v15, fmt.Sprintf("%.3f", float64(v15.MACs())/1e9), c.name+" v1.5")
		assert.Equal(t, c.params, v15.Params(), c.name)
		assert.Equal(t, c.params, v1.Params(), c.name+": the variant moves a stride, not parameters")
		assert.Equal(t, c.paperFLOPs, v15.Arch.PaperFLOPs, c.name)
		assert.InDelta(t, c.paperFLOPs, float64(v1.MACs()), 0.07e9, "%s: v1 matches Table 1's one-decimal figure (which truncates 3.66 and 3.86)", c.name)
		main, down := 0, 0
		for _, l := range v15.Layers {
			switch {
			case strings.Contains(l.Name, "downsample"):
				down++
			case l.Op == OpConv || l.Op == OpFC:
				main++
			}
		}
		assert.Equal(t, c.convLayers, main, c.name)
		assert.Equal(t, c.downsamples, down, c.name)
	}
}

// Table 1's output sizes: conv1 112, conv2_x 56, conv3_x 28, conv4_x 14, conv5_x 7.
func TestTable1Shapes(t *testing.T) {
	lastOfStage := func(n *Network, stage int) Shape {
		var s Shape
		for _, l := range n.Layers {
			if strings.HasPrefix(l.Name, fmt.Sprintf("layer%d.", stage)) {
				s = l.OutShape
			}
		}
		return s
	}
	for name, widths := range map[string][]int{
		"resnet18": {64, 128, 256, 512}, "resnet34": {64, 128, 256, 512},
		"resnet50": {256, 512, 1024, 2048}, "resnet101": {256, 512, 1024, 2048}, "resnet152": {256, 512, 1024, 2048},
	} {
		for _, variant := range []Variant{V1, V1_5} {
			n := build(t, name, func(a *Arch) { a.Variant = variant })
			require.Equal(t, Shape{3, 224, 224}, n.Input())
			assert.Equal(t, "conv1", n.Layers[0].Name)
			assert.Equal(t, Shape{64, 112, 112}, n.Layers[0].OutShape)
			assert.Equal(t, 7, n.Layers[0].Kernel)
			assert.Equal(t, 2, n.Layers[0].Stride)
			assert.Equal(t, 3, n.Layers[0].Pad)
			assert.Equal(t, OpMaxPool, n.Layers[1].Op)
			assert.Equal(t, Shape{64, 56, 56}, n.Layers[1].OutShape)
			for s, size := range []int{56, 28, 14, 7} {
				assert.Equal(t, Shape{widths[s], size, size}, lastOfStage(n, s+1), "%s %v stage %d", name, variant, s+1)
			}
			fc := n.Layers[len(n.Layers)-1]
			assert.Equal(t, OpFC, fc.Op)
			assert.Equal(t, Shape{1000, 1, 1}, n.Values[n.Output])
			assert.Equal(t, widths[3], fc.InShape.C)
		}
	}
}

func TestBottleneckStridePlacement(t *testing.T) {
	layer := func(n *Network, name string) Layer {
		for _, l := range n.Layers {
			if l.Name == name {
				return l
			}
		}
		t.Fatalf("%s has no layer %s", n.Arch.Name, name)
		return Layer{}
	}
	v15 := MustBuild("resnet50")
	v1 := MustBuild("resnet50v1")
	for _, stage := range []int{2, 3, 4} {
		p := fmt.Sprintf("layer%d.0.", stage)
		assert.Equal(t, 1, layer(v15, p+"conv1").Stride)
		assert.Equal(t, 2, layer(v15, p+"conv2").Stride)
		assert.Equal(t, 2, layer(v1, p+"conv1").Stride)
		assert.Equal(t, 1, layer(v1, p+"conv2").Stride)
		assert.Equal(t, 2, layer(v1, p+"downsample.0").Stride)
		assert.Equal(t, 2, layer(v15, p+"downsample.0").Stride)
	}
	assert.Equal(t, 1, layer(v15, "layer1.0.conv2").Stride, "conv2_x follows the max pool: no stride")
	assert.Equal(t, Shape{256, 56, 56}, layer(v15, "layer1.0.downsample.0").OutShape, "64→256 needs a projection")
}

func TestShortcutOptions(t *testing.T) {
	count := func(n *Network) (projections, optionA, residual int) {
		for _, l := range n.Layers {
			switch {
			case strings.HasSuffix(l.Name, "downsample.0"):
				projections++
			case l.Op == OpShortcutA:
				optionA++
			}
			if l.Residual != NoValue {
				residual++
			}
		}
		return
	}
	for _, c := range []struct {
		name                  string
		opt                   Shortcut
		proj, optA, residuals int
	}{
		{"resnet18", ShortcutA, 0, 3, 8},
		{"resnet18", ShortcutB, 3, 0, 8},
		{"resnet18", ShortcutC, 8, 0, 8},
		{"resnet50", ShortcutA, 0, 4, 16},
		{"resnet50", ShortcutB, 4, 0, 16},
		{"resnet50", ShortcutC, 16, 0, 16},
		{"resnet34", NoShortcut, 0, 0, 0},
	} {
		n := build(t, c.name, func(a *Arch) { a.Shortcut = c.opt })
		p, a, r := count(n)
		assert.Equal(t, [3]int{c.proj, c.optA, c.residuals}, [3]int{p, a, r}, "%s option %v", c.name, c.opt)
	}
	plain := MustBuild("plain34")
	resnet := MustBuild("resnet34")
	assert.Equal(t, NoShortcut, plain.Arch.Shortcut)
	assert.Equal(t, resnet.MACs()-projectionMACs(resnet), plain.MACs(), "plain-34 is ResNet-34 without its projections")
}

// projectionMACs sums the MACs of the projection shortcuts.
func projectionMACs(n *Network) int64 {
	var m int64
	for _, l := range n.Layers {
		if strings.Contains(l.Name, "downsample") {
			m += l.MACs()
		}
	}
	return m
}

// The CIFAR figures are those of ../shared/data/cifar10-resnet/README.md
// (tensor and parameter counts of the published checkpoints) and the
// paper's Table 6 (0.27M … 19.4M parameters).
func TestCIFARNets(t *testing.T) {
	for _, c := range []struct {
		depth, tensors int
		params         int64
	}{{20, 97, 269722}, {32, 157, 464154}, {44, 217, 658586}, {56, 277, 853018}, {110, 547, 1727962}, {1202, 6007, 19421274}} {
		n := MustBuild(fmt.Sprintf("cifar-resnet%d", c.depth))
		assert.Len(t, n.Tensors(), c.tensors, "resnet%d", c.depth)
		assert.Equal(t, c.params, n.Params(), "resnet%d", c.depth)
		weighted, optionA := 0, 0
		for _, l := range n.Layers {
			switch l.Op {
			case OpConv, OpFC:
				weighted++
			case OpShortcutA:
				optionA++
				assert.Contains(t, []string{"layer2.0.shortcut", "layer3.0.shortcut"}, l.Name)
				assert.Equal(t, 2, l.Stride)
			}
		}
		assert.Equal(t, c.depth, weighted, "6n+2 weighted layers")
		assert.Equal(t, 2, optionA)
		assert.Equal(t, Shape{3, 32, 32}, n.Input())
		assert.Equal(t, Shape{16, 32, 32}, n.Layers[0].OutShape)
		assert.Equal(t, "linear.weight", n.Layers[len(n.Layers)-1].Weight)
		assert.Equal(t, Shape{64, 8, 8}, n.Layers[len(n.Layers)-2].InShape)
	}
}

// Every value is written once, by a layer that reads only earlier values,
// and its recorded shape is what the layer produces.
func TestLayerListIsWellFormed(t *testing.T) {
	for _, name := range Names() {
		n := MustBuild(name)
		written := make([]bool, len(n.Values))
		written[0] = true
		for _, l := range n.Layers {
			require.True(t, written[l.In], "%s: %s reads value %d before it is written", name, l.Name, l.In)
			if l.Residual != NoValue {
				require.True(t, written[l.Residual], "%s: %s adds value %d before it is written", name, l.Name, l.Residual)
				require.Equal(t, l.OutShape, n.Values[l.Residual], "%s: %s residual shape", name, l.Name)
			}
			require.False(t, written[l.Out], "%s: value %d written twice", name, l.Out)
			written[l.Out] = true
			require.Equal(t, n.Values[l.In], l.InShape, "%s %s", name, l.Name)
			require.Equal(t, n.Values[l.Out], l.OutShape, "%s %s", name, l.Name)
		}
		for v, w := range written {
			require.True(t, w, "%s: value %d never written", name, v)
		}
	}
}

func TestLookup(t *testing.T) {
	_, err := Lookup("resnet51")
	require.ErrorContains(t, err, `unknown architecture "resnet51"`)
	assert.ErrorContains(t, err, "cifar-resnet20")
	a, err := Lookup("resnet50")
	require.NoError(t, err)
	a.Blocks[0] = 99
	b, _ := Lookup("resnet50")
	assert.Equal(t, 3, b.Blocks[0], "Lookup returns a copy")
	for _, name := range []string{"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet50v1",
		"resnet101v1", "resnet152v1", "plain18", "plain34", "cifar-resnet20", "cifar-resnet32", "cifar-resnet44",
		"cifar-resnet56", "cifar-resnet110", "cifar-resnet1202"} {
		assert.Contains(t, Names(), name)
	}
	bad := a
	bad.Widths = bad.Widths[:2]
	_, err = Build(bad)
	assert.ErrorContains(t, err, "4 stage block counts for 2 widths")
	odd, _ := Lookup("cifar-resnet20")
	odd.Widths = []int{16, 33, 64}
	_, err = Build(odd)
	assert.ErrorContains(t, err, "cannot pad evenly")
}
