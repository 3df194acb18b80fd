package preprocess

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet/internal/libjpeg"
	"github.com/resnetgen/resnetgen/resnet/npy"
)

// torchPython is the interpreter with Debian's python3-torchvision
// (torch 1.13, torchvision 0.14, Pillow 9.4); .ci/run installs it.
func torchPython() string {
	if p := os.Getenv("RESNET_TORCH_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// The transforms held to torchvision: the three sizes a generated package
// may have with their default Resize, and the two ways CenterCrop pads.
var torchTransforms = map[string]Transform{
	"imagenet224": Default(224, 224),
	"200x300":     Default(200, 300),
	// CIFAR-10's own statistics, to show the normalisation is the caller's.
	"32": {Height: 32, Width: 32, Resize: DefaultResize(32, 32), Mean: [3]float64{0.4914, 0.4822, 0.4465}, Std: [3]float64{0.247, 0.2435, 0.2616}},
	// No resize: images smaller than 32 are padded, larger ones cropped.
	"32-noresize": {Height: 32, Width: 32, Mean: ImageNetMean(), Std: ImageNetStd()},
	// A shorter side of 256 under a 300-wide crop: portrait images are
	// padded left and right.
	"200x300-resize256": {Height: 200, Width: 300, Resize: 256, Mean: [3]float64{0.5, 0.5, 0.5}, Std: [3]float64{0.25, 0.25, 0.25}},
}

// testPNGs writes PNGs of odd sizes in the colour types Go's encoder
// writes: 8-bit RGBA with varying alpha (0 included), 8-bit RGB, grey,
// paletted, 16-bit RGB and 16-bit RGBA with varying alpha, and a large one.
func testPNGs(t *testing.T, dir string) []string {
	scene := func(w, h int) *image.NRGBA {
		m := image.NewNRGBA(image.Rect(0, 0, w, h))
		rgb := libjpeg.Scene(w, h, uint32(w*h))
		for i := range w * h {
			copy(m.Pix[4*i:], rgb[3*i:3*i+3])
			m.Pix[4*i+3] = uint8(i * 7)
		}
		return m
	}
	opaque := func(m *image.NRGBA) *image.RGBA {
		o := image.NewRGBA(m.Rect)
		for i := range o.Pix {
			o.Pix[i] = m.Pix[i] | uint8(0xFF*(i%4/3))
		}
		return o
	}
	deep := func(m *image.NRGBA, alpha bool) image.Image {
		o := image.NewNRGBA64(m.Rect)
		for i, v := range m.Pix {
			lo := uint8(i * 37) // low bytes the conversion must drop
			if i%4 == 3 && !alpha {
				v, lo = 0xFF, 0xFF
			}
			o.Pix[2*i], o.Pix[2*i+1] = v, lo
		}
		if alpha {
			return o
		}
		r := image.NewRGBA64(o.Rect) // opaque: the encoder writes RGB
		copy(r.Pix, o.Pix)
		return r
	}
	grey := image.NewGray(image.Rect(0, 0, 45, 77))
	copy(grey.Pix, libjpeg.Scene(45, 77, 9))
	pal := image.NewPaletted(image.Rect(0, 0, 129, 67), nil)
	for i := range 200 {
		pal.Palette = append(pal.Palette, color.RGBA{uint8(i * 3), uint8(255 - i), uint8(i * i), 255})
	}
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i * i % 200)
	}
	imgs := map[string]image.Image{
		"go-rgba8.png":  scene(263, 157),
		"go-rgb8.png":   opaque(scene(151, 211)),
		"go-grey8.png":  grey,
		"go-pal8.png":   pal,
		"go-rgb16.png":  deep(scene(77, 45), false),
		"go-rgba16.png": deep(scene(45, 77), true),
		// Strong downscaling (wide filters): 1001 → 256 and → 37.
		"go-rgb8-large.png": opaque(scene(1001, 1203)),
	}
	var names []string
	for name, img := range imgs {
		var b bytes.Buffer
		require.NoError(t, png.Encode(&b, img))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644))
		names = append(names, name)
	}
	return names
}

