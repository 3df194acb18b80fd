// Package docs holds no code: its test checks the KServe manifests beside it.
package docs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// KServe's Go module, whose config/crd/full holds the CRDs a KServe
// install applies. Its hash is the go.sum line's: a module proxy serving
// other bytes under this version fails the test.
const (
	kserveModule  = "github.com/kserve/kserve"
	kserveVersion = "v0.17.0"
	kserveSum     = "h1:IaynaBFzVQz1Xyrw5n3ncqzd5Y7L1RkO+YWvVwwtMQE="
)

// checker is tools/kservecheck, a module of its own (kubectl-validate and
// the Kubernetes libraries stay out of this module's go.mod).
const checker = "../tools/kservecheck"

// A breakage turns a manifest invalid: old (found exactly once) becomes
// new, and the checker must say want.
type breakage struct{ old, new, want string }

// The manifests and, for each, copies broken on purpose: the checker
// must reject every one, so the test would notice a checker that passes
// anything (a missing schema, unknown fields ignored).
var manifests = []struct {
	file   string
	docs   []string // "Kind name", in order
	broken []breakage
}{
	{"kserve.yaml", []string{"ServingRuntime resnetgen", "InferenceService resnet50"}, []breakage{
		{"    minReplicas: 1\n", "    minReplicas: 1\n    minReplica: 2\n",
			"spec.predictor.minReplica: Invalid value: value provided for unknown field"},
		{"      image: registry", "      imag: registry",
			"spec.containers[0].imag: Invalid value: value provided for unknown field"},
		{"    maxReplicas: 4", "    maxReplicas: four",
			"spec.predictor.maxReplicas in body must be of type integer"},
		{"          memory: 1Gi\n        limits:", "          memory: 1 GB\n        limits:",
			"spec.containers[0].resources.requests.memory in body should match"},
		{"kind: ServingRuntime", "kind: ServingRuntimes",
			"kind ServingRuntimes not found in serving.kserve.io/v1alpha1"},
	}},
	{"kserve-custom.yaml", []string{"InferenceService flowers"}, []breakage{
		{"          - containerPort: 8080", "          - containerPorts: 8080",
			"spec.predictor.containers[0].ports[0].containerPorts: Invalid value: value provided for unknown field"},
		{"    minReplicas: 1", `    minReplicas: "1"`,
			"spec.predictor.minReplicas in body must be of type integer"},
		{"  name: flowers", "  name: Flowers",
			`metadata.name: Invalid value: "Flowers": a lowercase RFC 1123 subdomain`},
		{"  predictor:\n", "  predicter:\n",
			"spec.predicter: Invalid value: value provided for unknown field"},
	}},
}

// TestKServeManifests validates docs/kserve*.yaml against KServe's own
// CRDs with the API server's validation code, offline (see
// tools/kservecheck), and holds the check itself to broken copies.
//
// A fresh machine downloads the checker's modules (~460 MB unpacked, ~11 s
// here) and KServe's (a 40 MB zip, 260 MB unpacked, ~4 s), and compiles
// the Kubernetes API server's packages once (~4 minutes of CPU, 1.2 GB of
// build cache); later runs take the cached binary: ~30 s in all, mostly
// the checker reading KServe's 1 MB InferenceService CRD on each run.
func TestKServeManifests(t *testing.T) {
	crds := kserveCRDs(t)
	bin := buildChecker(t)
	dir := t.TempDir()
	for _, m := range manifests {
		t.Run(m.file, func(t *testing.T) {
			good, err := os.ReadFile(m.file)
			require.NoError(t, err)
			out, err := check(bin, crds, m.file)
			require.NoError(t, err, "%s", out)
			var want []string
			for i, d := range m.docs {
				want = append(want, fmt.Sprintf("%s: document %d (%s): valid", m.file, i+1, d))
			}
			assert.Equal(t, want, strings.Split(strings.TrimSpace(out), "\n"))

			for _, b := range m.broken {
				require.Equal(t, 1, strings.Count(string(good), b.old), "%q must occur once in %s", b.old, m.file)
				broken := filepath.Join(dir, m.file)
				require.NoError(t, os.WriteFile(broken, []byte(strings.Replace(string(good), b.old, b.new, 1)), 0o644))
				out, err := check(bin, crds, broken)
				var exit *exec.ExitError
				require.ErrorAs(t, err, &exit, "%s broken (%q → %q) passed:\n%s", m.file, b.old, b.new, out)
				assert.Equal(t, 1, exit.ExitCode(), out)
				assert.Contains(t, out, b.want, "%q → %q", b.old, b.new)
			}
		})
	}
}

// goCmd runs the go command in dir, with the checker's go.sum binding
// (no silent updates), outside any workspace and without stamping VCS
// information (no git needed).
func goCmd(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
	return cmd
}

// kserveCRDs downloads KServe's module and returns a directory holding its
// full serving.kserve.io CRDs.
func kserveCRDs(t *testing.T) string {
	start := time.Now()
	cmd := goCmd(t.Context(), t.TempDir(), "mod", "download", "-json", kserveModule+"@"+kserveVersion)
	out, err := cmd.Output()
	var mod struct{ Dir, Sum, Error string }
	if jerr := json.Unmarshal(out, &mod); jerr == nil && mod.Error != "" {
		err = errors.New(mod.Error)
	}
	require.NoError(t, err, "go mod download %s@%s: %s", kserveModule, kserveVersion, out)
	require.Equal(t, kserveSum, mod.Sum, "the module's hash")
	files, err := filepath.Glob(filepath.Join(mod.Dir, "config", "crd", "full", "serving.kserve.io_*.yaml"))
	require.NoError(t, err)
	dir := t.TempDir()
	names := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644))
		names[filepath.Base(f)] = true
	}
	for _, want := range []string{"serving.kserve.io_inferenceservices.yaml", "serving.kserve.io_servingruntimes.yaml"} {
		require.True(t, names[want], "%s in %s's config/crd/full", want, kserveModule)
	}
	t.Logf("KServe %s: %d CRDs (%.1fs)", kserveVersion, len(files), time.Since(start).Seconds())
	return dir
}

// buildChecker builds tools/kservecheck. It reads the checker's sources
// first, so that go test's cache keys this test's result on them too.
func buildChecker(t *testing.T) string {
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		_, err := os.ReadFile(filepath.Join(checker, f))
		require.NoError(t, err)
	}
	// The first build compiles the Kubernetes API server's packages:
	// minutes on two cores, more than go test's default 10 when the
	// machine is busy. Stop it before the test times out and say so (what
	// it compiled stays in the build cache for the next run).
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-time.Minute))
		defer cancel()
	}
	start := time.Now()
	bin := filepath.Join(t.TempDir(), "kservecheck")
	out, err := goCmd(ctx, checker, "build", "-o", bin, ".").CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("building %s was stopped after %v, short of the test's deadline: its first build takes "+
			"minutes; run go test with -timeout 30m, as .ci/run does", checker, time.Since(start).Round(time.Second))
	}
	require.NoError(t, err, "building %s: %s", checker, out)
	t.Logf("built %s (%.1fs)", checker, time.Since(start).Seconds())
	return bin
}

func check(bin, crds, file string) (string, error) {
	out, err := exec.Command(bin, "-crds", crds, file).CombinedOutput()
	return string(out), err
}
