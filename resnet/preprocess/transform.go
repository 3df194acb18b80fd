package preprocess

import (
	"fmt"
	"image"
	"math"
	"strconv"
)

// A Transform is torchvision's evaluation transform for a network whose
// input is Height×Width, described by values a generated package can hold
// as constants:
//
//	transforms.Compose([
//	    transforms.Resize(Resize),                # left out when Resize is 0
//	    transforms.CenterCrop((Height, Width)),
//	    transforms.ToTensor(),
//	    transforms.Normalize(mean=Mean, std=Std),
//	])
//
// applied, as torchvision's ImageFolder loader does, to the file opened by
// Pillow and converted to RGB. Resize(N) scales the shorter side to N and
// the longer one to int(N · long / short), with Pillow's antialiased
// bilinear filter (torchvision always antialiases PIL images; torch 1.13's
// antialias argument applies to tensors only); an image already of that
// size is left as it is. CenterCrop pads an image smaller than the crop with
// black (0) to the crop's size, (crop − side) // 2 before and the rest after,
// then crops at round((side − crop) / 2) (Python's round: half to even).
// ToTensor scales 8-bit samples by 1/255 and Normalize computes
// (x − mean) / std, each step rounded to float32 as torch computes it.
//
// The result is torchvision's tensor bit for bit whenever the decoded
// pixels are Pillow's: see the package doc for which files those are.
// A Transform is a plain value: its methods may run concurrently.
type Transform struct {
	Height, Width int        // the crop: the network's input size
	Resize        int        // the shorter side before the crop; 0: no resize
	Mean, Std     [3]float64 // per RGB channel, rounded to float32 as torch does
}

// MaxSide bounds Transform's sizes (Height, Width, Resize).
const MaxSide = 1 << 16

// DefaultResize is the Resize that keeps the crop the share of the image
// ImageNet's 256 → 224 keeps: round(max(h, w) / 0.875), 256 for 224.
func DefaultResize(h, w int) int {
	// round(8m/7) in integers; 16m + 7 is odd, so never a tie.
	return (16*max(h, w) + 7) / 14
}

// ImageNetMean is ImageNet's mean per RGB channel (the published CIFAR
// ResNets were trained with it too).
func ImageNetMean() [3]float64 { return [3]float64{0.485, 0.456, 0.406} }

// ImageNetStd is ImageNet's standard deviation per RGB channel.
func ImageNetStd() [3]float64 { return [3]float64{0.229, 0.224, 0.225} }

// Default is the transform a network of input h×w gets unless told
// otherwise: Resize(DefaultResize(h, w)), the centre h×w, ImageNet's
// normalisation. Default(224, 224) is torchvision's ImageNet evaluation.
func Default(h, w int) Transform {
	return Transform{Height: h, Width: w, Resize: DefaultResize(h, w), Mean: ImageNetMean(), Std: ImageNetStd()}
}

// Validate reports what makes t unusable: sizes out of range, a mean or
// std that is not finite, or a std that is zero in float32 (torch refuses
// it too).
func (t Transform) Validate() error {
	if t.Height < 1 || t.Width < 1 || t.Height > MaxSide || t.Width > MaxSide {
		return fmt.Errorf("preprocess: crop %dx%d: sides must be 1..%d", t.Height, t.Width, MaxSide)
	}
	if t.Resize < 0 || t.Resize > MaxSide {
		return fmt.Errorf("preprocess: resize %d: must be 0 (none) to %d", t.Resize, MaxSide)
	}
	for c := range 3 {
		if math.IsNaN(t.Mean[c]) || math.IsInf(float64(float32(t.Mean[c])), 0) {
			return fmt.Errorf("preprocess: mean %v is not a finite float32", t.Mean)
		}
		if s := float32(t.Std[c]); s == 0 || math.IsNaN(t.Std[c]) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("preprocess: std %v: each must be a finite float32 other than 0", t.Std)
		}
	}
	return nil
}

// Len is the length of the tensor t makes: 3·Height·Width.
func (t Transform) Len() int { return 3 * t.Height * t.Width }

