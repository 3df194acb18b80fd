package jpeg

import (
	"bytes"
	stdjpeg "image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet/internal/libjpeg"
)

func caseNamed(t *testing.T, name string) libjpeg.Case {
	for _, c := range libjpeg.Cases {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no case %q", name)
	return libjpeg.Case{}
}

// Every prefix of a file is refused with an error (never a panic), except
// a sequential file cut only in its EOI marker, whose image is complete.
func TestTruncated(t *testing.T) {
	for _, c := range []libjpeg.Case{
		{Name: "sequential", W: 48, H: 40, Args: []string{"-restart", "2B"}},
		{Name: "progressive", W: 40, H: 33, Args: []string{"-progressive", "-sample", "2x1", "-restart", "3B"}},
		{Name: "grey progressive", W: 37, H: 29, Args: []string{"-progressive", "-grayscale"}},
	} {
		data := c.Encode(t)
		for n := range len(data) {
			_, err := Decode(data[:n], 1<<20)
			if c.Name == "sequential" && n >= len(data)-2 {
				assert.NoError(t, err, "%s cut to %d of %d bytes: only EOI is missing", c.Name, n, len(data))
				continue
			}
			require.Error(t, err, "%s cut to %d of %d bytes", c.Name, n, len(data))
		}
	}
}

// Random byte corruption never panics; what decodes has the frame's size.
func TestCorruptNoPanic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, name := range []string{"420 odd", "444 progressive", "422 restart 1 row", "grey progressive odd"} {
		data := caseNamed(t, name).Encode(t)
		for range 1500 {
			m := bytes.Clone(data)
			for range 1 + rng.IntN(4) {
				m[rng.IntN(len(m))] = byte(rng.IntN(256))
			}
			img, err := Decode(m, 1<<20)
			if err == nil {
				cfg, err := DecodeConfig(m)
				require.NoError(t, err)
				assert.Equal(t, [2]int{cfg.Width, cfg.Height}, [2]int{img.Bounds().Dx(), img.Bounds().Dy()})
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	data := caseNamed(t, "420 q90").Encode(t)
	_, err := Decode(data, 160*96-1)
	assert.ErrorContains(t, err, "160x96 pixels; the limit is 15359")
	_, err = Decode([]byte("GIF89a"), 1<<20)
	assert.ErrorContains(t, err, "not a JPEG")
	_, err = Decode(nil, 1<<20)
	assert.ErrorContains(t, err, "not a JPEG")

	// A scan that runs out of entropy-coded data before its last MCU: the
	// EOI marker moved forward over the last bytes of the scan.
	cut := append(bytes.Clone(data[:len(data)-40]), 0xFF, 0xD9)
	_, err = Decode(cut, 1<<20)
	assert.ErrorContains(t, err, "entropy-coded data ends before the scan does")

	// A Huffman table with more codes than fit: 3 codes of length 1.
	bad := bytes.Clone(data)
	i := bytes.Index(bad, []byte{0xFF, 0xC4})
	require.Positive(t, i)
	bad[i+5] = 3 // the count of 1-bit codes of the first table
	_, err = Decode(bad, 1<<20)
	assert.Error(t, err)
}

// Valid JPEGs this decoder does not do are ErrUnsupported (the caller
// falls back to image/jpeg), each for its reason.
func TestUnsupported(t *testing.T) {
	dir := t.TempDir()
	dcOnly := filepath.Join(dir, "dc-only.scans")
	require.NoError(t, os.WriteFile(dcOnly, []byte("0,1,2: 0 0 0 0;\n"), 0o644))
	for _, c := range []struct {
		args []string
		why  string
	}{
		{[]string{"-arithmetic"}, "arithmetic"},
		{[]string{"-sample", "3x1"}, "chroma sampling Y 3x1"},
		{[]string{"-sample", "2x2,1x1,2x1"}, "chroma sampling Y 2x2, Cb 1x1, Cr 2x1"},
		{[]string{"-rgb", "-sample", "2x1"}, "subsampled RGB-coded JPEG"},
		{[]string{"-scans", dcOnly}, "libjpeg smooths them"},
	} {
		data := libjpeg.Case{Name: c.why, W: 40, H: 30, Args: c.args}.Encode(t)
		_, err := Decode(data, 1<<20)
		require.ErrorIs(t, err, ErrUnsupported, "cjpeg %v", c.args)
		assert.ErrorContains(t, err, c.why)
	}
	// DecodeConfig knows the layout but not yet the scans.
	data := libjpeg.Case{W: 40, H: 30, Args: []string{"-sample", "3x1"}}.Encode(t)
	_, err := DecodeConfig(data)
	assert.ErrorIs(t, err, ErrUnsupported)
}

// DecodeConfig agrees with image/jpeg's on every case.
func TestDecodeConfig(t *testing.T) {
	for _, c := range libjpeg.Cases {
		data := c.Encode(t)
		got, err := DecodeConfig(data)
		require.NoError(t, err, c.Name)
		want, err := stdjpeg.DecodeConfig(bytes.NewReader(data))
		require.NoError(t, err, c.Name)
		assert.Equal(t, [2]int{want.Width, want.Height}, [2]int{got.Width, got.Height}, c.Name)
		assert.Equal(t, want.ColorModel, got.ColorModel, c.Name)
	}
}
