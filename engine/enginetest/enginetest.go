// Package enginetest holds generated network packages to the float64
// reference of package resnet: every specialised kernel, the whole network
// on every tier the machine has, allocations and bad input. The tests that
// resnetgen writes into each package call it, so a user's package is tested
// exactly as the repository's own are.
//
// RESNET_REQUIRE_TIERS (e.g. "avx512,avx2,purego") names tiers that must
// run: a test fails if one is not available here instead of passing without
// it. RESNET_TEST_TIERS (e.g. "neon") limits the tiers tested to those it
// names (for slow emulated runs); each must be available. RESNET_TEST_WORKERS
// (e.g. "1") limits the worker counts Forward tries (1 and 2). RESNET_TIER_REPORT
// names a file to which each test appends the tiers it ran, so CI can show
// them.
//
// A package whose kernels are, one by one, another package's (Package.KernelsOf:
// this repository's family packages, which share a few kernel sets) has
// TestKernels prove that and leave the kernels to the other package's
// TestKernels, and TestForward run its best tier only; every other package,
// a user's included, is tested in full.
//
// A test binary that imports this package ignores the tuning cache of the
// machine it runs on (engine.TuningPath: RESNET_TUNING or the user's cache
// directory): New then picks what the default rule picks, whatever
// `resnet tune` measured there. A test that wants a cache sets RESNET_TUNING
// itself before the process's first New.
package enginetest

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/resnet"
)

func init() {
	// Before any test runs, so before any New reads the cache (once per
	// process); processes the tests start inherit it.
	os.Setenv("RESNET_TUNING", "off")
}

// Model is what every generated Model provides besides its typed Forward.
type Model interface {
	ForwardBatch(in, out []float32) error
	Layers() []engine.Named
	Trace(func(layer int, d time.Duration))
	Workers() int
	Close()
}

// Package describes a generated package to the tests.
type Package struct {
	Network func() (*resnet.Network, error)
	New     func(w *resnet.Weights, opts ...engine.Option) (Model, error)
	// Forward runs the package's typed Forward on m.
	Forward func(m Model, in, out []float32)
	Kernels *asm.KernelSet
	// KernelsOf is "" for a package whose tests hold its own kernels to the
	// reference on every tier (a user's, and one package of each kernel set
	// in this repository). Otherwise it is the directory, relative to this
	// package's, of the package whose kernels these are, one by one (the
	// same assembly, declarations and table entries; SharedKernels): its
	// TestKernels runs them, and this package's tests its own wiring of
	// them on the best tier. This repository's go generate sets it.
	KernelsOf string
}

// Tolerance bounds |logit − reference| relative to the largest reference
// logit: float32 kernels against the float64 reference, through every
// layer, with BatchNorm folded.
const Tolerance = 1e-4

// Tiers returns the tiers to test: every tier this machine and build has.
// It fails t if a tier that RESNET_REQUIRE_TIERS names is missing, and
// appends the list to RESNET_TIER_REPORT's file if that is set.
func Tiers(t testing.TB) []asm.Tier {
	t.Helper()
	return tiersToTest(t, false)
}

// tiersToTest is Tiers, or with bestOnly its last (unless
// RESNET_TEST_TIERS names tiers); the report lists what it returns.
func tiersToTest(t testing.TB, bestOnly bool) []asm.Tier {
	t.Helper()
	requireTiers(t)
	tiers := asm.Tiers()
	if only := os.Getenv("RESNET_TEST_TIERS"); only != "" {
		tiers = nil
		for _, name := range strings.Split(only, ",") {
			tier, err := asm.ParseTier(strings.TrimSpace(name))
			require.NoError(t, err, "RESNET_TEST_TIERS")
			require.True(t, asm.Has(tier), "tier %v (RESNET_TEST_TIERS=%s) is not available here: have %v", tier, only, asm.Tiers())
			tiers = append(tiers, tier)
		}
	}
	if bestOnly && os.Getenv("RESNET_TEST_TIERS") == "" {
		tiers = tiers[len(tiers)-1:]
	}
	if path := os.Getenv("RESNET_TIER_REPORT"); path != "" {
		report(t, path, fmt.Sprintf("%s: %v\n", t.Name(), tiers))
	}
	return tiers
}

// requireTiers fails t unless every tier RESNET_REQUIRE_TIERS names can
// run here.
func requireTiers(t testing.TB) {
	t.Helper()
	req := os.Getenv("RESNET_REQUIRE_TIERS")
	if req == "" {
		return
	}
	for _, name := range strings.Split(req, ",") {
		tier, err := asm.ParseTier(strings.TrimSpace(name))
		require.NoError(t, err, "RESNET_REQUIRE_TIERS")
		require.True(t, asm.Has(tier), "tier %v is required (RESNET_REQUIRE_TIERS=%s) but this machine and build have only %v", tier, req, asm.Tiers())
	}
}

