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

// BenchmarkIDCT: one 8×8 block with a typical photo's spread of nonzero
// coefficients (the first 20 in zigzag order).
func BenchmarkIDCT(b *testing.B) {
	var coef [64]int16
	var quant [64]uint16
	for k := range 64 {
		quant[zigzag[k]] = uint16(1 + k/4)
		if k < 20 {
			coef[zigzag[k]] = int16((k*37)%23 - 11)
		}
	}
	out := make([]uint8, 64)
	for b.Loop() {
		idct(&coef, &quant, out, 8)
	}
}
