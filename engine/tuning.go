package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/shape"
)

// Tuning is what `resnet tune` measured on one machine: per tier and
// convolution shape, which candidate ran fastest (the direct kernel of the
// generator's rule, its alternative blocking, or Winograd). It lives in a JSON file
// (TuningPath), keyed by the CPU model, so one cache serves several
// machine kinds and a machine only uses its own entries. Deleting the file
// is safe: New then uses the default rule.
type Tuning struct {
	Version  int                           `json:"version"`
	Machines map[string]map[string]Measure `json:"machines"` // CPU model → "tier/kernel name" → measure
}

// Measure is one layer shape's measurement: each candidate's GFLOP/s (for
// Winograd effective: the direct convolution's FLOPs ÷ time) and the best.
type Measure struct {
	Best   string             `json:"best"`
	GFLOPs map[string]float64 `json:"gflops"`
}

// Candidate names a way to compute a convolution: "direct" (the generator's
// blocking), "direct/VARIANT" (an alternative blocking, e.g. direct/p8) or
// "winograd/M" (F(M×M,3×3); M 0: "winograd", whichever New picks).
func Candidate(winograd bool, variant string, m int) string {
	switch {
	case winograd && m != 0:
		return fmt.Sprintf("winograd/%d", m)
	case winograd:
		return "winograd"
	case variant != "":
		return "direct/" + variant
	}
	return "direct"
}

const tuningVersion = 3

// TuningPath is the cache file: RESNET_TUNING if set ("off" disables the
// cache), else resnetgen/tuning.json under os.UserCacheDir().
func TuningPath() (string, error) {
	if p := os.Getenv("RESNET_TUNING"); p != "" {
		return p, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "resnetgen", "tuning.json"), nil
}

// TuningKey names a shape on a tier in the cache.
func TuningKey(t asm.Tier, s shape.Conv) string { return t.String() + "/" + s.Name() }

