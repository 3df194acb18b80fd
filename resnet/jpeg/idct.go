package jpeg

// The inverse DCT is libjpeg's "islow" (jidctint.c, the default
// dct_method, JDCT_ISLOW), the Loeffler–Ligtenberg–Moschytz algorithm in
// 13-bit fixed point with 2 extra bits kept between the column and the row
// pass. libjpeg-turbo's SIMD versions of it give the same samples, so this
// is what Pillow — and so torchvision — sees. Go's image/jpeg uses another
// integer IDCT, a level or two away in places.

const (
	constBits = 13
	pass1Bits = 2

	fix0_298631336 = 2446 // FIX(0.298631336) = round(0.298631336 · 2^13)
	fix0_390180644 = 3196
	fix0_541196100 = 4433
	fix0_765366865 = 6270
	fix0_899976223 = 7373
	fix1_175875602 = 9633
	fix1_501321110 = 12299
	fix1_847759065 = 15137
	fix1_961570560 = 16069
	fix2_053119869 = 16819
	fix2_562915447 = 20995
	fix3_072711026 = 25172
)

// rangeLimit is libjpeg's post-IDCT range-limit table
// (prepare_range_limit_table, indexed by the descaled value & 1023):
// values in [-128, 127] map to value+128, [128, 511] to 255, [-512, -129]
// to 0, and the rest wrap as libjpeg's mask makes them wrap. Only corrupt
// data reaches beyond ±512.
var rangeLimit [1024]uint8

func init() {
	for m := range rangeLimit {
		switch {
		case m < 128:
			rangeLimit[m] = uint8(m + 128)
		case m < 512:
			rangeLimit[m] = 255
		case m < 896:
			rangeLimit[m] = 0
		default:
			rangeLimit[m] = uint8(m - 896)
		}
	}
}

// descale is libjpeg's DESCALE: divide by 2^n, rounding half up.
func descale(x int32, n uint) int32 { return (x + 1<<(n-1)) >> n }

// idct turns one block of quantised coefficients (natural order) and its
// quantisation table into 8×8 samples written at dst with the given stride.
func idct(coef *[64]int16, quant *[64]uint16, dst []uint8, stride int) {
	var ws [64]int32
	// Pass 1: columns, from the dequantised input into ws, scaled up by
	// 2^pass1Bits.
	for c := range 8 {
		if coef[8+c] == 0 && coef[16+c] == 0 && coef[24+c] == 0 && coef[32+c] == 0 &&
			coef[40+c] == 0 && coef[48+c] == 0 && coef[56+c] == 0 {
			// A column of zeros but its DC: libjpeg's shortcut, which the
			// full computation would reproduce exactly.
			dc := int32(coef[c]) * int32(quant[c]) << pass1Bits
			for r := range 8 {
				ws[8*r+c] = dc
			}
			continue
		}
		deq := func(r int) int32 { return int32(coef[8*r+c]) * int32(quant[8*r+c]) }
		o := butterfly(deq(0), deq(1), deq(2), deq(3), deq(4), deq(5), deq(6), deq(7))
		for r := range 8 {
			ws[8*r+c] = descale(o[r], constBits-pass1Bits)
		}
	}
	// Pass 2: rows, removing the 2^pass1Bits and the 8 of the DCT's
	// normalisation, then range-limiting around 128.
	for r := range 8 {
		w := ws[8*r : 8*r+8]
		out := dst[r*stride : r*stride+8]
		if w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0 {
			v := rangeLimit[descale(w[0], pass1Bits+3)&1023]
			for i := range out {
				out[i] = v
			}
			continue
		}
		o := butterfly(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7])
		for i := range out {
			out[i] = rangeLimit[descale(o[i], constBits+pass1Bits+3)&1023]
		}
	}
}

// butterfly is one 8-point islow IDCT before its final descale: the even
// part from inputs 0, 2, 4, 6 and the odd part from 1, 3, 5, 7, with
// libjpeg's order of operations (the rounding happens only in descale, so
// the order only matters for exactness of the int32 sums, which it keeps).
func butterfly(x0, x1, x2, x3, x4, x5, x6, x7 int32) [8]int32 {
	// Even part.
	z1 := (x2 + x6) * fix0_541196100
	tmp2 := z1 + x6*(-fix1_847759065)
	tmp3 := z1 + x2*fix0_765366865
	tmp0 := (x0 + x4) << constBits
	tmp1 := (x0 - x4) << constBits
	tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
	tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2

	// Odd part.
	t0, t1, t2, t3 := x7, x5, x3, x1
	z1 = t0 + t3
	z2 := t1 + t2
	z3 := t0 + t2
	z4 := t1 + t3
	z5 := (z3 + z4) * fix1_175875602
	t0 *= fix0_298631336
	t1 *= fix2_053119869
	t2 *= fix3_072711026
	t3 *= fix1_501321110
	z1 *= -fix0_899976223
	z2 *= -fix2_562915447
	z3 *= -fix1_961570560
	z4 *= -fix0_390180644
	z3 += z5
	z4 += z5
	t0 += z1 + z3
	t1 += z2 + z4
	t2 += z2 + z3
	t3 += z1 + z4

	return [8]int32{
		tmp10 + t3, tmp11 + t2, tmp12 + t1, tmp13 + t0,
		tmp13 - t0, tmp12 - t1, tmp11 - t2, tmp10 - t3,
	}
}