// testJPEGs writes JPEGs with cjpeg (libjpeg-turbo) at odd sizes in every
// layout resnet/jpeg decodes, an image smaller than 32 on both sides, one
// of 640×3 (its Resize(256) is 54,613 pixels wide) and a large one.
func testJPEGs(t *testing.T, dir string) []string {
	cases := []libjpeg.Case{
		{Name: "420-q75", W: 257, H: 193, Args: []string{"-quality", "75"}},
		{Name: "422", W: 401, H: 299, Args: []string{"-sample", "2x1"}},
		{Name: "444-progressive", W: 99, H: 101, Args: []string{"-progressive", "-sample", "1x1"}},
		{Name: "440", W: 171, H: 125, Args: []string{"-sample", "1x2"}},
		{Name: "411", W: 203, H: 77, Args: []string{"-sample", "4x1"}},
		{Name: "410-progressive", W: 130, H: 97, Args: []string{"-sample", "4x2", "-progressive"}},
		{Name: "420-restart", W: 200, H: 121, Args: []string{"-restart", "3B"}},
		{Name: "grey", W: 97, H: 61, Args: []string{"-grayscale"}},
		{Name: "rgb", W: 90, H: 61, Args: []string{"-rgb"}},
		{Name: "420-tiny", W: 31, H: 23},
		{Name: "420-strip", W: 640, H: 3},
		{Name: "420-large", W: 1203, H: 1001, Args: []string{"-quality", "90"}},
	}
	var names []string
	for _, c := range cases {
		name := "cjpeg-" + c.Name + ".jpg"
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), c.Encode(t), 0o644))
		names = append(names, name)
	}
	return names
}

type torchManifest struct {
	Versions map[string]string
	Files    []struct {
		File  string
		Exact bool
		Size  [2]int
		RGB   string
		Cases []struct{ Transform, Pixels, Tensor string }
	}
}

