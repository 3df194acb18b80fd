package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// SplitVariant ends the name of a direct variant whose reduction is split
// into input-channel slices (asm.ConvKernel.ICBlock): "splitk" is the
// plan's blocking split, "p8splitk" the p8 one (gen/plan.SplitVariant).
const SplitVariant = "splitk"
