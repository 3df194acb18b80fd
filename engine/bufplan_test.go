package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet"
)

// TestPlanOverwritesResidualsInPlace: a slot holds one live value at a
// time, no layer writes the slot of its input or of a residual that a later
// layer still reads, and a layer that is the last to read a residual of its
// output's geometry writes its output in place of it. In ResNet-18,
// layer1.0.conv2 (residual: the max pool's 56×56×64, halo 1 for
// layer1.0.conv1) and layer2.0.conv2 (residual: the downsample's 28×28×128,
// halo 0, while its output needs halo 1 for layer2.1.conv1) show both sides.
func TestPlanOverwritesResidualsInPlace(t *testing.T) {
	for _, name := range []string{"resnet18", "resnet50", "cifar-resnet20", "plain18"} {
		net := resnet.MustBuild(name)
		p := PlanBuffers(net)
		last := map[int]int{}
		for i, l := range net.Layers {
			last[l.In] = i
			if l.Residual != resnet.NoValue {
				last[l.Residual] = max(last[l.Residual], i)
			}
		}
		holder := map[int]int{} // slot → value living in it
		holder[p.Slot[0]] = 0
		inPlace := 0
		for i, l := range p.Body {
			s := p.Slot[l.Out]
			require.GreaterOrEqual(t, s, 0, "%s %s", name, l.Name)
			assert.NotEqual(t, p.Slot[l.In], s, "%s %s writes its input", name, l.Name)
			if v, ok := holder[s]; ok && last[v] > i {
				t.Errorf("%s %s overwrites value %d, read until layer %d", name, l.Name, v, last[v])
			} else if ok && last[v] == i {
				assert.Equal(t, l.Residual, v, "%s %s overwrites a value it reads that is not its residual", name, l.Name)
				inPlace++
			}
			assert.Equal(t, p.Geom[l.Out], p.Slots[s], "%s %s", name, l.Name)
			holder[s] = l.Out
		}
		if name != "plain18" {
			assert.Positive(t, inPlace, name)
		} else {
			assert.Zero(t, inPlace, "a plain network has no residuals")
		}
	}
	net := resnet.MustBuild("resnet18")
	p := PlanBuffers(net)
	for _, l := range net.Layers {
		switch l.Name {
		case "layer1.0.conv2":
			assert.Equal(t, p.Slot[l.Residual], p.Slot[l.Out], l.Name)
		case "layer2.0.conv2":
			assert.NotEqual(t, p.Slot[l.Residual], p.Slot[l.Out], "%s: halo 0 residual, halo 1 output", l.Name)
		}
	}
}