// String writes t as the torchvision code that does the same.
func (t Transform) String() string {
	f := func(v [3]float64) string {
		s := "["
		for i, x := range v {
			if i > 0 {
				s += ", "
			}
			s += strconv.FormatFloat(x, 'g', -1, 64)
		}
		return s + "]"
	}
	s := ""
	if t.Resize > 0 {
		s = fmt.Sprintf("Resize(%d), ", t.Resize)
	}
	return s + fmt.Sprintf("CenterCrop((%d, %d)), ToTensor(), Normalize(mean=%s, std=%s)", t.Height, t.Width, f(t.Mean), f(t.Std))
}

// File decodes a JPEG or PNG file (see Decode) and writes its tensor into
// dst, which must hold t.Len() values (CHW: R plane, G plane, B plane).
// A file that is not an image, is corrupt or is too large is an error.
func (t Transform) File(dst []float32, file []byte) error {
	if err := t.check(dst); err != nil {
		return err
	}
	img, err := Decode(file)
	if err != nil {
		return err
	}
	return t.Image(dst, img)
}

// Image writes the tensor of a decoded image into dst, which must hold
// t.Len() values.
func (t Transform) Image(dst []float32, img image.Image) error {
	if err := t.check(dst); err != nil {
		return err
	}
	if b := img.Bounds(); b.Empty() {
		return fmt.Errorf("preprocess: an empty image (%v)", b)
	}
	t.normalize(dst, t.pixels(ToRGB(img)))
	return nil
}

// Pixels returns the 8-bit Height×Width image that Resize and CenterCrop
// make of src, before ToTensor: the PIL image torchvision holds there.
func (t Transform) Pixels(src *RGB) (*RGB, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t.pixels(src), nil
}

func (t Transform) check(dst []float32) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if len(dst) != t.Len() {
		return fmt.Errorf("preprocess: a %dx%d tensor takes %d values, not %d", t.Height, t.Width, t.Len(), len(dst))
	}
	return nil
}

// pixels resizes and crops in one: only the part of the resized image that
// the crop keeps is computed, each of its pixels exactly as Pillow computes
// it for the whole image (a pixel depends only on its own filter window).
// So a 1×60000 strip is not first resized to 256×15,360,000.
func (t Transform) pixels(src *RGB) *RGB {
	rw, rh := src.W, src.H
	if t.Resize > 0 {
		rw, rh = shorterTo(src.W, src.H, t.Resize)
	}
	left, top := cropStart(rw, t.Width), cropStart(rh, t.Height)
	x0, x1 := max(left, 0), min(left+t.Width, rw)
	y0, y1 := max(top, 0), min(top+t.Height, rh)
	win := resizeWindow(src, rw, rh, x0, x1, y0, y1)
	if win.W == t.Width && win.H == t.Height {
		return win
	}
	// Padded: the window sits at (x0 − left, y0 − top) in black.
	out := &RGB{W: t.Width, H: t.Height, Pix: make([]uint8, 3*t.Width*t.Height)}
	for y := range win.H {
		copy(out.Pix[((y0-top+y)*t.Width+x0-left)*3:], win.Pix[y*win.W*3:(y+1)*win.W*3])
	}
	return out
}

// shorterTo is torchvision's size for Resize(size) of a w×h image: the
// shorter side to size, the longer to int(size · long / short) (Python's
// true division of the integers, correctly rounded as float64 division is).
func shorterTo(w, h, size int) (rw, rh int) {
	if w <= h {
		return size, int(float64(size*h) / float64(w))
	}
	return int(float64(size*w) / float64(h)), size
}

// cropStart is where torchvision's CenterCrop of crop samples starts on a
// side of n: negative (the padding before) when it pads.
func cropStart(n, crop int) int {
	if crop > n {
		return -((crop - n) / 2)
	}
	return int(math.RoundToEven(float64(n-crop) / 2))
}

// normalize writes ToTensor and Normalize of src into dst (CHW), rounded
// as torch computes them: v/255, then − mean, then / std, each in float32.
func (t Transform) normalize(dst []float32, src *RGB) {
	plane := src.W * src.H
	var mean, std [3]float32
	for c := range mean {
		mean[c], std[c] = float32(t.Mean[c]), float32(t.Std[c])
	}
	for i := range plane {
		for c := range 3 {
			v := float32(src.Pix[i*3+c]) / 255
			v -= mean[c]
			dst[c*plane+i] = v / std[c]
		}
	}
}