// TestTransformMatchesTorchvision holds Transform to torchvision itself:
// for JPEGs (cjpeg's and Pillow's) and PNGs (Go's and Pillow's) of odd
// sizes, torch writes the tensors of five transforms (224×224, 200×300 and
// 32×32 with their default Resize; 32×32 without Resize; 200×300 under
// Resize(256), which pads), and ours must equal them bit for bit — as must
// the decoded pixels and the 8-bit pixels after Resize and CenterCrop.
// Files outside the exact set (a CMYK JPEG) are held to a bound instead.
func TestTransformMatchesTorchvision(t *testing.T) {
	dir := t.TempDir()
	files := append(testPNGs(t, dir), testJPEGs(t, dir)...)
	var specs []map[string]any
	for name, tf := range torchTransforms {
		require.NoError(t, tf.Validate())
		specs = append(specs, map[string]any{"name": name, "height": tf.Height, "width": tf.Width,
			"resize": tf.Resize, "mean": tf.Mean, "std": tf.Std})
	}
	b, err := json.Marshal(map[string]any{"files": files, "transforms": specs})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "spec.json"), b, 0o644))
	out, err := exec.Command(torchPython(), "testdata/transforms.py", dir).CombinedOutput()
	require.NoError(t, err, "%s\nthis test needs torch and torchvision for %s: apt-get install -y python3-torchvision "+
		"(Debian 12; .ci/run installs it), or set RESNET_TORCH_PYTHON", out, torchPython())
	b, err = os.ReadFile(filepath.Join(dir, "manifest.json"))
	require.NoError(t, err)
	var m torchManifest
	require.NoError(t, json.Unmarshal(b, &m))
	t.Logf("torch %s, torchvision %s, Pillow %s", m.Versions["torch"], m.Versions["torchvision"], m.Versions["pillow"])
	require.Len(t, m.Files, len(files)+8, "the files written here and by Pillow")

	read := func(name string) *npy.Array {
		a, err := npy.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		return a
	}
	// levels returns how many samples differ and by how much at most.
	levels := func(want *npy.Array, got *RGB) (differ, worst int) {
		require.Equal(t, []int{got.H, got.W, 3}, want.Shape)
		for i, v := range want.Data {
			if d := int(got.Pix[i]) - int(v); d != 0 {
				differ, worst = differ+1, max(worst, d, -d)
			}
		}
		return differ, worst
	}
	cases := 0
	for _, f := range m.Files {
		t.Run(f.File, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, f.File))
			require.NoError(t, err)
			img, err := Decode(data)
			require.NoError(t, err)
			rgb := ToRGB(img)
			require.Equal(t, f.Size, [2]int{rgb.W, rgb.H})
			differ, worst := levels(read(f.RGB), rgb)
			if !f.Exact {
				// Measured: 2.0 % of the CMYK file's samples, at most 1
				// level apart (Go's IDCT and CMYK conversion).
				t.Logf("outside the exact set: %.1f%% of decoded samples differ from Pillow's, by at most %d levels",
					100*float64(differ)/float64(3*rgb.W*rgb.H), worst)
				assert.LessOrEqual(t, worst, 2, "decoded samples, levels from Pillow's")
				return
			}
			require.Zero(t, differ, "decoded samples differ from Pillow's (by up to %d levels)", worst)
			require.Len(t, f.Cases, len(torchTransforms))
			for _, c := range f.Cases {
				tf := torchTransforms[c.Transform]
				px, err := tf.Pixels(rgb)
				require.NoError(t, err)
				differ, worst := levels(read(c.Pixels), px)
				assert.Zero(t, differ, "%s (%v): resized and cropped pixels differ from torchvision's (by up to %d levels)", c.Transform, tf, worst)

				want := read(c.Tensor)
				require.Equal(t, []int{3, tf.Height, tf.Width}, want.Shape)
				got := make([]float32, tf.Len())
				if c.Transform == "imagenet224" { // from the file, as a package does
					require.NoError(t, tf.File(got, data))
				} else { // from the image decoded above: the same, with one decoding
					require.NoError(t, tf.Image(got, img))
				}
				bits := 0
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want.Data[i]) {
						bits++
					}
				}
				assert.Zero(t, bits, "%s (%v): tensor values differing from torchvision's", c.Transform, tf)
				cases++
			}
		})
	}
	t.Logf("%d files × transforms bit for bit torchvision's", cases)
}

func TestDefaultResize(t *testing.T) {
	assert.Equal(t, 256, DefaultResize(224, 224), "torchvision's ImageNet 256 for 224")
	assert.Equal(t, 343, DefaultResize(200, 300), "round(300 / 0.875) = round(342.86)")
	assert.Equal(t, 343, DefaultResize(300, 200))
	assert.Equal(t, 37, DefaultResize(32, 32), "round(36.57)")
	for n := 1; n < 5000; n++ {
		require.Equal(t, int(math.Round(float64(n)/0.875)), DefaultResize(n, 1), "n = %d", n)
	}
	assert.Equal(t, "Resize(256), CenterCrop((224, 224)), ToTensor(), Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])",
		Default(224, 224).String())
	assert.Equal(t, "CenterCrop((32, 48)), ToTensor(), Normalize(mean=[0.5, 0, 1], std=[1, 2, 3])",
		Transform{Height: 32, Width: 48, Mean: [3]float64{0.5, 0, 1}, Std: [3]float64{1, 2, 3}}.String())
}

