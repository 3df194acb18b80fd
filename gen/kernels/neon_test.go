package kernels

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/gen/plan"
	"github.com/resnetgen/resnetgen/resnet"
)

// objdump is binutils' arm64 disassembler (Debian's
// binutils-aarch64-linux-gnu; .ci/run installs it).
const objdump = "aarch64-linux-gnu-objdump"

var wordLine = regexp.MustCompile(`WORD \$0x([0-9a-f]{8}) // (.*)$`)

// TestNEONEncodings holds every instruction the NEON emitter writes as a
// WORD (Go's assembler lacks FMLA by element, FADD, FMUL and FMAX on
// vectors) to what binutils' disassembler reads in the assembled binary:
// the kernels of every catalogued network, the pools, the classifiers and
// the peak probe, assembled by Go into an arm64 ELF binary.
func TestNEONEncodings(t *testing.T) {
	_, err := exec.LookPath(objdump)
	require.NoError(t, err, "this test needs %s: apt-get install -y binutils-aarch64-linux-gnu (.ci/run installs it)", objdump)

	dir := t.TempDir()
	a := &neonText{}
	seen := map[string]bool{}
	for _, name := range resnet.Names() {
		if name == "cifar-resnet1202" {
			continue // the shapes of cifar-resnet20
		}
		net := resnet.MustBuild(name)
		files, err := EmitNEON("main", net, Options{})
		require.NoError(t, err)
		// One file per network would repeat shared kernels: keep each
		// kernel's text once, under its own name.
		for _, block := range strings.Split(string(files["kernels_neon_arm64.s"]), "\n// ") {
			if m := regexp.MustCompile(`TEXT ·(\w+)\(SB\)`).FindStringSubmatch(block); m != nil && !seen[m[1]] {
				seen[m[1]] = true
				a.b.WriteString("\n// " + block)
			}
		}
	}
	a.emitPeak()
	asmText := fmt.Sprintf("%s\n\n#include \"textflag.h\"\n%s", Header, a.b.String())
	var calls strings.Builder
	var decls strings.Builder
	for _, m := range regexp.MustCompile(`TEXT ·(\w+)\(SB\), NOSPLIT, \$0-(\d+)`).FindAllStringSubmatch(asmText, -1) {
		fmt.Fprintf(&decls, "func %s()\n", m[1])
		fmt.Fprintf(&calls, "\t\t%s()\n", m[1])
	}
	// Declared without arguments: only the instructions matter here (go vet
	// is not run on this package; the kernels are never called).
	main := fmt.Sprintf("package main\n\nimport \"os\"\n\n%s\nfunc main() {\n\tif len(os.Args) > 99 {\n%s\t}\n}\n", decls.String(), calls.String())
	asmText = regexp.MustCompile(`\$0-\d+`).ReplaceAllString(asmText, "$$0-0")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module probe\n\ngo 1.26\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kernels_arm64.s"), []byte(asmText), 0o644))
	build := exec.Command("go", "build", "-o", "probe", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOARCH=arm64", "GOOS=linux", "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	dis, err := exec.Command(objdump, "-d", filepath.Join(dir, "probe")).Output()
	require.NoError(t, err)
	// "  93290:	4f821020 	fmla	v0.4s, v1.4s, v2.s[0]"
	decoded := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(dis))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 4)
		if len(f) >= 4 && len(strings.TrimSpace(f[1])) == 8 {
			decoded[strings.TrimSpace(f[1])] = strings.Join(strings.Fields(f[2]+" "+f[3]), " ")
		}
	}
	checked := map[string]bool{}
	kinds := map[string]int{}
	for _, line := range strings.Split(asmText, "\n") {
		m := wordLine.FindStringSubmatch(line)
		if m == nil || checked[m[1]] {
			continue
		}
		checked[m[1]] = true
		got, ok := decoded[m[1]]
		if assert.True(t, ok, "0x%s (%s) is not in the binary", m[1], m[2]) {
			assert.Equal(t, m[2], got, "WORD $0x%s", m[1])
		}
		kinds[strings.Fields(m[2])[0]]++
	}
	t.Logf("%d distinct encodings checked against %s: %v", len(checked), objdump, kinds)
	for _, k := range []string{"fmla", "fadd", "fmax", "fmul"} {
		assert.Positive(t, kinds[k], "no %s was checked", k)
	}
}

// The NEON tiles fit the register file and model at or near the FMA peak of
// both cores (the numbers docs/neon.md reports).
func TestNEONBlocking(t *testing.T) {
	var nets []*resnet.Network
	for _, name := range resnet.Names() {
		nets = append(nets, resnet.MustBuild(name))
	}
	for _, m := range ModelNEON(nets...) {
		assert.LessOrEqual(t, m.TH*m.TW*m.V+m.TH*m.TW+m.V, 32, m.Name)
		assert.GreaterOrEqual(t, m.N1, 0.85, m.Name)
		assert.GreaterOrEqual(t, m.V1, 0.75, m.Name)
	}
	// A 3-channel stem loads one channel at a time; 64 channels come four
	// at a time.
	assert.Equal(t, 1, plan.NEON.Group(3))
	assert.Equal(t, 4, plan.NEON.Group(64))
	// Encodings worked out by hand from the Arm ARM (the test above checks
	// them all against binutils).
	e, text := arm64{}.fmlaElem(0, 1, 2, 0)
	assert.Equal(t, uint32(0x4F821020), e, text)
	e, text = arm64{}.fmlaElem(31, 17, 30, 3)
	assert.Equal(t, "fmla v31.4s, v17.4s, v30.s[3]", text)
	assert.Equal(t, uint32(0x4F801000|1<<21|1<<20|14<<16|1<<11|17<<5|31), e)
}
