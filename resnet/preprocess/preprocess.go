// Package preprocess turns images into network inputs the way torchvision's
// ImageNet evaluation transform does:
//
//	Resize(256)        shorter side to 256, bilinear with antialiasing (PIL)
//	CenterCrop(224)
//	ToTensor()         RGB, scaled to [0, 1], CHW
//	Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
//
// Resize follows Pillow's resampling of 8-bit images: a separable triangle
// filter widened by the downscaling factor, horizontal pass then vertical,
// fixed-point weights with 22 fractional bits, and rounding to 8 bits
// between the passes.
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

// ResizeSize and CropSize are the eval transform's sizes: the shorter side
// is resized to ResizeSize, then the centre CropSize square is kept.
const (
	ResizeSize = 256
	CropSize   = 224
)

// Mean and Std are the ImageNet normalisation, per RGB channel.
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
// 16-bit samples become their high byte, as Pillow's convert does for 16-bit
// RGB PNGs; for 16-bit grey PNGs Pillow instead clips the values at 255
// (its mode "I"), which we do not follow.
func ToRGB(img image.Image) *RGB {
	if m, ok := img.(*image.YCbCr); ok {
		if r, ok := ycbcrToRGB(m); ok {
			return r
		}
	}
	b := img.Bounds()
	r := &RGB{W: b.Dx(), H: b.Dy(), Pix: make([]uint8, 3*b.Dx()*b.Dy())}
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

// coefficients returns, for each output position, the first input index
// and the fixed-point weights of Pillow's bilinear resampling from in to
// out samples.
func coefficients(in, out int) (start []int, weights [][]int32) {
	scale := float64(in) / float64(out)
	filterScale := math.Max(scale, 1)
	support := 1 * filterScale // the bilinear filter's support is 1
	for i := 0; i < out; i++ {
		center := (float64(i) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), in)
		var ks []float64
		total := 0.0
		for x := lo; x < hi; x++ {
			k := math.Max(0, 1-math.Abs((float64(x)-center+0.5)/filterScale))
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
func Resize(src *RGB, w, h int) *RGB {
	cur := src
	if w != cur.W {
		start, ks := coefficients(cur.W, w)
		in, dst := cur, &RGB{W: w, H: cur.H, Pix: make([]uint8, 3*w*cur.H)}
		parallelRows(in.H, func(y0, y1 int) {
			for y := y0; y < y1; y++ {
				for x := 0; x < w; x++ {
					for c := 0; c < 3; c++ {
						sum := int64(1) << (precisionBits - 1)
						for j, k := range ks[x] {
							sum += int64(in.Pix[(y*in.W+start[x]+j)*3+c]) * int64(k)
						}
						dst.Pix[(y*w+x)*3+c] = clip8(sum)
					}
				}
			}
		})
		cur = dst
	}
	if h != cur.H {
		start, ks := coefficients(cur.H, h)
		in, dst := cur, &RGB{W: cur.W, H: h, Pix: make([]uint8, 3*cur.W*h)}
		parallelRows(h, func(y0, y1 int) {
			for y := y0; y < y1; y++ {
				for x := 0; x < in.W; x++ {
					for c := 0; c < 3; c++ {
						sum := int64(1) << (precisionBits - 1)
						for j, k := range ks[y] {
							sum += int64(in.Pix[((start[y]+j)*in.W+x)*3+c]) * int64(k)
						}
						dst.Pix[(y*in.W+x)*3+c] = clip8(sum)
					}
				}
			}
		})
		cur = dst
	}
	if cur == src {
		cur = &RGB{W: src.W, H: src.H, Pix: append([]uint8(nil), src.Pix...)}
	}
	return cur
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
	if src.W <= src.H {
		return Resize(src, size, int(float64(size)*float64(src.H)/float64(src.W)))
	}
	return Resize(src, int(float64(size)*float64(src.W)/float64(src.H)), size)
}

// CenterCrop takes the central size×size square, offsets rounded as
// Python's round() does (half to even).
func CenterCrop(src *RGB, size int) (*RGB, error) {
	if src.W < size || src.H < size {
		return nil, fmt.Errorf("center crop of %d from a %dx%d image", size, src.W, src.H)
	}
	top := int(math.RoundToEven(float64(src.H-size) / 2))
	left := int(math.RoundToEven(float64(src.W-size) / 2))
	dst := &RGB{W: size, H: size, Pix: make([]uint8, 3*size*size)}
	for y := 0; y < size; y++ {
		copy(dst.Pix[y*size*3:(y+1)*size*3], src.Pix[((top+y)*src.W+left)*3:])
	}
	return dst, nil
}

// Tensor returns the normalised CHW float32 input, (v/255 − mean) / std,
// rounded as torchvision computes it: ToTensor divides by 255 in float32,
// Normalize subtracts the float32 mean and divides by the float32 std, each
// step rounded to float32 — so the result is bit for bit torchvision's.
func Tensor(src *RGB) []float32 {
	plane := src.W * src.H
	out := make([]float32, 3*plane)
	var mean, std [3]float32
	for c := range mean {
		mean[c], std[c] = float32(Mean[c]), float32(Std[c])
	}
	for i := 0; i < plane; i++ {
		for c := 0; c < 3; c++ {
			v := float32(src.Pix[i*3+c]) / 255
			v -= mean[c]
			out[c*plane+i] = v / std[c]
		}
	}
	return out
}

// ImageNet applies the whole evaluation transform: 256, center 224.
func ImageNet(img image.Image) ([]float32, error) {
	r := ResizeShorter(ToRGB(img), ResizeSize)
	c, err := CenterCrop(r, CropSize)
	if err != nil {
		return nil, err
	}
	return Tensor(c), nil
}
