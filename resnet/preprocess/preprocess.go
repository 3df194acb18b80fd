// Package preprocess turns image files into network inputs exactly as
// torchvision's evaluation transform does, at any input size (Transform):
//
//	Resize(N)          shorter side to N, bilinear with antialiasing (PIL)
//	CenterCrop((H, W)) padding an image smaller than the crop with black
//	ToTensor()         RGB, scaled to [0, 1], CHW
//	Normalize(mean, std)
//
// Default(224, 224) is the ImageNet one: Resize(256), CenterCrop(224),
// Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]).
//
// Resize follows Pillow's resampling of 8-bit images: a separable triangle
// filter widened by the downscaling factor, horizontal pass then vertical,
// fixed-point weights with 22 fractional bits, and rounding to 8 bits
// between the passes.
//
// # What is bit for bit torchvision's
//
// The tensor equals torchvision's (torch 1.13, torchvision 0.14, Pillow 9.4;
// the file opened by PIL and converted to RGB, as ImageFolder's loader
// does) for every file whose decoded pixels are Pillow's, which are:
//   - PNG of any colour type and bit depth, interlaced or not, with or
//     without transparency (alpha is dropped, not composited, as PIL's
//     convert("RGB") drops it; 16-bit samples become their high byte, as
//     Pillow reads them) — except 16-bit greyscale: Pillow opens it as
//     32-bit integers (mode "I") and its convert("RGB") clips them at 255,
//     so most of such an image turns white there; here it is the high byte.
//     Gamma and colour profiles are ignored on both sides.
//   - JPEG that resnet/jpeg decodes: baseline, extended-sequential and
//     progressive Huffman-coded, 8-bit, greyscale or YCbCr with 4:4:4,
//     4:2:2, 4:2:0, 4:4:0, 4:1:1 or 4:1:0 chroma, or RGB, any restart
//     interval. Its samples are libjpeg's (islow IDCT), and the chroma
//     upsampling and colour conversion here are libjpeg's (ycbcr.go).
//
// Outside that set: the JPEGs resnet/jpeg leaves to Go's image/jpeg
// (CMYK and YCCK, RGB with subsampled components, progressive files whose
// scans never complete the low frequencies) decode with Go's IDCT and, for
// CMYK, Go's conversion, a few levels from Pillow's; arithmetic-coded,
// lossless, hierarchical and 12-bit JPEGs are refused. Neither side applies
// EXIF orientation (ImageFolder's loader does not).
package preprocess

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	stdjpeg "image/jpeg" // JPEG and PNG, the formats DecodeFile accepts
	_ "image/png"
	"io"
	"math"
	"os"
	"runtime"
	"sync"

	"github.com/resnetgen/resnetgen/resnet/jpeg"
)

// MaxPixels is the largest image DecodeFile decodes (64 megapixels); the
// size is read from the header and checked before any pixel is decoded.
const MaxPixels = 64 << 20

// ResizeSize and CropSize are the ImageNet eval transform's sizes: the
// shorter side is resized to ResizeSize, then the centre CropSize square is
// kept (Default(CropSize, CropSize)).
const (
	ResizeSize = 256
	CropSize   = 224
)

// Mean and Std are the ImageNet normalisation, per RGB channel, that Tensor
// uses (ImageNetMean and ImageNetStd return copies).
var (
	Mean = [3]float64{0.485, 0.456, 0.406}
	Std  = [3]float64{0.229, 0.224, 0.225}
)

// DecodeFile decodes a JPEG or PNG file (see Decode); errors name the file.
func DecodeFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := readAtMost(f, maxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	img, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return img, nil
}

// Decode decodes a JPEG or PNG file's bytes, refusing anything else and
// any image above MaxPixels before decoding its pixels.
func Decode(data []byte) (image.Image, error) {
	if len(data) >= 2 && data[0] == 0xFF && data[1] == 0xD8 {
		// JPEG: resnet/jpeg reads the header itself (it knows kinds
		// image/jpeg's DecodeConfig refuses, e.g. arithmetic coding).
		return decodeJPEG(data)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a JPEG or PNG image: %v", err)
	}
	if err := checkSize(format, cfg); err != nil {
		return nil, err
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("corrupt %s image: %v", format, err)
	}
	return img, nil
}