// CenterCrop's padding and offsets, worked out from torchvision's
// center_crop: pad (crop − side) // 2 before and the rest after, then crop
// at round((side − crop) / 2), half to even.
func TestTransformCropByHand(t *testing.T) {
	src := &RGB{W: 5, H: 2, Pix: make([]uint8, 3*10)}
	for i := range 10 {
		src.Pix[3*i] = uint8(10 + i)
	}
	// 2×5 → crop 4×3: rows padded 1 before and 1 after; columns cropped at
	// round(2/2) = 1.
	px, err := Transform{Height: 4, Width: 3, Mean: ImageNetMean(), Std: ImageNetStd()}.Pixels(src)
	require.NoError(t, err)
	assert.Equal(t, []uint8{
		0, 0, 0,
		11, 12, 13,
		16, 17, 18,
		0, 0, 0,
	}, row(px))
	// 2×5 → crop 1×8: columns padded 1 before, 2 after; rows at round(0.5) = 0.
	px, err = Transform{Height: 1, Width: 8, Mean: ImageNetMean(), Std: ImageNetStd()}.Pixels(src)
	require.NoError(t, err)
	assert.Equal(t, []uint8{0, 10, 11, 12, 13, 14, 0, 0}, row(px))
	// round(1.5) = 2, round(2.5) = 2.
	assert.Equal(t, 2, cropStart(5, 2))
	assert.Equal(t, 2, cropStart(7, 2))
	assert.Equal(t, -1, cropStart(2, 5))

	// The padding is black before Normalize: (0 − mean) / std.
	x := make([]float32, 3*4*3)
	tf := Transform{Height: 4, Width: 3, Mean: [3]float64{0.5, 0.25, 0}, Std: [3]float64{0.5, 0.5, 2}}
	require.NoError(t, tf.Image(x, rgbImage(src)))
	assert.Equal(t, float32(-1), x[0])
	assert.Equal(t, float32(-0.5), x[12])
	assert.Equal(t, float32(0), x[24])
}

// rgbImage turns pixels back into an image.Image.
func rgbImage(r *RGB) image.Image {
	m := image.NewNRGBA(image.Rect(0, 0, r.W, r.H))
	for i := range r.W * r.H {
		copy(m.Pix[4*i:], r.Pix[3*i:3*i+3])
		m.Pix[4*i+3] = 0xFF
	}
	return m
}

// The window is the whole resize's: every crop of Resize(src) equals the
// same part of the full image, whatever the sizes.
func TestResizeWindowIsPartOfTheWhole(t *testing.T) {
	for _, c := range [][4]int{{97, 61, 37, 300}, {61, 97, 300, 37}, {640, 3, 54613, 256}, {5, 5, 5, 9}, {9, 5, 9, 5}, {33, 44, 33, 44}} {
		src := &RGB{W: c[0], H: c[1], Pix: libjpeg.Scene(c[0], c[1], 7)}
		w, h := c[2], c[3]
		if w*h > 1<<22 {
			w = 4096 // the whole of a 54613-wide resize is too big; its left part will do
		}
		whole := resizeWindow(src, c[2], c[3], 0, w, 0, h)
		for _, win := range [][4]int{{0, w, 0, h}, {1, w - 1, 2, h}, {w / 3, w/3 + 1, h / 2, h}, {w - 1, w, 0, 1}} {
			got := resizeWindow(src, c[2], c[3], win[0], win[1], win[2], win[3])
			require.Equal(t, [2]int{win[1] - win[0], win[3] - win[2]}, [2]int{got.W, got.H})
			for y := range got.H {
				wantRow := whole.Pix[((win[2]+y)*whole.W+win[0])*3:][:got.W*3]
				require.Equal(t, wantRow, got.Pix[y*got.W*3:(y+1)*got.W*3], "%v window %v row %d", c, win, y)
			}
		}
	}
}

