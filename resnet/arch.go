package resnet

import (
	"fmt"
	"sort"
	"strings"
)

// Block is the residual unit a network is built from.
type Block int

const (
	// Basic is two 3x3 convolutions (ResNet-18/34, the CIFAR nets).
	Basic Block = iota
	// Bottleneck is 1x1 reduce, 3x3, 1x1 expand by 4 (ResNet-50/101/152).
	Bottleneck
)

// Shortcut selects how a block's input reaches its output, following the
// options of the paper's Table 3.
type Shortcut int

const (
	// ShortcutB uses the identity where shapes match and a 1x1 projection
	// (conv + BN) where the stride or the channel count changes. The paper's
	// default for ImageNet and torchvision's.
	ShortcutB Shortcut = iota
	// ShortcutA uses a parameter-free identity: where the shape changes the
	// input is subsampled by the stride (x[:, :, ::s, ::s]) and zero-padded
	// with (out-in)/2 channels on each side of the channel axis.
	ShortcutA
	// ShortcutC uses a 1x1 projection in every block.
	ShortcutC
	// NoShortcut makes the plain baseline: the same layers, no addition.
	NoShortcut
)

func (s Shortcut) String() string {
	switch s {
	case ShortcutA:
		return "A"
	case ShortcutB:
		return "B"
	case ShortcutC:
		return "C"
	case NoShortcut:
		return "none"
	}
	return fmt.Sprintf("Shortcut(%d)", int(s))
}

// Variant places the stride of a downsampling bottleneck block.
type Variant int

const (
	// V1_5 puts the stride on the 3x3 convolution (torchvision).
	V1_5 Variant = iota
	// V1 puts the stride on the first 1x1 convolution (the paper).
	V1
)

func (v Variant) String() string {
	if v == V1 {
		return "v1"
	}
	return "v1.5"
}

// Arch describes one network of the family. Build turns it into the layer
// list that every other part of resnetgen consumes.
type Arch struct {
	Name     string
	Block    Block
	Blocks   []int // residual blocks per stage
	Widths   []int // per stage: the 3x3 width; a bottleneck outputs 4× this
	Shortcut Shortcut
	Variant  Variant // bottleneck stride placement; ignored for basic blocks

	InputH       int // input height, pixels
	InputW       int // input width, pixels
	StemKernel   int // 7 (ImageNet, stride 2, then max pool) or 3 (CIFAR, stride 1)
	StemChannels int
	Classes      int
	FCName       string // checkpoint prefix of the classifier: "fc" or "linear"

	// PaperFLOPs is the multiply-add count the paper's Table 1 reports, 0 if none.
	PaperFLOPs float64
}

// imagenet returns Table 1's shape for a depth.
func imagenet(name string, block Block, blocks []int, paper float64) Arch {
	return Arch{
		Name: name, Block: block, Blocks: blocks, Widths: []int{64, 128, 256, 512},
		Shortcut: ShortcutB, Variant: V1_5,
		InputH: 224, InputW: 224, StemKernel: 7, StemChannels: 64, Classes: 1000, FCName: "fc",
		PaperFLOPs: paper,
	}
}

// cifar returns the 6n+2-layer CIFAR-10 network of the paper's Section 4.2.
func cifar(depth int) Arch {
	n := (depth - 2) / 6
	return Arch{
		Name: fmt.Sprintf("cifar-resnet%d", depth), Block: Basic, Blocks: []int{n, n, n},
		Widths: []int{16, 32, 64}, Shortcut: ShortcutA, Variant: V1_5,
		InputH: 32, InputW: 32, StemKernel: 3, StemChannels: 16, Classes: 10, FCName: "linear",
	}
}

func v1(a Arch) Arch {
	a.Name += "v1"
	a.Variant = V1
	return a
}

func plain(a Arch) Arch {
	a.Name = strings.Replace(a.Name, "resnet", "plain", 1)
	a.Shortcut = NoShortcut
	return a
}