// ReadTuning reads the cache file; a missing file is an empty cache.
func ReadTuning(path string) (*Tuning, error) {
	tn := &Tuning{Version: tuningVersion, Machines: map[string]map[string]Measure{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return tn, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, tn); err != nil {
		return nil, fmt.Errorf("%s: %v (delete it: it is only a cache)", path, err)
	}
	if tn.Version != tuningVersion {
		return &Tuning{Version: tuningVersion, Machines: map[string]map[string]Measure{}}, nil
	}
	if tn.Machines == nil {
		tn.Machines = map[string]map[string]Measure{}
	}
	return tn, nil
}

// Write stores the cache at path (through a temporary file).
func (tn *Tuning) Write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(tn, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

var (
	tuningOnce sync.Once
	tuningHere map[string]Measure // this machine's entries, read once per process
)

// tuned returns the candidate the cache says is fastest for a shape on
// this machine.
func tuned(t asm.Tier, s shape.Conv) (string, bool) {
	tuningOnce.Do(func() {
		path, err := TuningPath()
		if err != nil || path == "off" {
			return
		}
		tn, err := ReadTuning(path)
		if err != nil {
			return // a damaged cache is ignored: the default rule applies
		}
		tuningHere = tn.Machines[CPUModel()]
	})
	m, ok := tuningHere[TuningKey(t, s)]
	return m.Best, ok && m.Best != ""
}

// The rule without a tuning cache: the generated Winograd kernel wherever
// there is one (F(4,3), or F(2,3) for the deep layers; measured on Zen 4
// against the direct kernels on every 3x3 stride-1 shape of the family, one
// thread: 1.5× to 3.1× on AVX-512, 1.0× to 3.0× on AVX2); otherwise the
// direct kernel, in the variant defaultVariant names for this CPU.
// `resnet tune` corrects a machine where these lose.

// DefaultCandidate is the candidate New picks for a shape on tier t without
// a tuning cache, given the Winograd tile sizes (ms, the generator's
// choice first) and direct variants the package has for it: Winograd
// where there is one, otherwise the direct kernel in defaultVariant.
func DefaultCandidate(t asm.Tier, ms []int, variants []string) string {
	if len(ms) > 0 {
		return Candidate(true, "", ms[0])
	}
	return Candidate(false, defaultVariant(t, variants), 0)
}

// SplitVariant ends the name of a direct variant whose reduction is split
// into input-channel slices (asm.ConvKernel.ICBlock): "splitk" is the
// generator's blocking split, "p8splitk" the p8 one.
const SplitVariant = "splitk"

// defaultVariant is the direct kernel variant New picks without a tuning
// cache, among the variants the package has for the shape: on AMD's
// families 25 (Zen 3, Zen 4) and 26 (Zen 5) "p8" (AVX-512 tiles of at most
// 8 pixels, weight panels within 1 MiB), elsewhere the generator's rule
// (Intel not measured yet); in either, split (SplitVariant) where the
// package has that, i.e. on the direct layers whose weights stream from
// memory (1x1 from 2 MiB, 3x3 from 4 MiB: gen/kernels.splitK).
//
// p8, Zen 4: better on 13 of the family's 38 AVX-512 shapes, worse on 2.
// Zen 5 (EPYC family 26 model 2), ResNet-50 whole at batch 1 against ONNX
// Runtime in one run, three alternations: 0.869–0.873 of ORT's latency on
// one thread with p8 against 0.915–0.990 without, 0.855–0.940 on two
// against 1.003–1.114.
//
// Split, Zen 5, ResNet-50 (bench -layers, tuning caches forcing p8 or
// p8splitk on its five streaming shapes, alternated three times): on one
// thread layer4's 7×7 1x1 layers 0.60–0.69 ms each against 0.75–1.02 with
// p8 (2048→512 was 1.10–1.12 ms in the rule's blocking, 1.8× ORT's time),
// 1024→2048/2 1.25–1.35 against 1.61–1.81; on two threads 0.29–0.35
// against 0.35–0.52 and 0.61 against 0.74–0.84; the two 14×14 and 28×28
// streaming layers unchanged. The whole network 1.03–1.05× faster on one
// thread and on two. On AVX2 (half the FMA rate, so the weights' stream
// binds less) the split kernels measured level with the unsplit ones in
// the same way (layer4's 7×7 1x1 layers 1.23–1.37 ms against 1.28–1.39).
// Intel: not measured; split there is a hypothesis (MLAS splits K too).
func defaultVariant(t asm.Tier, variants []string) string {
	return defaultVariantOn(cpuVendorFamily(), t, variants)
}

// defaultVariantOn is defaultVariant on a CPU of vendorFamily
// ("AuthenticAMD/26": /proc/cpuinfo's vendor_id/cpu family).
func defaultVariantOn(vendorFamily string, t asm.Tier, variants []string) string {
	base := ""
	if t == asm.AVX512 && (vendorFamily == "AuthenticAMD/25" || vendorFamily == "AuthenticAMD/26") {
		base = "p8"
	}
	// The generator emits no p8 variant where it equals its rule's
	// blocking; then the rule's split kernel is the p8 one split.
	for _, v := range []string{base + SplitVariant, SplitVariant} {
		if slices.Contains(variants, v) {
			return v
		}
	}
	return base
}

// cpuVendorFamily is /proc/cpuinfo's vendor_id/cpu family ("" if unknown).
func cpuVendorFamily() string {
	CPUModel()
	return vendorFamily
}

var (
	cpuOnce      sync.Once
	cpuModel     string
	vendorFamily string
)

// CPUModel names this machine's CPU: /proc/cpuinfo's model name with its
// family and model numbers (virtual machines often report "AMD EPYC" for
// several generations), or the architecture where there is no such file.
func CPUModel() string {
	cpuOnce.Do(func() {
		cpuModel = runtime.GOOS + "/" + runtime.GOARCH
		b, err := os.ReadFile("/proc/cpuinfo")
		if err != nil {
			return
		}
		fields := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			k = strings.TrimSpace(k)
			if _, seen := fields[k]; !seen {
				fields[k] = strings.TrimSpace(v)
			}
		}
		if v, f := fields["vendor_id"], fields["cpu family"]; v != "" && f != "" {
			vendorFamily = v + "/" + f
		}
		name := fields["model name"]
		if name == "" {
			name = fields["CPU part"] // arm64
		}
		if name == "" {
			return
		}
		if fam := fields["cpu family"]; fam != "" {
			name += fmt.Sprintf(" (family %s model %s)", fam, fields["model"])
		}
		cpuModel = name
	})
	return cpuModel
}