// maxFileBytes bounds the file read into memory: far above what a
// MaxPixels image takes as a JPEG at any quality or as a PNG.
const maxFileBytes = 1 << 30

func readAtMost(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) >= limit {
		return nil, fmt.Errorf("image file of over %d bytes", limit)
	}
	return data, nil
}

func checkSize(format string, cfg image.Config) error {
	if cfg.Width < 1 || cfg.Height < 1 || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return fmt.Errorf("%s image of %dx%d pixels; the limit is %d pixels", format, cfg.Width, cfg.Height, MaxPixels)
	}
	return nil
}

// decodeJPEG decodes with resnet/jpeg, which gives libjpeg's samples (so
// Pillow's), and falls back to image/jpeg for the JPEG kinds it does not
// handle (CMYK, arithmetic coding, …: see its package doc), whose samples may then be
// a few levels from Pillow's.
func decodeJPEG(data []byte) (image.Image, error) {
	cfg, err := jpeg.DecodeConfig(data)
	if err == nil {
		if err := checkSize("jpeg", cfg); err != nil {
			return nil, err
		}
		var img image.Image
		if img, err = jpeg.Decode(data, MaxPixels); err == nil {
			return img, nil
		}
	}
	if !errors.Is(err, jpeg.ErrUnsupported) {
		return nil, fmt.Errorf("corrupt jpeg image: %v", err)
	}
	stdCfg, stdErr := stdjpeg.DecodeConfig(bytes.NewReader(data))
	if stdErr == nil {
		if err := checkSize("jpeg", stdCfg); err != nil {
			return nil, err
		}
		var img image.Image
		if img, stdErr = stdjpeg.Decode(bytes.NewReader(data)); stdErr == nil {
			return img, nil
		}
	}
	return nil, fmt.Errorf("unsupported JPEG: %v; image/jpeg: %v", err, stdErr)
}

// RGB is an 8-bit image with interleaved R, G, B.
type RGB struct {
	W, H int
	Pix  []uint8 // (y·W + x)·3 + c
}

// ToRGB converts any image to 8-bit RGB (alpha ignored, as PIL's
// convert("RGB") does for torchvision's loader). A decoded JPEG's chroma is
// upsampled and converted as libjpeg, which Pillow uses, does (ycbcr.go).
// 16-bit samples become their high byte, as Pillow reads 16-bit RGB(A) and
// grey+alpha PNGs; for 16-bit grey PNGs Pillow instead clips the values at
// 255 (its mode "I"), which we do not follow.
func ToRGB(img image.Image) *RGB {
	b := img.Bounds()
	r := &RGB{W: b.Dx(), H: b.Dy(), Pix: make([]uint8, 3*b.Dx()*b.Dy())}
	// What PNGs decode to is read straight from the pixel arrays; each
	// pixel as color.NRGBAModel converts it, for less than its cost.
	rows := func(f func(y int, o []uint8)) *RGB {
		for y := range r.H {
			f(b.Min.Y+y, r.Pix[3*y*r.W:3*(y+1)*r.W])
		}
		return r
	}
	switch m := img.(type) {
	case *image.YCbCr:
		if c, ok := ycbcrToRGB(m); ok {
			return c
		}
	case *image.NRGBA:
		return rows(func(y int, o []uint8) {
			p := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range r.W {
				o[3*x], o[3*x+1], o[3*x+2] = p[4*x], p[4*x+1], p[4*x+2]
			}
		})
	case *image.NRGBA64:
		// The high bytes. color.NRGBAModel would premultiply and lose
		// samples under partial alpha (all of them under alpha 0); Pillow
		// keeps them.
		return rows(func(y int, o []uint8) {
			p := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range r.W {
				o[3*x], o[3*x+1], o[3*x+2] = p[8*x], p[8*x+2], p[8*x+4]
			}
		})
	case *image.RGBA: // opaque pixels as they are, others un-premultiplied
		return rows(func(y int, o []uint8) {
			p := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range r.W {
				c := color.RGBA{p[4*x], p[4*x+1], p[4*x+2], p[4*x+3]}
				if c.A != 0xFF {
					n := color.NRGBAModel.Convert(c).(color.NRGBA)
					c = color.RGBA{n.R, n.G, n.B, 0xFF}
				}
				o[3*x], o[3*x+1], o[3*x+2] = c.R, c.G, c.B
			}
		})
	case *image.Gray:
		return rows(func(y int, o []uint8) {
			p := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range r.W {
				o[3*x], o[3*x+1], o[3*x+2] = p[x], p[x], p[x]
			}
		})
	case *image.Paletted:
		var pal [256][3]uint8
		for i, c := range m.Palette[:min(len(m.Palette), 256)] {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			pal[i] = [3]uint8{n.R, n.G, n.B}
		}
		// An index beyond the palette (image/png extends the palette
		// to cover them, opaque black) is black.
		return rows(func(y int, o []uint8) {
			p := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range r.W {
				copy(o[3*x:3*x+3], pal[p[x]][:])
			}
		})
	}
	for y := 0; y < r.H; y++ {
		for x := 0; x < r.W; x++ {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			i := (y*r.W + x) * 3
			r.Pix[i], r.Pix[i+1], r.Pix[i+2] = c.R, c.G, c.B
		}
	}
	return r
}

