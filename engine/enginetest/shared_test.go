package enginetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const generated = "../../generated"

// The family's packages: ResNet-34's kernels are ResNet-18's, file for
// file (ResNet-18 has int8 kernels besides); plain-18's a subset of them;
// ResNet-34's not plain-18's (it has the projection shortcuts' 1x1
// kernels), nor ResNet-50's ResNet-18's.
func TestSharedKernelsOfTheFamily(t *testing.T) {
	n, err := SharedKernels(filepath.Join(generated, "resnet34"), filepath.Join(generated, "resnet18"))
	require.NoError(t, err)
	assert.Greater(t, n, 50, "kernels compared")
	_, err = SharedKernels(filepath.Join(generated, "plain18"), filepath.Join(generated, "resnet18"))
	require.NoError(t, err)
	_, err = SharedKernels(filepath.Join(generated, "resnet34"), filepath.Join(generated, "plain18"))
	assert.ErrorContains(t, err, `Conv "conv1x1s2_c64k128_h56_avx512" is not in`)
	_, err = SharedKernels(filepath.Join(generated, "resnet18"), filepath.Join(generated, "plain18"))
	assert.ErrorContains(t, err, "kernels_int8_avx2_amd64.go: no such file", "ResNet-18 has int8 kernels, plain-18 none")
	_, err = SharedKernels(filepath.Join(generated, "resnet50"), filepath.Join(generated, "resnet18"))
	assert.Error(t, err)
	// With int8 kernels: their assembly and table, and the table's Int8 flag.
	n, err = SharedKernels(filepath.Join(generated, "cifar", "resnet110"), filepath.Join(generated, "cifar", "resnet20"))
	require.NoError(t, err)
	assert.Greater(t, n, 20, "kernels compared")
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(generated, "cifar", "resnet20", "kernels_*"))
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if filepath.Base(f) == "kernels_amd64.go" {
			require.Contains(t, string(b), "Int8: true,")
			b = []byte(strings.Replace(string(b), "Int8: true,", "Int8: false,", 1))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644))
	}
	_, err = SharedKernels(dir, filepath.Join(generated, "cifar", "resnet20"))
	assert.ErrorContains(t, err, "kernels_amd64.go: Int8 differs")
}

// One changed instruction, table entry or declaration, or a missing file,
// is found and named.
func TestSharedKernelsFindsADifference(t *testing.T) {
	of := filepath.Join(generated, "plain18")
	files, err := filepath.Glob(filepath.Join(of, "kernels_*"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, c := range []struct {
		file, old, new, want string
	}{
		{"kernels_avx512_amd64.s", "VFMADD231PS", "VFMADD213PS", "kernels_avx512_amd64.s: ·wino4in_avx512 differs from ../../generated/plain18's:\n  line 49: \"VFMADD213PS  Z7, Z0, Z4\", theirs \"VFMADD231PS  Z7, Z0, Z4\""},
		{"kernels_neon_arm64.s", "VLD1.P 64(R20)", "VLD1.P 48(R20)", "kernels_neon_arm64.s: ·conv7x7s2_c3k64_h224_neon differs"},
		{"kernels_amd64.go", "TH: 1, TW: 14, V: 2", "TH: 1, TW: 7, V: 2", `kernels_amd64.go: Conv "conv7x7s2_c3k64_h224_avx512" differs`},
		{"kernels_avx2_amd64.go", "(in *float32, w *float32", "(in *float32, v *float32", "kernels_avx2_amd64.go: func"},
		{"kernels_other.go", "var kernels asm.KernelSet", "var kernels asm.KernelSet\nvar more asm.KernelSet", "kernels_other.go: var more is not in"},
		{"kernels_avx512_amd64.s", "", "", "no such file"},
	} {
		dir := t.TempDir()
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			if filepath.Base(f) == c.file {
				if c.old == "" {
					continue // the file is missing
				}
				require.Contains(t, string(b), c.old)
				b = []byte(strings.Replace(string(b), c.old, c.new, 1))
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644))
		}
		if c.old == "" { // the other way round: a file the other package lacks
			_, err = SharedKernels(of, dir)
		} else {
			_, err = SharedKernels(dir, of)
		}
		assert.ErrorContains(t, err, c.want, "%s: %s → %s", c.file, c.old, c.new)
	}
	_, err = SharedKernels(t.TempDir(), of)
	assert.ErrorContains(t, err, "no generated kernel files")
}

// Comments and blank lines do not count; the code does.
func TestAsmFunctions(t *testing.T) {
	a, err := asmFunctions([]byte("#include \"textflag.h\"\n\n// f does x\nTEXT ·f(SB), NOSPLIT, $0-8\n\tMOVQ a+0(FP), AX // load\n\tRET\n\n// g\nTEXT ·g(SB), NOSPLIT, $0\n\tRET\n"))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		"":   "#include \"textflag.h\"\n",
		"·f": "TEXT ·f(SB), NOSPLIT, $0-8\nMOVQ a+0(FP), AX // load\nRET\n",
		"·g": "TEXT ·g(SB), NOSPLIT, $0\nRET\n",
	}, a)
	_, err = asmFunctions([]byte("TEXT ·f(SB), $0\nRET\nTEXT ·f(SB), $0\nRET\n"))
	assert.ErrorContains(t, err, "TEXT ·f twice")
}
