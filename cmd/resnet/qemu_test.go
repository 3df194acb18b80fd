package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The published CIFAR-10 ResNet-20 through the NEON kernels, under qemu,
// classifies the first 2,000 test images exactly as this machine's best
// tier does (10,000 take about half an hour under emulation on 2 cores;
// 2,000 about 6 minutes).
func TestEvalNEONUnderQEMUMatchesNative(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("compares an arm64 build under qemu with the native amd64 one")
	}
	qemu, err := exec.LookPath("qemu-aarch64-static")
	require.NoError(t, err, "this test needs qemu-user-static (apt-get install -y qemu-user-static; .ci/run installs it)")
	data := filepath.Join(sharedData, "cifar10-test")
	args := []string{"eval", "-arch", "cifar-resnet20", "-weights", checkpoint(t, "20"), "-data", data, "-limit", "2000", "-json"}

	code, native, stderr := runCmd(args...)
	require.Equal(t, 0, code, stderr)

	bin := filepath.Join(t.TempDir(), "resnet")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	start := time.Now()
	cmd := exec.Command(qemu, append([]string{bin}, args...)...)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	emulated, err := cmd.Output()
	require.NoError(t, err, errOut.String())
	assert.Contains(t, errOut.String(), "the generated cifar-resnet20 (neon)", "the NEON tier ran")
	t.Logf("2,000 images under qemu-aarch64 in %v", time.Since(start).Round(time.Second))

	var a, b struct {
		Images, Correct int
	}
	require.NoError(t, json.Unmarshal([]byte(native), &a))
	require.NoError(t, json.Unmarshal(emulated, &b))
	assert.Equal(t, 2000, b.Images)
	assert.Equal(t, a.Correct, b.Correct, "NEON under qemu and amd64 count different correct images")
	t.Logf("native %d/2000, NEON %d/2000", a.Correct, b.Correct)
}
