package engine

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/shape"
)

// Machines with their tuning files, which the CPU rule is held to: the
// Intel Xeon's in ../shared/data/intel-xeon, and a Zen 5's.
var fixtures = []struct {
	file string
	m    Machine
	// inNetwork lists shapes where the tuning file's kernel-alone
	// measurement and the network disagree, with the rule's candidate
	// there and the measurement that justifies it.
	inNetwork map[string]string
}{
	{"../../shared/data/intel-xeon/tuning.json", NewMachine("Intel(R) Xeon(R) Processor (family 6 model 167)", "GenuineIntel", 6, 48<<10, 2<<20), nil},
	// `resnet tune -tier avx512 -rounds 7` on a Zen 5 (2026-12-08, load ~1).
	{"testdata/tuning-zen5.json", NewMachine("AMD EPYC (family 26 model 2)", "AuthenticAMD", 26, 48<<10, 1<<20), map[string]string{
		// Alone F(4,3) measured 522 GFLOP/s effective against F(2,3)'s
		// 445; inside ResNet-50 (bench -layers, one thread, three
		// alternations of the rule against this file) layer3's five 3x3
		// convolutions took 2.82–3.02 ms by F(2,3) and 2.88–3.00 by F(4,3):
		// level. The rule keeps the plan's first, F(2,3).
		"avx512/conv3x3s1_c256k256_h14": "winograd/2",
	}},
}

// tieMargin is `resnet tune`'s (bench.DefaultTieMargin): candidates within
// 5 % of each other are the host's noise.
const tieMargin = 0.05

// TestRuleMatchesTuning: on every shape a tuning file measured, the CPU
// rule's choice for that machine runs within the tie margin of the fastest
// candidate measured there, so an untuned run is as fast as a tuned one.
func TestRuleMatchesTuning(t *testing.T) {
	shapes := map[string]shape.Conv{}
	for _, s := range resnet.FamilyConvShapes() {
		shapes[s.Name()] = s
	}
	for _, fx := range fixtures {
		tn, err := ReadTuning(fx.file)
		require.NoError(t, err)
		entries := tn.Machines[fx.m.Name]
		require.NotEmpty(t, entries, "%s has no entries for %s", fx.file, fx.m.Name)
		for key, meas := range entries {
			tierName, name, _ := strings.Cut(key, "/")
			tier, err := asm.ParseTier(tierName)
			require.NoError(t, err)
			s, ok := shapes[name]
			require.True(t, ok, "%s: %s is no shape of the family", fx.file, name)
			var ms []int
			variants := []string{""}
			for c := range meas.GFLOPs {
				if v, ok := strings.CutPrefix(c, "winograd/"); ok {
					n, err := strconv.Atoi(v)
					require.NoError(t, err)
					ms = append(ms, n)
				} else if v, ok := strings.CutPrefix(c, "direct/"); ok {
					variants = append(variants, v)
				}
			}
			slices.Sort(ms) // the plan lists F(2,3) first where it has both (gen/plan.winoFor)
			best := slices.Max(slices.Collect(maps.Values(meas.GFLOPs)))
			pick := fx.m.RuleCandidate(tier, s, ms, variants)
			got, ok := meas.GFLOPs[pick]
			require.True(t, ok, "%s %s: the rule picks %s, which was not measured", fx.m.Name, key, pick)
			if want, ok := fx.inNetwork[key]; ok {
				assert.Equal(t, want, pick, "%s %s: the network's measurement says", fx.m.Name, key)
				continue
			}
			assert.GreaterOrEqual(t, got*(1+tieMargin), best, "%s %s: the rule picks %s (%.0f GFLOP/s), the fastest was %s (%.0f)",
				fx.m.Name, key, pick, got, meas.Best, best)
		}
	}
}