func TestTransformErrors(t *testing.T) {
	good := Default(32, 32)
	for _, c := range []struct {
		tf   Transform
		want string
	}{
		{Transform{Height: 0, Width: 32, Std: good.Std}, "crop 0x32: sides must be 1..65536"},
		{Transform{Height: 32, Width: MaxSide + 1, Std: good.Std}, "sides must be"},
		{Transform{Height: 32, Width: 32, Resize: -1, Std: good.Std}, "resize -1: must be 0 (none) to 65536"},
		{Transform{Height: 32, Width: 32, Std: [3]float64{1, 0, 1}}, "std [1 0 1]: each must be a finite float32 other than 0"},
		{Transform{Height: 32, Width: 32, Std: [3]float64{1, 1e-50, 1}}, "other than 0"},
		{Transform{Height: 32, Width: 32, Std: [3]float64{1, math.Inf(1), 1}}, "other than 0"},
		{Transform{Height: 32, Width: 32, Mean: [3]float64{math.NaN(), 0, 0}, Std: good.Std}, "mean [NaN 0 0] is not a finite float32"},
		{Transform{Height: 32, Width: 32, Mean: [3]float64{0, 1e300, 0}, Std: good.Std}, "is not a finite float32"},
	} {
		assert.ErrorContains(t, c.tf.Validate(), c.want, "%+v", c.tf)
		assert.ErrorContains(t, c.tf.File(make([]float32, 3*32*32), nil), c.want)
		_, err := c.tf.Pixels(gray(4, 4))
		assert.ErrorContains(t, err, c.want)
	}
	assert.NoError(t, good.Validate())
	assert.ErrorContains(t, good.File(make([]float32, 10), nil), "a 32x32 tensor takes 3072 values, not 10")
	assert.ErrorContains(t, good.Image(nil, image.NewGray(image.Rect(0, 0, 1, 1))), "not 0")
	assert.ErrorContains(t, good.Image(make([]float32, good.Len()), image.NewGray(image.Rect(3, 3, 3, 9))), "an empty image")
	// Files that are not images, or corrupt ones, are errors, never panics.
	x := make([]float32, good.Len())
	assert.ErrorContains(t, good.File(x, []byte("hello")), "not a JPEG or PNG image")
	assert.ErrorContains(t, good.File(x, nil), "not a JPEG or PNG image")
	jpg := libjpeg.Case{W: 40, H: 30}.Encode(t)
	assert.ErrorContains(t, good.File(x, jpg[:len(jpg)/2]), "corrupt jpeg image")
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, image.NewGray(image.Rect(0, 0, 40, 30))))
	assert.ErrorContains(t, good.File(x, b.Bytes()[:b.Len()/2]), "corrupt png image")
	assert.NoError(t, good.File(x, jpg))
}

// An image of extreme shape is resized only where the crop keeps it: a
// 1×60,000 strip under Resize(256) would be 256×15,360,000 pixels.
func TestTransformStrip(t *testing.T) {
	strip := image.NewGray(image.Rect(0, 0, 60000, 1))
	for i := range strip.Pix {
		strip.Pix[i] = uint8(i)
	}
	tf := Default(224, 224)
	x := make([]float32, tf.Len())
	require.NoError(t, tf.Image(x, strip))
	// Vertically, every output row is the one input row (upscaled 1 → 256).
	assert.Equal(t, x[:224], x[223*224:224*224])
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	require.NoError(t, tf.Image(x, strip))
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20), "bytes allocated (the whole resize: 11.8 GB)")
}

func ExampleTransform() {
	// A network fine-tuned at 200×300 with torchvision's usual eval
	// transform: Resize(343), CenterCrop((200, 300)), ImageNet's statistics.
	tf := Default(200, 300)
	fmt.Println(tf)
	fmt.Println(tf.Validate(), tf.Len())
	// Output:
	// Resize(343), CenterCrop((200, 300)), ToTensor(), Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
	// <nil> 180000
}