var reportMu sync.Mutex

func report(t testing.TB, path, line string) {
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteString(line)
	require.NoError(t, err)
}

func network(t testing.TB, p Package) *resnet.Network {
	t.Helper()
	net, err := p.Network()
	require.NoError(t, err)
	return net
}

func maxAbs(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

// hasWinograd reports whether ks has Winograd kernels for tier t.
func hasWinograd(ks *asm.KernelSet, t asm.Tier) bool {
	if ks == nil {
		return false
	}
	for _, k := range ks.Winograd {
		if k.Tier == t {
			return true
		}
	}
	return false
}

// big reports whether the portable tier is slow on net (seconds a pass).
func big(net *resnet.Network) bool { return net.MACs() > 1e9 }

// Forward holds the network to the reference on every tier: two different
// inputs through the same buffers (halos must stay zero when buffers are
// reused), the first again bit for bit, 1 and 2 workers identical,
// ForwardBatch equal to Forward, and no allocation in Forward or
// ForwardBatch. A package with Package.KernelsOf runs its best tier only
// (unless RESNET_TEST_TIERS names tiers): its kernels are tested with the
// package whose they are, and the whole network there on every tier.
func Forward(t *testing.T, p Package) {
	Int8Forward(t, p)
	net := network(t, p)
	w := resnet.RandomWeights(net, 1)
	ref, err := resnet.NewReference(net, w)
	require.NoError(t, err)
	xs := [][]float32{resnet.RandomInput(net, 2), resnet.RandomInput(net, 3)}
	var want [][]float64
	for _, x := range xs {
		y, err := ref.Forward(x)
		require.NoError(t, err)
		want = append(want, y)
	}
	scale := math.Max(maxAbs(want[0]), maxAbs(want[1]))
	diff := 0.0
	for i := range want[0] {
		diff = math.Max(diff, math.Abs(want[0][i]-want[1][i]))
	}
	require.Greater(t, diff, 100*Tolerance*scale, "the two test inputs must give different logits, or a stale buffer could pass")
	classes := net.Arch.Classes
	inLen := net.Input().Len()
	// Every tier as New picks its algorithms (Auto), and on the best SIMD
	// tier, when it has Winograd kernels, each algorithm everywhere it
	// applies: direct convolutions only, and Winograd wherever the package
	// has its kernel. (Without them — NEON — both would repeat the Auto
	// run, which under qemu costs minutes.)
	type run struct {
		tier asm.Tier
		conv engine.Algorithm
	}
	var runs []run
	// A package whose kernels another tests: the best tier as New picks
	// (unless RESNET_TEST_TIERS names tiers to test in full).
	full := p.KernelsOf == "" || os.Getenv("RESNET_TEST_TIERS") != ""
	tiers := tiersToTest(t, !full)
	for _, tier := range tiers {
		runs = append(runs, run{tier, engine.Auto})
	}
	if best := tiers[len(tiers)-1]; full && best != asm.Purego && hasWinograd(p.Kernels, best) {
		runs = append(runs, run{best, engine.Direct}, run{best, engine.Winograd})
	}
	workerCounts := testWorkers(t)
	allocsPerRun := true // once per test, on the best tier: see requireAllocsPerRun
	for _, r := range runs {
		tier := r.tier
		first := make([][]float32, len(xs))
		for _, workers := range workerCounts {
			if tier == asm.Purego && workers == 1 && big(net) && len(workerCounts) > 1 {
				continue // the portable tier is slow on the big nets: one run with 2 workers
			}
			m, err := p.New(w, engine.WithTier(tier), engine.WithWorkers(workers), engine.WithBatch(3), engine.WithConv(r.conv))
			require.NoError(t, err)
			if r.conv != engine.Auto {
				kinds := map[string]int{}
				var scratch []*asm.WinogradScratch
				for _, l := range m.Layers() {
					kinds[l.Kind]++
					if c, ok := l.Layer.(*engine.Conv); ok && l.Kind == "winograd" {
						require.True(t, c.K == nil && c.Packed == nil && len(c.WPacked) > 0,
							"%s: a Winograd layer holds direct weights too (%d floats) or no transformed ones", l.Name, len(c.Packed))
						// One scratch per worker for every Winograd layer
						// (asm.WinogradKernel.FitScratch).
						require.Len(t, c.Scratch, workers, "%s: scratch per worker", l.Name)
						if scratch == nil {
							scratch = c.Scratch
						}
						for i := range scratch {
							require.Same(t, scratch[i], c.Scratch[i], "%s: worker %d's scratch is not the other Winograd layers'", l.Name, i)
						}
					}
				}
				if r.conv == engine.Direct {
					require.Zero(t, kinds["winograd"], "WithConv(Direct) left Winograd layers")
				}
				if r.conv == engine.Winograd && p.Kernels != nil && len(p.Kernels.Winograd) > 0 {
					require.Positive(t, kinds["winograd"], "WithConv(Winograd) ran no Winograd layer")
				}
			}
			got := make([][]float32, len(xs))
			for i, x := range xs {
				got[i] = make([]float32, classes)
				p.Forward(m, x, got[i])
				for j := range want[i] {
					require.InDelta(t, want[i][j], got[i][j], Tolerance*scale, "%v (%v), %d workers, input %d, logit %d", tier, r.conv, workers, i, j)
				}
			}
			again := make([]float32, classes)
			p.Forward(m, xs[0], again)
			require.Equal(t, got[0], again, "%v: the first input again, after the second, gives other logits", tier)
			if first[0] == nil {
				first = got
			} else {
				require.Equal(t, first, got, "%v: 1 and 2 workers differ", tier)
			}
			// Batches of 2 and 3 (one not a multiple of 2 workers), layer
			// by layer over the images: each image as Forward computes it.
			batch := make([]float32, 0, 3*inLen)
			batch = append(append(append(batch, xs[0]...), xs[1]...), xs[0]...)
			out := make([]float32, 3*classes)
			require.NoError(t, m.ForwardBatch(batch, out))
			require.Equal(t, append(append(append([]float32(nil), got[0]...), got[1]...), got[0]...), out, "%v: ForwardBatch of 3 differs from Forward", tier)
			batch, out = batch[:2*inLen], out[:2*classes]
			require.NoError(t, m.ForwardBatch(batch, out))
			require.Equal(t, append(append([]float32(nil), got[0]...), got[1]...), out, "%v: ForwardBatch of 2 differs from Forward", tier)
			if tier != asm.Purego || !big(net) {
				what := fmt.Sprintf("%v (%v), %d workers", tier, r.conv, workers)
				requireNoAllocs(t, what+": Forward", func() { p.Forward(m, xs[0], again) })
				requireNoAllocs(t, what+": ForwardBatch", func() {
					if err := m.ForwardBatch(batch, out); err != nil {
						panic(err)
					}
				})
				if allocsPerRun && tier == tiers[len(tiers)-1] {
					requireAllocsPerRun(t, what+": Forward", func() { p.Forward(m, xs[0], again) })
					allocsPerRun = false
				}
			}
			m.Close()
		}
	}
}

// testWorkers is the worker counts Forward tries: 1 and 2, or those
// RESNET_TEST_WORKERS names (for slow emulated runs).
func testWorkers(t testing.TB) []int {
	t.Helper()
	env := os.Getenv("RESNET_TEST_WORKERS")
	if env == "" {
		return []int{1, 2}
	}
	var counts []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		require.NoError(t, err, "RESNET_TEST_WORKERS=%s", env)
		require.True(t, n == 1 || n == 2, "RESNET_TEST_WORKERS=%s: Forward tries 1 and 2 workers", env)
		counts = append(counts, n)
	}
	return counts
}

