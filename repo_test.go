// Tests of the repository as a whole: what is committed, and which
// package may import which (DESIGN.md, "Import rules").
package resnetgen_test

import (
	"bytes"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/resnetgen/resnetgen"

// trackedFiles lists the files git tracks, with their modes. It stats the
// index in this process, so that go test's cache, which sees only what the
// test process itself opens, runs the test again once a file is added.
func trackedFiles(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--git-path", "index").Output()
	require.NoError(t, err, "this test reads the git checkout it runs in")
	_, err = os.Stat(strings.TrimSpace(string(out)))
	require.NoError(t, err)
	out, err = exec.Command("git", "ls-files", "--stage", "-z").Output()
	require.NoError(t, err)
	files := map[string]string{}
	for _, rec := range bytes.Split(bytes.TrimSuffix(out, []byte{0}), []byte{0}) {
		meta, path, ok := strings.Cut(string(rec), "\t") // "MODE HASH STAGE\tPATH"
		require.True(t, ok, "git ls-files: %q", rec)
		files[path] = strings.Fields(meta)[0]
	}
	require.Contains(t, files, "go.mod", "the list is this repository's")
	return files
}

// executableMagic are the first bytes of compiled programs and libraries:
// ELF, Mach-O (both byte orders, 32 and 64 bit, universal), Windows PE,
// ar archives (Go's .a) and WebAssembly.
var executableMagic = []struct{ name, magic string }{
	{"ELF", "\x7fELF"},
	{"Mach-O", "\xfe\xed\xfa\xce"}, {"Mach-O", "\xfe\xed\xfa\xcf"},
	{"Mach-O", "\xce\xfa\xed\xfe"}, {"Mach-O", "\xcf\xfa\xed\xfe"}, {"Mach-O universal", "\xca\xfe\xba\xbe"},
	{"PE", "MZ\x90\x00"}, {"PE", "MZ\x00\x00"},
	{"ar archive", "!<arch>\n"},
	{"WebAssembly", "\x00asm"},
}

// binaryKind names the executable format of a file that starts with head,
// or "" if it is none.
func binaryKind(head []byte) string {
	for _, m := range executableMagic {
		if bytes.HasPrefix(head, []byte(m.magic)) {
			return m.name
		}
	}
	return ""
}

// No built program is committed (an 11.7 MB resnetgen binary once was):
// no tracked file starts as an executable or object file does, and every
// file marked executable is a script.
func TestNoBinariesCommitted(t *testing.T) {
	var bad []string
	for path, mode := range trackedFiles(t) {
		if mode == "120000" || mode == "160000" { // a symbolic link, a submodule
			continue
		}
		f, err := os.Open(path)
		require.NoError(t, err)
		head := make([]byte, 8)
		n, _ := f.Read(head)
		f.Close()
		head = head[:n]
		if kind := binaryKind(head); kind != "" {
			bad = append(bad, path+": "+kind)
		} else if mode == "100755" && !bytes.HasPrefix(head, []byte("#!")) {
			bad = append(bad, path+": marked executable, and not a script")
		}
	}
	sort.Strings(bad)
	assert.Empty(t, bad, "committed binaries (build them, do not commit them; .gitignore lists the usual names)")
}

// binaryKind knows each format by its first bytes, and text by none.
func TestBinaryKind(t *testing.T) {
	exe, err := os.Executable() // this test binary
	require.NoError(t, err)
	f, err := os.Open(exe)
	require.NoError(t, err)
	defer f.Close()
	head := make([]byte, 8)
	_, err = f.Read(head)
	require.NoError(t, err)
	assert.NotEmpty(t, binaryKind(head), "the running test binary")
	for _, m := range executableMagic {
		assert.Equal(t, m.name, binaryKind([]byte(m.magic+"rest")))
	}
	for _, text := range []string{"package x", "#!/bin/sh", "MZ is a name", "", "\x7fEL"} {
		assert.Empty(t, binaryKind([]byte(text)), "%q", text)
	}
}

// deps returns every package that the packages under dir import, directly
// or through other packages of this module, on GOOS/GOARCH with tags,
// with what imports each; tests adds the imports of their tests.
func deps(t *testing.T, dir, goarch string, tags []string, tests bool) map[string]string {
	t.Helper()
	ctx := build.Default
	ctx.GOOS, ctx.GOARCH, ctx.BuildTags, ctx.CgoEnabled = "linux", goarch, tags, false
	found := map[string]string{}
	var visit func(path, from string, withTests bool)
	visit = func(path, from string, withTests bool) {
		if _, seen := found[path]; seen && !withTests {
			return
		}
		found[path] = from
		if path != module && !strings.HasPrefix(path, module+"/") {
			return // another module's: none imports this one
		}
		p, err := ctx.ImportDir(filepath.FromSlash("."+strings.TrimPrefix(path, module)), 0)
		if _, none := err.(*build.NoGoError); none {
			return
		}
		require.NoError(t, err, path)
		imports := p.Imports
		if withTests {
			imports = append(append(append([]string(nil), imports...), p.TestImports...), p.XTestImports...)
		}
		for _, imp := range imports {
			if _, seen := found[imp]; !seen {
				visit(imp, path, false)
			}
		}
	}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); p != dir && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		visit(module+"/"+filepath.ToSlash(p), "", tests)
		return nil
	}))
	return found
}

// The arrows of DESIGN.md's import rules that must never point up, checked
// in every build (amd64, arm64, purego): a generated package (ours or a
// user's) links neither its generator nor Avo or Jennifer; engine,
// enginetest and engine's tests included, imports nothing of bench; the
// reference in resnet depends on nothing it judges; asm on neither resnet
// nor engine.
func TestImportRules(t *testing.T) {
	for _, rule := range []struct {
		from      string
		tests     bool
		forbidden []string
	}{
		{"generated", false, []string{module + "/gen", "github.com/mmcloughlin/avo", "github.com/dave/jennifer", module + "/bench", module + "/cmd", module + "/serve"}},
		{"engine", true, []string{module + "/bench", module + "/gen", module + "/cmd", module + "/serve"}},
		{"resnet", false, []string{module + "/asm", module + "/engine", module + "/generated", module + "/gen", module + "/bench"}},
		{"asm", false, []string{module + "/resnet", module + "/engine", module + "/generated", module + "/gen", module + "/bench"}},
	} {
		for _, b := range []struct {
			goarch string
			tags   []string
		}{{"amd64", nil}, {"arm64", nil}, {"amd64", []string{"purego"}}} {
			found := deps(t, rule.from, b.goarch, b.tags, rule.tests)
			require.Contains(t, found, module+"/"+rule.from, "the walk starts at %s", rule.from)
			for path := range found {
				for _, f := range rule.forbidden {
					if path == f || strings.HasPrefix(path, f+"/") {
						chain := []string{path}
						for p := found[path]; p != ""; p = found[p] {
							chain = append(chain, p)
						}
						t.Errorf("%s/... imports %s (%s %v): %s", rule.from, f, b.goarch, b.tags, strings.Join(chain, " ← "))
					}
				}
			}
		}
	}
}