// Any bytes: a tensor or an error, never a panic (the seeds run in every
// go test; -fuzz explores from them).
func FuzzFile(f *testing.F) {
	var b bytes.Buffer
	require.NoError(f, png.Encode(&b, image.NewGray(image.Rect(0, 0, 5, 3))))
	f.Add(b.Bytes(), 7, 4, 0)
	f.Add(libjpeg.Case{W: 9, H: 17, Args: []string{"-sample", "2x1"}}.Encode(f), 3, 5, 4)
	f.Add(libjpeg.Case{W: 20, H: 2, Args: []string{"-progressive"}}.Encode(f), 8, 8, 9)
	f.Fuzz(func(t *testing.T, file []byte, h, w, resize int) {
		tf := Default(1+abs(h)%40, 1+abs(w)%40)
		tf.Resize = abs(resize) % 50
		x := make([]float32, tf.Len())
		if err := tf.File(x, file); err != nil {
			return
		}
		for i, v := range x {
			// (0 − mean)/std … (1 − mean)/std with ImageNet's statistics
			require.True(t, v >= -2.2 && v <= 2.7, "x[%d] = %v", i, v)
		}
	})
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// ToRGB's fast paths give what color.NRGBAModel gives pixel by pixel (the
// generic path, reached here by hiding the image's type), on sub-images
// and with partial alpha; for NRGBA64 they give the high bytes instead.
func TestToRGBFastPaths(t *testing.T) {
	r := image.Rect(0, 0, 13, 7)
	rgba, nrgba, grey := image.NewRGBA(r), image.NewNRGBA(r), image.NewGray(r)
	deep := image.NewNRGBA64(r)
	pal := image.NewPaletted(r, color.Palette{color.RGBA{10, 20, 30, 255}, color.NRGBA{200, 100, 50, 7}, color.Gray{99}})
	for i := range rgba.Pix {
		rgba.Pix[i], nrgba.Pix[i] = uint8(i*37), uint8(i*53)
		if i%4 == 3 && i%3 == 0 {
			rgba.Pix[i] = 0xFF
		}
	}
	for i := range rgba.Pix { // premultiplied: no colour above alpha
		rgba.Pix[i] = min(rgba.Pix[i], rgba.Pix[i|3])
	}
	for i := range grey.Pix {
		grey.Pix[i], pal.Pix[i] = uint8(i*11), uint8(i%4) // index 3: beyond the palette
	}
	for i := range deep.Pix {
		deep.Pix[i] = uint8(i * 29)
	}
	type hidden struct{ image.Image }
	for _, img := range []interface {
		image.Image
		SubImage(image.Rectangle) image.Image
	}{rgba, nrgba, grey, pal} {
		for _, sub := range []image.Image{img, img.SubImage(image.Rect(2, 1, 11, 6))} {
			got := ToRGB(sub)
			if _, ok := sub.(*image.Paletted); ok { // At panics beyond the palette: black
				black := image.NewPaletted(pal.Rect, append(pal.Palette, color.Black))
				copy(black.Pix, pal.Pix)
				sub = black.SubImage(sub.Bounds())
			}
			assert.Equal(t, ToRGB(hidden{sub}), got, "%T %v", sub, sub.Bounds())
		}
	}
	got := ToRGB(deep.SubImage(image.Rect(1, 2, 3, 3)))
	o := deep.PixOffset(1, 2)
	assert.Equal(t, []uint8{deep.Pix[o], deep.Pix[o+2], deep.Pix[o+4], deep.Pix[o+8], deep.Pix[o+10], deep.Pix[o+12]}, got.Pix)
}

// How a generated package holds its transform as constants and turns a
// file into its input array.
func ExampleTransform_File() {
	const (
		InputHeight = 200
		InputWidth  = 300
		InputLen    = 3 * InputHeight * InputWidth
	)
	transform := Transform{Height: InputHeight, Width: InputWidth, Resize: 343,
		Mean: [3]float64{0.485, 0.456, 0.406}, Std: [3]float64{0.229, 0.224, 0.225}}
	preprocess := func(file []byte) (*[InputLen]float32, error) {
		x := new([InputLen]float32)
		if err := transform.File(x[:], file); err != nil {
			return nil, err
		}
		return x, nil
	}
	var b bytes.Buffer
	_ = png.Encode(&b, image.NewGray(image.Rect(0, 0, 640, 480))) // black
	x, err := preprocess(b.Bytes())
	fmt.Println(x[0], x[InputLen-1], err)
	_, err = preprocess([]byte("GIF89a"))
	fmt.Println(err)
	// Output:
	// -2.117904 -1.8044444 <nil>
	// not a JPEG or PNG image: image: unknown format
}