var catalog = func() map[string]Arch {
	r18 := imagenet("resnet18", Basic, []int{2, 2, 2, 2}, 1.8e9)
	r34 := imagenet("resnet34", Basic, []int{3, 4, 6, 3}, 3.6e9)
	r50 := imagenet("resnet50", Bottleneck, []int{3, 4, 6, 3}, 3.8e9)
	r101 := imagenet("resnet101", Bottleneck, []int{3, 4, 23, 3}, 7.6e9)
	r152 := imagenet("resnet152", Bottleneck, []int{3, 8, 36, 3}, 11.3e9)
	all := []Arch{r18, r34, r50, r101, r152, v1(r50), v1(r101), v1(r152), plain(r18), plain(r34)}
	for _, d := range []int{20, 32, 44, 56, 110, 1202} {
		all = append(all, cifar(d))
	}
	m := make(map[string]Arch, len(all))
	for _, a := range all {
		m[a.Name] = a
	}
	return m
}()

// ImageNetDepths lists the five networks of Table 1 (v1.5 for the bottleneck ones).
var ImageNetDepths = []string{"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}

// Names lists every architecture Lookup knows, sorted.
func Names() []string {
	names := make([]string, 0, len(catalog))
	for n := range catalog {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the architecture called name (see Names). The returned Arch
// is a copy: changing its Shortcut or Variant makes a new variant.
func Lookup(name string) (Arch, error) {
	a, ok := catalog[name]
	if !ok {
		return Arch{}, fmt.Errorf("unknown architecture %q; known: %s", name, strings.Join(Names(), ", "))
	}
	a.Blocks = append([]int(nil), a.Blocks...)
	a.Widths = append([]int(nil), a.Widths...)
	return a, nil
}

// MustBuild looks up and builds a catalogued network; it panics on an
// unknown name and is meant for tests and package-level tables.
func MustBuild(name string) *Network {
	a, err := Lookup(name)
	if err != nil {
		panic(err)
	}
	n, err := Build(a)
	if err != nil {
		panic(err)
	}
	return n
}

// MaxClasses bounds Arch.Classes: a classifier larger than this is a typo,
// not a network (ImageNet-21k has 21,841 classes).
const MaxClasses = 1 << 20

// MaxInputSide bounds InputH and InputW. ResNet-50's activations at 4096×4096
// take about 7 GB; beyond that a typo is likelier than an image.
const MaxInputSide = 4096

// Downsampling is how many times the network halves its input: the
// stride-2 stem convolution and max pool of the ImageNet networks, and the
// first block of every stage after the first.
func (a Arch) Downsampling() int {
	n := len(a.Blocks) - 1
	if a.StemKernel == 7 {
		n += 2
	}
	return n
}

// MinInputSide is the smallest input side a network accepts: 2^Downsampling,
// so that every stride-2 layer halves a map at least 2 pixels wide and the
// last map is at least 1×1 (32 for the ImageNet networks, 4 for CIFAR's).
// PyTorch would run smaller inputs, but there a stride-2 layer only skips
// the padding of a 1-pixel map: a mistake, not a use.
func (a Arch) MinInputSide() int { return 1 << a.Downsampling() }

func (a Arch) checkInput() error {
	lo := a.MinInputSide()
	switch {
	case a.InputH < lo || a.InputW < lo:
		return fmt.Errorf("arch %q: input %dx%d is too small: the smallest that works is %dx%d (its %d stride-2 layers need at least %d pixels a side; the last map is then 1x1)",
			a.Name, a.InputH, a.InputW, lo, lo, a.Downsampling(), lo)
	case a.InputH > MaxInputSide || a.InputW > MaxInputSide:
		return fmt.Errorf("arch %q: input %dx%d is too large: at most %d pixels a side", a.Name, a.InputH, a.InputW, MaxInputSide)
	}
	return nil
}