// The rule's variants, worked out by hand: split where the weights exceed
// the L2 (the plan emits split variants from 2 MiB for 1x1 layers), p8 on
// AVX-512 with an L2 of 1 MiB or less and, with a larger L2, on the 1x1
// stride-1 layers of 56×56 maps with at most 256 channels either side.
func TestRuleVariants(t *testing.T) {
	zen := NewMachine("zen", "AuthenticAMD", 26, 48<<10, 1<<20)
	xeon := NewMachine("xeon", "GenuineIntel", 6, 48<<10, 2<<20)
	unknown := NewMachine("arm", "", 0, 0, 0)
	c1 := func(in, out, hw, stride int) shape.Conv {
		o := (hw-1)/stride + 1
		return shape.Conv{K: 1, Stride: stride, InC: in, OutC: out, InH: hw, InW: hw, OutH: o, OutW: o}
	}
	all := []string{"", "p8", "splitk", "p8splitk"}
	for _, c := range []struct {
		m    Machine
		tier asm.Tier
		s    shape.Conv
		have []string
		want string
	}{
		{zen, asm.AVX512, c1(1024, 512, 14, 1), all, "p8splitk"}, // 2 MiB > 1 MiB
		{xeon, asm.AVX512, c1(1024, 512, 14, 1), all, ""},        // 2 MiB fits the L2
		{xeon, asm.AVX512, c1(2048, 512, 7, 1), all, "splitk"},   // 4 MiB
		{zen, asm.AVX512, c1(256, 64, 56, 1), []string{"", "p8"}, "p8"},
		{xeon, asm.AVX512, c1(256, 64, 56, 1), []string{"", "p8"}, "p8"},
		{xeon, asm.AVX512, c1(512, 128, 28, 1), []string{"", "p8"}, ""},
		{xeon, asm.AVX512, c1(64, 128, 56, 2), []string{"", "p8"}, ""},
		{zen, asm.AVX512, c1(2048, 512, 7, 1), []string{"", "splitk"}, "splitk"}, // p8 equals the rule's: its split is the rule's
		{zen, asm.AVX2, c1(2048, 512, 7, 1), []string{"", "splitk"}, "splitk"},
		{zen, asm.AVX2, c1(256, 64, 56, 1), []string{""}, ""},
		{unknown, asm.AVX512, c1(256, 128, 28, 1), []string{"", "p8"}, "p8"}, // L2 unknown: 1 MiB
		{zen, asm.AVX512, c1(256, 64, 56, 1), []string{""}, ""},              // New takes what the package has
	} {
		_, _, v := c.m.Rule(c.tier, c.s, nil, c.have)
		assert.Equal(t, c.want, v, "%s %v %v %v", c.m.Name, c.tier, c.s, c.have)
	}
}

// Winograd by the rule's model, worked out by hand at 224 GFLOP/s (×0.9
// for the direct kernel): 7×7×512 by F(2,3) computes in 1.15 ms / (2.25 ·
// 512/(512+k)) and streams 16.8 MB, the direct kernel 1.15 ms and 9.4 MB.
// Zen (20 GB/s, k = 20): Winograd max(0.53, 0.84) against max(1.15, 0.47):
// Winograd. The Xeon (6 GB/s, k = 64): max(0.57, 2.80) against max(1.15,
// 1.57): direct. 16 channels by F(4,3): gain 4·16/36 = 1.8 on Zen, 4·16/80
// = 0.8 on the Xeon: direct there; 32 channels 4·32/96 = 1.33: Winograd.
func TestRuleWinograd(t *testing.T) {
	zen := NewMachine("zen", "AuthenticAMD", 26, 48<<10, 1<<20)
	xeon := NewMachine("xeon", "GenuineIntel", 6, 48<<10, 2<<20)
	c3 := func(c, hw int) shape.Conv {
		return shape.Conv{K: 3, Stride: 1, Pad: 1, InC: c, OutC: c, InH: hw, InW: hw, OutH: hw, OutW: hw}
	}
	for _, c := range []struct {
		m    Machine
		s    shape.Conv
		ms   []int
		want bool
	}{
		{zen, c3(512, 7), []int{2}, true},
		{xeon, c3(512, 7), []int{2}, false},
		{zen, c3(256, 14), []int{2, 4}, true},
		{xeon, c3(256, 14), []int{2, 4}, true},
		{zen, c3(16, 32), []int{4}, true},
		{xeon, c3(16, 32), []int{4}, false},
		{xeon, c3(32, 16), []int{4}, true},
		{xeon, c3(64, 56), []int{4}, true},
	} {
		w, m, _ := c.m.Rule(asm.AVX512, c.s, c.ms, []string{""})
		assert.Equal(t, c.want, w, "%s %v", c.m.Name, c.s)
		if w {
			assert.Equal(t, c.ms[0], m, "the plan's first tile size")
		}
	}
}

// Cache sizes as Linux's sysfs writes them.
func TestSysfsCaches(t *testing.T) {
	dir := t.TempDir()
	for i, c := range [][3]string{{"1", "Data", "48K"}, {"1", "Instruction", "32K"}, {"2", "Unified", "2048K"}, {"3", "Unified", "32M"}} {
		d := filepath.Join(dir, fmt.Sprintf("index%d", i))
		require.NoError(t, os.MkdirAll(d, 0o755))
		for f, v := range map[string]string{"level": c[0], "type": c[1], "size": c[2] + "\n"} {
			require.NoError(t, os.WriteFile(filepath.Join(d, f), []byte(v), 0o644))
		}
	}
	l1, l2 := sysfsCaches(dir)
	assert.Equal(t, [2]int{48 << 10, 2 << 20}, [2]int{l1, l2})
	l1, l2 = sysfsCaches(filepath.Join(dir, "none"))
	assert.Equal(t, [2]int{0, 0}, [2]int{l1, l2})
	assert.Equal(t, 32<<20, parseCacheSize("32M"))
	assert.Zero(t, parseCacheSize("lots"))
}
