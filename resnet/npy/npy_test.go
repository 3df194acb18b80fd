package npy

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The files in testdata were written by NumPy (see its README).
func TestReadsWhatNumPyWrote(t *testing.T) {
	want := make([]float32, 24)
	for i := range want {
		want[i] = float32(i)*0.5 - 3
	}
	for name, a := range map[string]*Array{
		"f32_2x3x4.npy":     {[]int{2, 3, 4}, want},
		"f32_scalar.npy":    {[]int{}, []float32{2.5}},
		"f32_vec.npy":       {[]int{3}, []float32{1.5, -2.25, 1e-3}},
		"f32_v2.npy":        {[]int{5}, []float32{0, 1, 2, 3, 4}},
		"f32_empty_0x3.npy": {[]int{0, 3}, []float32{}},
	} {
		got, err := ReadFile("testdata/" + name)
		require.NoError(t, err, name)
		assert.Equal(t, a, got, name)
	}
}

// Our writer produces exactly NumPy's bytes for the same arrays.
func TestWritesWhatNumPyWrites(t *testing.T) {
	for _, name := range []string{"f32_2x3x4.npy", "f32_scalar.npy", "f32_vec.npy", "f32_empty_0x3.npy"} {
		orig, err := os.ReadFile("testdata/" + name)
		require.NoError(t, err)
		a, err := Read(bytes.NewReader(orig))
		require.NoError(t, err)
		var b bytes.Buffer
		require.NoError(t, Write(&b, a))
		assert.Equal(t, orig, b.Bytes(), name)
	}
	assert.ErrorContains(t, Write(&bytes.Buffer{}, &Array{Shape: []int{2, 2}, Data: []float32{1}}), "holds 4 values, got 1")
}

func TestBadFilesAreRefused(t *testing.T) {
	for name, want := range map[string]string{
		"f64_2x2.npy":     `dtype "<f8": only float32`,
		"i64_3.npy":       `dtype "<i8": only float32`,
		"f32_fortran.npy": "Fortran order",
	} {
		_, err := ReadFile("testdata/" + name)
		assert.ErrorContains(t, err, want, name)
	}
	good, err := os.ReadFile("testdata/f32_2x3x4.npy")
	require.NoError(t, err)
	for n := 0; n < len(good); n++ {
		_, err := Read(bytes.NewReader(good[:n]))
		assert.Error(t, err, "prefix of %d bytes", n)
	}
	_, err = Read(bytes.NewReader([]byte("PK\x03\x04 not numpy")))
	assert.ErrorContains(t, err, "no \\x93NUMPY magic")
	huge := bytes.Replace(good, []byte("(2, 3, 4)"), []byte("(99999999999, 4)"), 1)
	_, err = Read(bytes.NewReader(huge))
	assert.ErrorContains(t, err, "more than")
	_, err = ReadFile("testdata/missing.npy")
	assert.ErrorContains(t, err, "missing.npy")
}

func FuzzRead(f *testing.F) {
	for _, name := range []string{"f32_2x3x4.npy", "f32_v2.npy", "f64_2x2.npy", "f32_scalar.npy"} {
		b, err := os.ReadFile("testdata/" + name)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		n := 1
		for _, d := range a.Shape {
			n *= d
		}
		if n != len(a.Data) {
			t.Fatalf("shape %v with %d values", a.Shape, len(a.Data))
		}
		var out bytes.Buffer
		if err := Write(&out, a); err != nil {
			t.Fatal(err)
		}
		back, err := Read(&out)
		if err != nil || len(back.Data) != len(a.Data) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
