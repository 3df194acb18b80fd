package jpeg

import (
	"image"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/resnet/internal/libjpeg"
)

// TestLumaMatchesLibjpeg: the decoded luma (or grey) plane is djpeg's,
// sample for sample. djpeg -grayscale outputs component 0 untouched, so
// this isolates entropy decoding, dequantisation and the IDCT from colour.
func TestLumaMatchesLibjpeg(t *testing.T) {
	for _, c := range libjpeg.Cases {
		t.Run(c.Name, func(t *testing.T) {
			data := c.Encode(t)
			w, h, ch, want, err := libjpeg.Decode(t.TempDir(), data, "-grayscale")
			require.NoError(t, err)
			require.Equal(t, 1, ch)
			img, err := Decode(data, 1<<20)
			require.NoError(t, err)
			require.Equal(t, image.Rect(0, 0, w, h), img.Bounds())
			var plane []uint8
			var stride int
			switch m := img.(type) {
			case *image.Gray:
				plane, stride = m.Pix, m.Stride
			case *image.YCbCr:
				plane, stride = m.Y, m.YStride
			default:
				t.Fatalf("decoded a %T", img)
			}
			diff := 0
			for y := range h {
				for x := range w {
					if plane[y*stride+x] != want[y*w+x] {
						diff++
					}
				}
			}
			assert.Zero(t, diff, "samples differing from djpeg's, of %d", w*h)
		})
	}
}
