package preprocess

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet/internal/libjpeg"
	"github.com/resnetgen/resnetgen/resnet/jpeg"
)

func gray(w, h int, vals ...uint8) *RGB {
	r := &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for i, v := range vals {
		r.Pix[3*i], r.Pix[3*i+1], r.Pix[3*i+2] = v, v, v
	}
	return r
}

func row(r *RGB) []uint8 {
	out := make([]uint8, r.W*r.H)
	for i := range out {
		out[i] = r.Pix[3*i]
	}
	return out
}

// Worked out by hand from Pillow's algorithm (triangle filter of support
// max(scale, 1), windows from int(center ± support + 0.5), weights
// normalised, rounded to 8 bits):
//
//	4 → 2, row 10 20 30 40: out0 = (0.75·10 + 0.75·20 + 0.25·30) / 1.75 = 17.14 → 17
//	                        out1 = (0.25·20 + 0.75·30 + 0.75·40) / 1.75 = 32.86 → 33
//	2 → 4, row 10 20:       10, 0.75·10 + 0.25·20 = 12.5 → 13, 17.5 → 18, 20
//
// This pins our resize to Pillow's arithmetic, which is what torchvision's
// Resize runs on PIL images; outputs within 1 of those (8-bit rounding
// between the two passes included) are what to expect against torchvision.
func TestResizeByHand(t *testing.T) {
	assert.Equal(t, []uint8{17, 33}, row(Resize(gray(4, 1, 10, 20, 30, 40), 2, 1)))
	assert.Equal(t, []uint8{10, 13, 18, 20}, row(Resize(gray(2, 1, 10, 20), 4, 1)))
	// Vertically the same arithmetic.
	assert.Equal(t, []uint8{17, 33}, row(Resize(gray(1, 4, 10, 20, 30, 40), 1, 2)))
	// A constant image stays constant at any size.
	c := gray(7, 5, bytes.Repeat([]byte{200}, 35)...)
	for _, v := range row(Resize(c, 3, 11)) {
		require.Equal(t, uint8(200), v)
	}
	same := Resize(c, 7, 5)
	assert.Equal(t, c, same)
	same.Pix[0] = 1
	assert.Equal(t, uint8(200), c.Pix[0], "a same-size resize copies")
}

func TestResizeShorterAndCrop(t *testing.T) {
	r := ResizeShorter(gray(640, 480), 256)
	assert.Equal(t, [2]int{341, 256}, [2]int{r.W, r.H}, "int(256·640/480) = 341")
	r = ResizeShorter(gray(300, 500), 256)
	assert.Equal(t, [2]int{256, 426}, [2]int{r.W, r.H})

	// (5−2)/2 = 1.5 rounds to 2 and (7−2)/2 = 2.5 to 2, as Python's round().
	src := &RGB{W: 7, H: 5, Pix: make([]uint8, 3*35)}
	for i := 0; i < 35; i++ {
		src.Pix[3*i] = uint8(i)
	}
	c, err := CenterCrop(src, 2)
	require.NoError(t, err)
	assert.Equal(t, []uint8{2*7 + 2, 2*7 + 3, 3*7 + 2, 3*7 + 3}, row(c))
	_, err = CenterCrop(src, 6)
	assert.ErrorContains(t, err, "center crop of 6 from a 7x5 image")
}

func TestTensorByHand(t *testing.T) {
	r := &RGB{W: 1, H: 1, Pix: []uint8{255, 0, 51}}
	x := Tensor(r)
	assert.InDelta(t, (1-0.485)/0.229, x[0], 1e-6)
	assert.InDelta(t, (0-0.456)/0.224, x[1], 1e-6)
	assert.InDelta(t, (0.2-0.406)/0.225, x[2], 1e-6)
}

func writePNG(t *testing.T, dir string, w, h int) string {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	img.Set(0, 0, color.NRGBA{255, 0, 0, 255})
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	p := filepath.Join(dir, "x.png")
	require.NoError(t, os.WriteFile(p, b.Bytes(), 0o644))
	return p
}

