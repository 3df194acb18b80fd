package jpeg

import (
	"bytes"
	stdjpeg "image/jpeg"
	"testing"

	"github.com/resnetgen/resnetgen/resnet/internal/libjpeg"
)

// BenchmarkDecode: a 12-megapixel 4:2:0 photo-like JPEG (q90), baseline
// and progressive, against image/jpeg on the same bytes.
func BenchmarkDecode(b *testing.B) {
	for _, c := range []libjpeg.Case{
		{Name: "baseline", W: 4000, H: 3000, Args: []string{"-quality", "90"}},
		{Name: "progressive", W: 4000, H: 3000, Args: []string{"-quality", "90", "-progressive"}},
	} {
		data := c.Encode(b)
		b.Run(c.Name+"/resnet-jpeg", func(b *testing.B) {
			b.SetBytes(int64(c.W * c.H))
			for b.Loop() {
				if _, err := Decode(data, 1<<26); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.Name+"/image-jpeg", func(b *testing.B) {
			b.SetBytes(int64(c.W * c.H))
			for b.Loop() {
				if _, err := stdjpeg.Decode(bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
