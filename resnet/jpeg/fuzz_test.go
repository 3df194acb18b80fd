package jpeg

import (
	"image"
	"testing"
)

// FuzzRead: Decode and DecodeConfig on arbitrary bytes return an image or
// an error, never panic or allocate beyond the pixel limit; a decoded
// image has the header's size and planes that hold it. The seed corpus
// (testdata/fuzz/FuzzRead) is small cjpeg files of each kind: baseline
// 4:2:0, 4:2:2 with restarts, progressive 4:4:4 and grey, optimised tables,
// RGB, 4:1:0, progressive 4:4:0.
func FuzzRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, cfgErr := DecodeConfig(data)
		img, err := Decode(data, 1<<16)
		if err != nil {
			return
		}
		if cfgErr != nil {
			t.Fatalf("Decode succeeded, DecodeConfig failed: %v", cfgErr)
		}
		b := img.Bounds()
		if b.Dx() != cfg.Width || b.Dy() != cfg.Height || b.Dx()*b.Dy() > 1<<16 {
			t.Fatalf("decoded %v, header %dx%d", b, cfg.Width, cfg.Height)
		}
		switch m := img.(type) {
		case *image.Gray:
			if len(m.Pix) < (b.Dy()-1)*m.Stride+b.Dx() {
				t.Fatalf("grey plane of %d samples for %v", len(m.Pix), b)
			}
		case *image.YCbCr:
			if len(m.Y) < (b.Dy()-1)*m.YStride+b.Dx() {
				t.Fatalf("luma plane of %d samples for %v", len(m.Y), b)
			}
			_ = m.At(b.Max.X-1, b.Max.Y-1) // the chroma planes cover the corner
		case *image.RGBA:
			if len(m.Pix) != 4*b.Dx()*b.Dy() {
				t.Fatalf("RGBA of %d bytes for %v", len(m.Pix), b)
			}
		default:
			t.Fatalf("decoded a %T", img)
		}
	})
}