func TestDecodeAndImageNet(t *testing.T) {
	dir := t.TempDir()
	img, err := DecodeFile(writePNG(t, dir, 300, 260))
	require.NoError(t, err)
	x, err := ImageNet(img)
	require.NoError(t, err)
	assert.Len(t, x, 3*224*224)

	// A header claiming 100000×100000 pixels is refused before decoding.
	b, err := os.ReadFile(filepath.Join(dir, "x.png"))
	require.NoError(t, err)
	binary.BigEndian.PutUint32(b[16:], 100000)
	binary.BigEndian.PutUint32(b[20:], 100000)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29])) // IHDR's CRC
	huge := filepath.Join(dir, "huge.png")
	require.NoError(t, os.WriteFile(huge, b, 0o644))
	_, err = DecodeFile(huge)
	assert.ErrorContains(t, err, "png image of 100000x100000 pixels; the limit is")

	text := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(text, []byte("hello"), 0o644))
	_, err = DecodeFile(text)
	assert.ErrorContains(t, err, "not a JPEG or PNG image")

	good, err := os.ReadFile(filepath.Join(dir, "x.png"))
	require.NoError(t, err)
	cut := filepath.Join(dir, "cut.png")
	require.NoError(t, os.WriteFile(cut, good[:len(good)/2], 0o644))
	_, err = DecodeFile(cut)
	assert.ErrorContains(t, err, "corrupt png image")
}

// libjpeg's fancy upsampling, worked out by hand from jdsample.c's
// formulas: 4:2:2 weights 3/4 and 1/4 rounded (+1, +2) >> 2, edges copied;
// 4:2:0 the same in both directions, (+8, +7) >> 4, the edge rows mixed
// with themselves. (Against Pillow itself: cmd/resnet's TestTorchvisionInterop.)
func TestFancyUpsamplingByHand(t *testing.T) {
	// (3·0+100+2)>>2 = 25, (3·100+0+1)>>2 = 75, (300+200+2)>>2 = 125, (600+100+1)>>2 = 175.
	assert.Equal(t, []uint8{0, 25, 75, 125, 175, 200}, upsample([]uint8{0, 100, 200}, 2, 1, 6, 1))
	assert.Equal(t, []uint8{0, 25, 75, 125, 175}, upsample([]uint8{0, 100, 200}, 2, 1, 5, 1), "odd width: cropped")
	assert.Equal(t, []uint8{7, 7, 9, 9}, upsample([]uint8{7, 9}, 2, 1, 4, 1), "2 samples: box, as libjpeg")
	// 4:4:0, a column of chroma rows 0 and 100: above a row's centre
	// (3·near + far + 1) >> 2, below it + 2, the edge rows mixed with
	// themselves: 0, (0+100+2)>>2 = 25, (300+0+1)>>2 = 75, (400+2)>>2 = 100.
	assert.Equal(t, []uint8{0, 25, 75, 100}, upsample([]uint8{0, 100}, 1, 2, 1, 4))
	assert.Equal(t, []uint8{0, 25, 75}, upsample([]uint8{0, 100}, 1, 2, 1, 3), "odd height: cropped")

	// One chroma row of 3: it mixes with itself (column sums 4v), so each
	// output row is in 16ths: (16·0+8)>>4 = 0, (12·0+400+7)>>4 = 25,
	// (1200+0+8)>>4 = 75, (1200+800+7)>>4 = 125, (2400+400+8)>>4 = 175,
	// (3200+7)>>4 = 200 — here the same as 4:2:2.
	row := []uint8{0, 25, 75, 125, 175, 200}
	assert.Equal(t, append(append([]uint8{}, row...), row...), upsample([]uint8{0, 100, 200}, 2, 2, 6, 2))
	// Two chroma rows, a column of 3 constant per row (0 above, 160 below):
	// output rows 0..3 are (4·0)/4, (3·0+160)/4 = 40, (3·160+0)/4 = 120, 160.
	got := upsample([]uint8{0, 0, 0, 160, 160, 160}, 2, 2, 6, 4)
	for y, want := range []uint8{0, 40, 120, 160} {
		for x := 0; x < 6; x++ {
			assert.Equal(t, want, got[y*6+x], "row %d col %d", y, x)
		}
	}
}