const precisionBits = 32 - 8 - 2

// coefficients returns, for output positions [from, to) of Pillow's
// bilinear resampling from in to out samples, the first input index and
// the fixed-point weights (Resample.c's precompute_coeffs and
// normalize_coeffs_8bpc, to the operation: the scale from the size as a C
// float, the window bounds truncated, the filter's argument multiplied by
// the reciprocal of the filter scale).
func coefficients(in, out, from, to int) (start []int, weights [][]int32) {
	scale := float64(float32(in)) / float64(out)
	filterScale := max(scale, 1)
	support := 1 * filterScale // the bilinear filter's support is 1
	ss := 1 / filterScale
	for i := from; i < to; i++ {
		center := (float64(i) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), in)
		var ks []float64
		total := 0.0
		for x := lo; x < hi; x++ {
			// float64(…) rounds the product: no fused multiply-add.
			k := max(0, 1-math.Abs(float64((float64(x)-center+0.5)*ss)))
			ks = append(ks, k)
			total += k
		}
		fixed := make([]int32, len(ks))
		for j, k := range ks {
			if total != 0 {
				k /= total
			}
			// Pillow rounds half away from zero when converting to fixed point.
			if k < 0 {
				fixed[j] = int32(k*(1<<precisionBits) - 0.5)
			} else {
				fixed[j] = int32(k*(1<<precisionBits) + 0.5)
			}
		}
		start = append(start, lo)
		weights = append(weights, fixed)
	}
	return start, weights
}

// clip8 takes a fixed-point resampling sum to an 8-bit level.
func clip8(v int64) uint8 { return clamp8(v >> precisionBits) }

// clamp8 saturates v to 0…255.
func clamp8[T int32 | int64](v T) uint8 {
	return uint8(min(max(v, 0), 255))
}

// Resize resamples src to w×h with Pillow's antialiased bilinear filter.
func Resize(src *RGB, w, h int) *RGB { return resizeWindow(src, w, h, 0, w, 0, h) }