// requireNoAllocs fails if one call of f allocates anything in resnetgen's
// code: with the memory profiler recording every allocation
// (MemProfileRate 1), it fails on any whose stack passes through the
// generated package, engine or asm. One call proves it: no allocation is
// sampled away, and the collections run before it (which empty the
// runtime's and sync.Pool's caches) make an allocation that only a cold
// cache would need happen in the call.
//
// A global count (runtime.MemStats, testing.AllocsPerRun) also counts the
// runtime's own: a GC cycle that ends inside the window wakes work that
// allocates (one allocation in 2 of 40 runs of the CIFAR net's test, none
// of them in resnetgen's code). One allocation is left out because it is
// the runtime's, though our code's stack leads to it: a worker that parks
// between layers receives on a channel, and the runtime then takes a
// sudog from a per-P cache that each GC empties (runtime.acquireSudog,
// 112 bytes, under engine.(*Pool).work).
func requireNoAllocs(t *testing.T, what string, f func()) {
	t.Helper()
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()
	before := ourAllocations()
	f()
	after := ourAllocations()
	for stack, n := range after {
		if n > before[stack] {
			t.Errorf("%s: %d allocations in one call at\n%s", what, n-before[stack], stack)
		}
	}
}

// allocRuns is how many calls testing.AllocsPerRun averages over: its
// average rounds down, so an allocation in every call shows, and a few of
// the runtime's own in the window do not.
const allocRuns = 5

// requireAllocsPerRun fails unless testing.AllocsPerRun over allocRuns
// calls of f is zero: zero allocation as the testing package states it, on
// top of requireNoAllocs's exact record of one call.
func requireAllocsPerRun(t *testing.T, what string, f func()) {
	t.Helper()
	require.Zero(t, testing.AllocsPerRun(allocRuns, f), "%s allocates (testing.AllocsPerRun over %d calls)", what, allocRuns)
}