// libjpeg's YCbCr → RGB tables on the primaries: Y=76, Cb=85, Cr=255 is
// JFIF red.
func TestJPEGColourTables(t *testing.T) {
	m := image.NewYCbCr(image.Rect(0, 0, 1, 1), image.YCbCrSubsampleRatio444)
	m.Y[0], m.Cb[0], m.Cr[0] = 76, 85, 255
	r, ok := ycbcrToRGB(m)
	require.True(t, ok)
	// R = 76 + round(1.402·127) = 76 + 178 = 254; G = 76 + ⌊(−0.34414·−43 − 0.71414·127)·65536 + 32768⌋>>16
	// = 76 − 76 = 0 (−75.9 rounds to −76); B = 76 + round(1.772·−43) = 76 − 76 = 0.
	assert.Equal(t, []uint8{254, 0, 0}, r.Pix)
}

// TestJPEGMatchesLibjpeg: DecodeFile + ToRGB give djpeg's RGB pixels
// exactly — libjpeg-turbo with its defaults, as Pillow decodes — over every
// chroma layout, progressive and restart-interval files and odd sizes
// (libjpeg.Cases). The decoder (resnet/jpeg) and the upsampling and colour
// conversion here are held to libjpeg together.
func TestJPEGMatchesLibjpeg(t *testing.T) {
	for _, c := range libjpeg.Cases {
		t.Run(c.Name, func(t *testing.T) {
			data := c.Encode(t)
			dir := t.TempDir()
			w, h, ch, want, err := libjpeg.Decode(dir, data)
			require.NoError(t, err)
			path := filepath.Join(dir, "x.jpg")
			require.NoError(t, os.WriteFile(path, data, 0o644))
			img, err := DecodeFile(path)
			require.NoError(t, err)
			got := ToRGB(img)
			require.Equal(t, [2]int{w, h}, [2]int{got.W, got.H})
			if ch == 1 { // djpeg writes grey as PGM; PIL's convert("RGB") replicates it
				grey := want
				want = make([]uint8, 3*len(grey))
				for i, v := range grey {
					want[3*i], want[3*i+1], want[3*i+2] = v, v, v
				}
			}
			diff, worst := 0, 0
			for i := range want {
				if d := int(got.Pix[i]) - int(want[i]); d != 0 {
					diff++
					worst = max(worst, d, -d)
				}
			}
			assert.Zero(t, diff, "samples differing from djpeg's (of %d; worst by %d levels)", len(want), worst)
		})
	}
}