// resizeWindow returns columns [x0, x1) and rows [y0, y1) of Resize(src,
// w, h), computing only those. As Pillow does, it resamples horizontally
// (when the width changes) and then vertically (when the height does),
// rounding to 8 bits in between; the horizontal pass covers only the
// input rows the vertical one reads.
func resizeWindow(src *RGB, w, h, x0, x1, y0, y1 int) *RGB {
	ow, oh := x1-x0, y1-y0
	if ow <= 0 || oh <= 0 {
		return &RGB{W: max(ow, 0), H: max(oh, 0)}
	}
	// Input rows the vertical pass reads, and their windows within them.
	rows0, rows1 := y0, y1
	var vStart []int
	var vk [][]int32
	if h != src.H {
		vStart, vk = coefficients(src.H, h, y0, y1)
		rows0, rows1 = vStart[0], vStart[oh-1]+len(vk[oh-1])
		for i := range vStart {
			vStart[i] -= rows0
		}
	}
	// Horizontal pass: those rows, columns [x0, x1).
	mid := &RGB{W: ow, H: rows1 - rows0, Pix: make([]uint8, 3*ow*(rows1-rows0))}
	if w != src.W {
		start, ks := coefficients(src.W, w, x0, x1)
		parallelRows(mid.H, func(r0, r1 int) {
			for r := r0; r < r1; r++ {
				in := src.Pix[(rows0+r)*src.W*3:]
				o := mid.Pix[r*ow*3:]
				for x := range ow {
					for c := range 3 {
						sum := int64(1) << (precisionBits - 1)
						for j, k := range ks[x] {
							sum += int64(in[(start[x]+j)*3+c]) * int64(k)
						}
						o[x*3+c] = clip8(sum)
					}
				}
			}
		})
	} else {
		for r := range mid.H {
			copy(mid.Pix[r*ow*3:(r+1)*ow*3], src.Pix[((rows0+r)*src.W+x0)*3:])
		}
	}
	if h == src.H {
		return mid
	}
	// Vertical pass: rows [y0, y1).
	out := &RGB{W: ow, H: oh, Pix: make([]uint8, 3*ow*oh)}
	parallelRows(oh, func(r0, r1 int) {
		for y := r0; y < r1; y++ {
			o := out.Pix[y*ow*3 : (y+1)*ow*3]
			for i := range o {
				sum := int64(1) << (precisionBits - 1)
				for j, k := range vk[y] {
					sum += int64(mid.Pix[(vStart[y]+j)*ow*3+i]) * int64(k)
				}
				o[i] = clip8(sum)
			}
		}
	})
	return out
}

// parallelRows splits rows [0, n) into one band per CPU and runs f on the
// bands concurrently. Each output row depends only on the input, so the
// result is the same however the rows are split.
func parallelRows(n int, f func(y0, y1 int)) {
	parts := min(runtime.GOMAXPROCS(0), max(n/64, 1)) // small images: one band
	var wg sync.WaitGroup
	for i := range parts {
		y0, y1 := n*i/parts, n*(i+1)/parts
		wg.Go(func() { f(y0, y1) })
	}
	wg.Wait()
}

// ResizeShorter scales the shorter side to size, the longer one to
// int(size · long / short), as torchvision's Resize(size) does.
func ResizeShorter(src *RGB, size int) *RGB {
	w, h := shorterTo(src.W, src.H, size)
	return Resize(src, w, h)
}

// CenterCrop takes the central size×size square, offsets rounded as
// Python's round() does (half to even). Unlike torchvision's CenterCrop
// (and Transform) it refuses an image smaller than the crop.
func CenterCrop(src *RGB, size int) (*RGB, error) {
	if src.W < size || src.H < size {
		return nil, fmt.Errorf("center crop of %d from a %dx%d image", size, src.W, src.H)
	}
	return Transform{Height: size, Width: size}.pixels(src), nil
}

// Tensor returns the normalised CHW float32 input, (v/255 − Mean) / Std,
// rounded as torchvision computes it: ToTensor divides by 255 in float32,
// Normalize subtracts the float32 mean and divides by the float32 std, each
// step rounded to float32 — so the result is bit for bit torchvision's.
func Tensor(src *RGB) []float32 {
	out := make([]float32, 3*src.W*src.H)
	Transform{Mean: Mean, Std: Std}.normalize(out, src)
	return out
}

// ImageNet applies the whole evaluation transform: 256, center 224
// (Default(224, 224)).
func ImageNet(img image.Image) ([]float32, error) {
	t := Default(CropSize, CropSize)
	out := make([]float32, t.Len())
	if err := t.Image(out, img); err != nil {
		return nil, err
	}
	return out, nil
}
