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
	a.begin("goMnemonics", "func()", "0", "goMnemonics holds the Go mnemonics of goMnemonics (never called).")
	for _, m := range goMnemonics {
		a.op("%s", m.goAsm)
	}
	a.op("RET")
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
	var probe []string // the instructions of goMnemonics, in order
	inProbe := false
	sc := bufio.NewScanner(bytes.NewReader(dis))
	for sc.Scan() {
		if strings.HasSuffix(sc.Text(), ">:") {
			inProbe = strings.Contains(sc.Text(), ".goMnemonics") // main.goMnemonics.abi0
		}
		f := strings.SplitN(sc.Text(), "\t", 4)
		if len(f) >= 4 && len(strings.TrimSpace(f[1])) == 8 {
			text, _, _ := strings.Cut(f[2]+" "+f[3], "//") // objdump's comments: "// #1084227584"
			decoded[strings.TrimSpace(f[1])] = strings.Join(strings.Fields(text), " ")
			if inProbe {
				probe = append(probe, decoded[strings.TrimSpace(f[1])])
			}
		}
	}
	if assert.Len(t, probe, len(goMnemonics), "goMnemonics (RET has no operands, so it is not listed): %q", probe) {
		for i, m := range goMnemonics {
			assert.Equal(t, m.want, probe[i], "%s", m.goAsm)
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
	for _, k := range []string{"fmla", "fmls", "fadd", "fsub", "fmax", "fmul"} {
		assert.Positive(t, kinds[k], "no %s was checked", k)
	}
}

// goMnemonics are the instructions the NEON emitter writes in Go's
// assembler syntax whose operand order or meaning is easy to get wrong,
// with what binutils reads in the assembled binary (TestNEONEncodings).
var goMnemonics = []struct{ goAsm, want string }{
	{"PRFM 64(R22), PLDL2KEEP", "prfm pldl2keep, [x22, #64]"},
	{"PRFM 32(R20), PLDL1KEEP", "prfm pldl1keep, [x20, #32]"},
	{"VMOV R7, V31.S[2]", "mov v31.s[2], w7"},
	{"MOVW $0x40a00000, R7", "mov w7, #0x40a00000"},
	{"MADD R23, R22, R24, R22", "madd x22, x24, x23, x22"},
	{"ADD R8>>2, R9, R23", "add x23, x9, x8, lsr #2"},
	{"ADD R23<<6, R14, R22", "add x22, x14, x23, lsl #6"},
	{"LSR $2, R8, R23", "lsr x23, x8, #2"},
	{"MUL R4, R11, R11", "mul x11, x11, x4"},
	{"FMOVQ 16(R6), F3", "ldr q3, [x6, #16]"},
	{"FMOVQ F3, 32(R6)", "str q3, [x6, #32]"},
	{"VORR V1.B16, V1.B16, V2.B16", "mov v2.16b, v1.16b"},
	{"VLD1.P 32(R14), [V24.S4, V25.S4]", "ld1 {v24.4s, v25.4s}, [x14], #32"},
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

// neonFamilyPlans is the NEON plan of every catalogued network.
func neonFamilyPlans() []plan.Plan {
	var out []plan.Plan
	for _, name := range resnet.Names() {
		out = append(out, plan.For(resnet.MustBuild(name), plan.NEON))
	}
	return out
}

// TestNEONSpreadPrefetchCoversNextPanel: every NEON kernel that spreads its
// prefetching over its tile rows (SpreadPrefetch) asks, over a layer's
// calls, for every line of the next panel at least twice (once in the
// first row's chunk) and none more than five times, as on amd64
// (TestSpreadPrefetchCoversNextPanel), its trips being groups of 4 input
// channels. By hand for ResNet-50's 3x3 512→512 on 7×7 (4×1 tiles of 4
// vectors, 7 a call, 2 tile rows): 9·512·16·4 B = 4608 lines, 2304 a row;
// 7·9·512/4 = 8064 trips a call, 2·2304·64/8064 = 36.6 bytes a trip → 64.
// And ResNet-18's 3x3 256→256 on 14×14 (2×5 of 2 vectors, 2 a call, 7
// tile rows): 1152 lines, 165 a row, 2·9·256/4 = 1152 trips, 2·165·64/1152
// = 18.3 bytes → 32: a line every other trip.
func TestNEONSpreadPrefetchCoversNextPanel(t *testing.T) {
	n := 0
	seen := map[string]bool{}
	for _, p := range neonFamilyPlans() {
		for _, c := range p.Conv {
			if !c.SpreadPrefetch || seen[c.Name] {
				continue
			}
			seen[c.Name] = true
			n++
			s, b := c.Shape, c.Blocking
			require.True(t, b.PrefetchNext, c.Name)
			icb := sliceChannels(s, b)
			callTiles := s.OutW / b.TW
			chunk, step := neonSpreadPrefetch(s, b, callTiles)
			require.Positive(t, step, c.Name)
			assert.LessOrEqual(t, step, 256, "%s: at most one line per channel of a trip", c.Name)
			lines := s.K * s.K * icb * b.V * plan.NEON.Lanes * 4 / 64
			trips := callTiles * s.K * s.K * icb / plan.NEON.Group(s.InC)
			asked := make([]int, lines)
			for r := range (s.OutH + b.TH - 1) / b.TH {
				call := map[int]bool{}
				for trip := range trips {
					for k := range max(1, step/64) {
						call[r*chunk+(trip*step+k*64)/64] = true
					}
				}
				for l := range call {
					if l < lines {
						asked[l]++
					}
				}
			}
			assertSpreadCovers(t, c.Name, asked, chunk)
		}
	}
	assert.GreaterOrEqual(t, n, 9, "the family's NEON kernels that spread their prefetching")
	p18, p50 := plan.For(resnet.MustBuild("resnet18"), plan.NEON), plan.For(resnet.MustBuild("resnet50"), plan.NEON)
	c := planned(t, p50, "conv3x3s1_c512k512_h7_neon")
	chunk, step := neonSpreadPrefetch(c.Shape, c.Blocking, 7)
	assert.Equal(t, [2]int{2304, 64}, [2]int{chunk, step})
	c = planned(t, p18, "conv3x3s1_c256k256_h14_neon")
	chunk, step = neonSpreadPrefetch(c.Shape, c.Blocking, 2)
	assert.Equal(t, [2]int{165, 32}, [2]int{chunk, step})
	files, err := EmitNEON("resnet50", resnet.MustBuild("resnet50"), Options{})
	require.NoError(t, err)
	body := kernelText(t, string(files["kernels_neon_arm64.s"]), "conv3x3s1_c512k512_h7_neon")
	assert.Contains(t, body, "MOVD $147456, R24", "2304 lines of 64 bytes a tile row")
	assert.Equal(t, 3, strings.Count(body, "PLDL2KEEP"), "a line a trip, in each of the 3 kernel columns' loops")
	assert.Equal(t, 3, strings.Count(body, "ADD $64, R22"))
}

// TestNEONTilePrefetchCoversNextPanel: every NEON kernel that prefetches
// per tile (PrefetchNext without SpreadPrefetch: the Winograd products of
// streaming U, the split kernels) asks, over any four consecutive tiles (n
// or, split, n + tile row mod 4), for every line of the next weights, and
// for nothing before them. By hand: a trip of 4 channels × 4 vectors reads
// 256 bytes, one line asked a trip; 8 vectors 512 bytes, two; 2 vectors
// 128 bytes, one (every other line of a trip's two, by each tile).
func TestNEONTilePrefetchCoversNextPanel(t *testing.T) {
	assert.Equal(t, 1, neonTilePrefetch(4, 4))
	assert.Equal(t, 2, neonTilePrefetch(4, 8))
	assert.Equal(t, 1, neonTilePrefetch(4, 2))
	n := 0
	seen := map[string]bool{}
	for _, p := range neonFamilyPlans() {
		for _, c := range p.Conv {
			if !c.PrefetchNext || c.SpreadPrefetch || seen[c.Name] {
				continue
			}
			seen[c.Name] = true
			n++
			s, b := c.Shape, c.Blocking
			g := plan.NEON.Group(s.InC)
			icb := sliceChannels(s, b)
			iterBytes := g * b.V * plan.NEON.Lanes * 4
			next := s.K * s.K * icb * b.V * plan.NEON.Lanes * 4
			per := neonTilePrefetch(g, b.V)
			asked := map[int]bool{}
			for q := range 4 { // (n + row) mod 4 of four consecutive tiles
				for trip := range next / iterBytes {
					for k := range per {
						asked[(trip*iterBytes+q*64+k*256)/64] = true
					}
				}
			}
			for l := range next / 64 {
				if !assert.True(t, asked[l], "%s: line %d of the next %d is never asked for", c.Name, l, next/64) {
					break
				}
			}
		}
	}
	assert.GreaterOrEqual(t, n, 10, "the family's NEON kernels that prefetch per tile")
}

// kernelText is the assembly of kernel name (its main kernel) in src.
func kernelText(t *testing.T, src, name string) string {
	i := strings.Index(src, "TEXT ·"+name+"(SB)")
	require.GreaterOrEqual(t, i, 0, name)
	body := src[i:]
	return body[:strings.Index(body, "\tRET\n")]
}

// TestNEONDocListsThePlan: docs/neon.md (NEONDoc) has a row for every
// kernel of the family's NEON plans — layers, split variants, Winograd
// products and Winograd layers — and says which F each Winograd layer runs
// and in what chunks; by hand, 56×56×64 by F(4,3): 196 tiles in 8 chunks of
// 25 (the last 21), the default; 14×14×256 by F(2,3) (default) and F(4,3).
func TestNEONDocListsThePlan(t *testing.T) {
	var nets []*resnet.Network
	for _, name := range resnet.Names() {
		nets = append(nets, resnet.MustBuild(name))
	}
	doc := string(NEONDoc(nets...))
	rows := map[string]string{}
	for _, line := range strings.Split(doc, "\n") {
		if f := strings.Split(line, " | "); len(f) > 2 {
			rows[strings.TrimPrefix(f[0], "| ")] = line
		}
	}
	for _, p := range neonFamilyPlans() {
		for _, c := range p.Conv {
			assert.Contains(t, rows, c.Name)
		}
		for _, w := range p.Winograd {
			if assert.Contains(t, rows, w.Name) {
				assert.Contains(t, rows[w.Name], fmt.Sprintf("| F(%d,3) |", w.F.M), w.Name)
			}
		}
	}
	assert.Contains(t, rows["wino4_c64k64_h56_neon"], "| F(4,3) | yes | 196 | 25 × 8 | 64 |")
	assert.Contains(t, rows["wino4_c64k64_h56_neon"], "conv1x1s1_c64k64_h1w25_neon (conv1x1s1_c64k64_h1w21_neon)")
	assert.Contains(t, rows["wino2_c256k256_h14_neon"], "| F(2,3) | yes |")
	assert.Contains(t, rows["wino4_c256k256_h14_neon"], "| F(4,3) | — |")
	assert.Contains(t, rows["conv3x3s1_c512k512_h7_neon_splitk"], "| variant splitk |")
	assert.Contains(t, rows["conv1x1s1_c64k64_h1w21_neon"], "| products of wino4_c64k64_h56_neon |")
}