// JPEGs resnet/jpeg does not decode go to image/jpeg; what neither
// decodes is refused, and says why; a corrupt one is called corrupt.
func TestJPEGFallback(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o644))
		return p
	}
	// 3×1 luma sampling: neither resnet/jpeg's nor image/jpeg's (CMYK, which
	// is image/jpeg's only, is in TestGoTestdataJPEGs).
	_, err := DecodeFile(write("311.jpg", libjpeg.Case{W: 40, H: 30, Args: []string{"-sample", "3x1"}}.Encode(t)))
	assert.ErrorContains(t, err, "unsupported JPEG: jpeg: unsupported: chroma sampling Y 3x1, Cb 1x1, Cr 1x1; image/jpeg:")

	// Arithmetic coding: neither decoder's.
	_, err = DecodeFile(write("arith.jpg", libjpeg.Case{W: 40, H: 30, Args: []string{"-arithmetic"}}.Encode(t)))
	assert.ErrorContains(t, err, "unsupported JPEG: jpeg: unsupported: arithmetic coding, sequential (SOF9); image/jpeg:")

	good := libjpeg.Case{W: 40, H: 30}.Encode(t)
	_, err = DecodeFile(write("cut.jpg", good[:len(good)/2]))
	assert.ErrorContains(t, err, "corrupt jpeg image: jpeg: ")

	// A frame header claiming 60000×60000 pixels is refused before decoding.
	huge := bytes.Clone(good)
	sof := bytes.Index(huge, []byte{0xFF, 0xC0})
	require.Positive(t, sof)
	binary.BigEndian.PutUint16(huge[sof+5:], 60000) // height
	binary.BigEndian.PutUint16(huge[sof+7:], 60000) // width
	_, err = DecodeFile(write("huge.jpg", huge))
	assert.ErrorContains(t, err, "jpeg image of 60000x60000 pixels; the limit is")
}

// TestGoTestdataJPEGs: the JPEGs in Go's own source tree (image/testdata,
// written by several encoders: odd sampling factors, separate DC scans,
// restarts, RGB, CMYK, a truncated progressive file) decode to djpeg's
// pixels exactly, except the kinds resnet/jpeg leaves to image/jpeg (CMYK;
// progressive scans libjpeg would smooth; RGB with subsampled G and B),
// which must still decode.
func TestGoTestdataJPEGs(t *testing.T) {
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(strings.TrimSpace(string(goroot)), "src", "image", "testdata", "*.jpeg"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 25, "Go's image/testdata JPEGs")
	fallback := map[string]bool{
		"video-001.cmyk.jpeg":                  true,
		"video-001.progressive.truncated.jpeg": true,
		"video-001.rgb.jpeg":                   true,
	}
	for _, f := range files {
		name := filepath.Base(f)
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		img, err := DecodeFile(f)
		require.NoError(t, err, name)
		_, ourErr := jpeg.Decode(data, MaxPixels)
		if fallback[name] {
			assert.ErrorIs(t, ourErr, jpeg.ErrUnsupported, name)
			continue
		}
		require.NoError(t, ourErr, name)
		w, h, ch, want, err := libjpeg.Decode(t.TempDir(), data)
		require.NoError(t, err, name)
		got := ToRGB(img)
		require.Equal(t, [2]int{w, h}, [2]int{got.W, got.H}, name)
		diff := 0
		for i := range got.Pix {
			if got.Pix[i] != want[i/3*ch+i%3%ch] {
				diff++
			}
		}
		assert.Zero(t, diff, "%s: samples differing from djpeg's", name)
	}
}

// upsample runs the row upsampler over a whole plane (stride (w+fx-1)/fx)
// to a w×h result.
func upsample(in []uint8, fx, fy, w, h int) []uint8 {
	c := newChroma(in, 0, (w+fx-1)/fx, w, h, fx, fy)
	out := make([]uint8, w*h)
	for y := range h {
		c.upsampleRow(y, out[y*w:(y+1)*w])
	}
	return out
}

// BenchmarkPhoto: the stages of classify's preprocessing on a 12-megapixel
// 4:2:0 JPEG (q90), as a phone camera writes them.
func BenchmarkPhoto(b *testing.B) {
	data := libjpeg.Case{W: 4000, H: 3000, Args: []string{"-quality", "90"}}.Encode(b)
	path := filepath.Join(b.TempDir(), "photo.jpg")
	require.NoError(b, os.WriteFile(path, data, 0o644))
	img, err := DecodeFile(path)
	require.NoError(b, err)
	rgb := ToRGB(img)
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodeFile(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("torgb", func(b *testing.B) {
		for b.Loop() {
			ToRGB(img)
		}
	})
	b.Run("resize", func(b *testing.B) {
		for b.Loop() {
			ResizeShorter(rgb, ResizeSize)
		}
	})
}