// ourCode reports whether fn is code of resnetgen that a Forward runs: not
// this package, nor a generated package's tests (Test…, Benchmark…,
// Example… and their closures).
func ourCode(fn string) bool {
	if !strings.HasPrefix(fn, "github.com/resnetgen/resnetgen/") || strings.Contains(fn, "/enginetest.") {
		return false
	}
	for _, test := range []string{".Test", ".Benchmark", ".Example"} {
		if strings.Contains(fn, test) {
			return false
		}
	}
	return true
}

// ourAllocations returns, per allocating stack that passes through a
// resnetgen package other than this one, how many objects it allocated
// (as of the last GC, which it runs twice to publish the profile).
func ourAllocations() map[string]int64 {
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	for {
		n, ok := runtime.MemProfile(recs, true)
		if ok {
			recs = recs[:n]
			break
		}
		recs = make([]runtime.MemProfileRecord, n+64)
	}
	out := map[string]int64{}
	for _, r := range recs {
		var stack strings.Builder
		ours := false
		frames := runtime.CallersFrames(r.Stack())
		for {
			fr, more := frames.Next()
			fmt.Fprintf(&stack, "  %s\n", fr.Function)
			if ourCode(fr.Function) {
				ours = true
			}
			if !more {
				break
			}
		}
		if ours && !strings.Contains(stack.String(), "runtime.acquireSudog\n") {
			out[stack.String()] += r.AllocObjects
		}
	}
	return out
}

// Runs checks a Model made from weights the test does not know (embedded
// ones): Forward gives finite logits that depend on the input, and
// allocates nothing.
func Runs(t *testing.T, p Package, m Model) {
	net := network(t, p)
	classes := net.Arch.Classes
	a, b := make([]float32, classes), make([]float32, classes)
	p.Forward(m, resnet.RandomInput(net, 2), a)
	p.Forward(m, resnet.RandomInput(net, 3), b)
	require.NotEqual(t, a, b, "the logits do not depend on the input")
	for i := range a {
		require.False(t, math.IsNaN(float64(a[i])) || math.IsInf(float64(a[i]), 0), "logit %d is %v", i, a[i])
	}
	x := resnet.RandomInput(net, 2)
	requireNoAllocs(t, "Forward", func() { p.Forward(m, x, a) })
	requireAllocsPerRun(t, "Forward", func() { p.Forward(m, x, a) })
}

// BadInput checks that wrong weights, options and batches are errors that
// say what is wrong.
func BadInput(t *testing.T, p Package) {
	net := network(t, p)
	w := resnet.RandomWeights(net, 3)
	name := net.Layers[0].Weight
	good := w.Tensors[name]

	delete(w.Tensors, name)
	_, err := p.New(w)
	require.ErrorContains(t, err, "missing tensors: "+name)

	w.Tensors[name] = &resnet.Tensor{Shape: []int{1, 2, 3}, Data: make([]float32, 6)}
	_, err = p.New(w)
	require.ErrorContains(t, err, fmt.Sprintf("%s is [1 2 3], want %v", name, good.Shape))

	bad := *good
	bad.Data = append([]float32(nil), good.Data...)
	bad.Data[7] = float32(math.NaN())
	w.Tensors[name] = &bad
	_, err = p.New(w)
	require.ErrorContains(t, err, "tensors with NaN or Inf: "+name)
	w.Tensors[name] = good

	fc := net.Layers[len(net.Layers)-1]
	w.Tensors[fc.Weight+"_extra"] = good
	_, err = p.New(w)
	require.ErrorContains(t, err, "unexpected tensors: "+fc.Weight+"_extra")
	delete(w.Tensors, fc.Weight+"_extra")

	_, err = p.New(w, engine.WithWorkers(-1))
	require.ErrorContains(t, err, "workers -1")
	_, err = p.New(w, engine.WithBatch(0))
	require.ErrorContains(t, err, "batch 0")
	_, err = p.New(w, engine.WithTier(asm.Tier(99)))
	require.ErrorContains(t, err, "not available")

	m, err := p.New(w, engine.WithBatch(2))
	require.NoError(t, err)
	defer m.Close()
	inLen, classes := net.Input().Len(), net.Arch.Classes
	require.ErrorContains(t, m.ForwardBatch(make([]float32, 3*inLen), make([]float32, 3*classes)), "n ≤ 2")
	require.NoError(t, m.ForwardBatch(nil, nil), "an empty batch is no work")
	require.ErrorContains(t, m.ForwardBatch(make([]float32, 5), make([]float32, classes)), "batch of 5 input")
	require.ErrorContains(t, m.ForwardBatch(make([]float32, inLen), make([]float32, classes+1)), fmt.Sprintf("%d output", classes+1))
	require.Len(t, m.Layers(), len(net.Layers)+1, "Layers lists every layer and the input")
}
