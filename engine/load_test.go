package engine_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/resnet50"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/safetensors"
	"github.com/resnetgen/resnetgen/resnet/weightfile"
)

// loadChild names the weight file a child process of TestLoadPeakMemory
// loads.
const loadChild = "ENGINE_TEST_LOAD_CHILD"

// A load holds one layer's copies of the weights at a time, not the
// whole network's: `resnet run`'s path (weightfile.Open, Detect, Weights,
// New, the weights dropped by the caller) on ResNet-50, in a process of
// its own, peaks less than 1.6 × what the Model keeps (packed weights and
// activations) above what the process held before. While every copy (the
// file's values, folded, packed) lived to the end of the load, or the
// collector let the heap reach twice the live data, it peaked above 1.8 ×.
func TestLoadPeakMemory(t *testing.T) {
	if path := os.Getenv(loadChild); path != "" {
		loadAndReport(t, path)
		return
	}
	if runtime.GOOS != "linux" || race {
		t.Skip("reads the peak resident size from /proc (Linux), which the race detector multiplies")
	}
	net, err := resnet50.Network()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "resnet50.safetensors")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, safetensors.Write(f, resnet.RandomWeights(net, 1)))
	require.NoError(t, f.Close())

	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadPeakMemory$", "-test.v")
	cmd.Env = append(os.Environ(), loadChild+"="+path)
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.ENOEXEC) {
		// Under qemu-user (CI's arm64 run) the binary cannot start itself,
		// and the emulator's own memory would swamp the figure anyway: the
		// native run of this test measures the load.
		t.Skipf("cannot re-execute the test binary here (%v): an emulated run", err)
	}
	require.NoError(t, err, "%s", out)
	var before, peak, kept int64
	for _, line := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "load: before %d peak %d kept %d", &before, &peak, &kept); err == nil {
			break
		}
	}
	require.Positive(t, kept, "the child said: %s", out)
	mb := func(n int64) float64 { return float64(n) / (1 << 20) }
	t.Logf("ResNet-50 load: %.0f MB resident before, peak %.0f MB; the Model keeps %.0f MB (%.2f×)",
		mb(before), mb(peak), mb(kept), float64(peak-before)/float64(kept))
	assert.Less(t, float64(peak-before), 1.6*float64(kept), "the load's peak above the process's start, against what the Model keeps")
}

// loadAndReport loads path as `resnet run` does and prints the peak
// resident size before and after, and the bytes of the Model's packed
// weights and activations.
func loadAndReport(t *testing.T, path string) {
	before := peakRSS(t)
	f, err := weightfile.Open(path)
	require.NoError(t, err)
	arch, err := f.Detect()
	require.NoError(t, err)
	require.Equal(t, resnet50.Arch, arch)
	w, err := f.Weights(resnet.MustBuild(arch))
	require.NoError(t, err)
	m, err := resnet50.New(w, engine.WithWorkers(1))
	require.NoError(t, err)
	defer m.Close()
	peak := peakRSS(t)
	kept := int64(resnet50.ActivationBytes)
	for _, l := range m.Layers() {
		switch c := l.Layer.(type) {
		case *engine.Conv:
			kept += 4 * int64(len(c.Packed)+len(c.WPacked))
		case *engine.FC:
			kept += 4 * int64(len(c.W))
		}
	}
	fmt.Printf("load: before %d peak %d kept %d\n", before, peak, kept)
}

// peakRSS reads the process's peak resident size (VmHWM) in bytes.
func peakRSS(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	require.NoError(t, err)
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
