package jpeg

import (
	"image"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet/internal/libjpeg"
)

// TestSamplesMatchLibjpeg: the decoded luma (or grey) plane is djpeg's,
// sample for sample. djpeg -grayscale outputs component 0 untouched, so
// this isolates entropy decoding, dequantisation and the IDCT from colour
// (resnet/preprocess's TestJPEGMatchesLibjpeg holds the RGB). An RGB-coded
// file has no luma: its three planes are held to djpeg's RGB output.
func TestSamplesMatchLibjpeg(t *testing.T) {
	for _, c := range libjpeg.Cases {
		t.Run(c.Name, func(t *testing.T) {
			data := c.Encode(t)
			img, err := Decode(data, 1<<20)
			require.NoError(t, err)
			var args []string
			var planes [][]uint8 // planes[i][y*stride+x]
			var stride int
			switch m := img.(type) {
			case *image.Gray:
				args, planes, stride = []string{"-grayscale"}, [][]uint8{m.Pix}, m.Stride
			case *image.YCbCr:
				args, planes, stride = []string{"-grayscale"}, [][]uint8{m.Y}, m.YStride
			case *image.RGBA:
				for i := range 3 {
					planes = append(planes, m.Pix[i:])
				}
				stride = m.Stride
			default:
				t.Fatalf("decoded a %T", img)
			}
			w, h, ch, want, err := libjpeg.Decode(t.TempDir(), data, args...)
			require.NoError(t, err)
			require.Equal(t, len(planes), ch)
			require.Equal(t, image.Rect(0, 0, w, h), img.Bounds())
			step := 1 // samples per pixel in the planes
			if len(planes) == 3 {
				step = 4
			}
			diff := 0
			for y := range h {
				for x := range w {
					for i, p := range planes {
						if p[y*stride+x*step] != want[(y*w+x)*ch+i] {
							diff++
						}
					}
				}
			}
			assert.Zero(t, diff, "samples differing from djpeg's, of %d", w*h*ch)
		})
	}
}
