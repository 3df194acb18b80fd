package preprocess

import "image"

// JPEG colour, as libjpeg(-turbo) reconstructs it — Pillow, and so
// torchvision, decode JPEGs with it. A decoded *image.YCbCr holds the
// subsampled chroma planes, and its At repeats each chroma sample over its
// 2×2 (2×1, 1×2) block; libjpeg's default "fancy" upsampling interpolates
// instead (a triangle filter, 3/4 of the nearer sample and 1/4 of the
// farther in each direction). On a 4:2:0 photo the two differ by up to ~50
// levels at colour edges, so the conversion below does what libjpeg does:
// the same upsampling arithmetic (jdsample.c: h2v2, h2v1 and h1v2 fancy;
// box for 4× and when a 2× horizontal upsampling has at most 2 samples)
// and the same 16-bit
// fixed-point YCbCr → RGB tables (jdcolor.c). With resnet/jpeg's planes
// (libjpeg's IDCT) the result is libjpeg's RGB exactly (TestJPEGMatchesLibjpeg).

const (
	scaleBits = 16
	oneHalf   = 1 << (scaleBits - 1)
)

// fix is libjpeg's FIX(x): x in 16-bit fixed point, rounded.
func fix(x float64) int32 { return int32(x*(1<<scaleBits) + 0.5) }

var crR, cbB, crG, cbG [256]int32

func init() {
	for i := range 256 {
		x := int32(i - 128)
		crR[i] = (fix(1.40200)*x + oneHalf) >> scaleBits
		cbB[i] = (fix(1.77200)*x + oneHalf) >> scaleBits
		crG[i] = -fix(0.71414) * x
		cbG[i] = -fix(0.34414)*x + oneHalf
	}
}

// ycbcrToRGB converts a decoded JPEG as libjpeg does. It reports false
// only for a sub-image cut off the chroma grid, which the caller converts
// the generic way. It works a row at a time (two rows of upsampled chroma
// are all it allocates besides the result), in one band of rows per CPU.
func ycbcrToRGB(m *image.YCbCr) (*RGB, bool) {
	fx, fy := factors(m.SubsampleRatio)
	b := m.Rect
	if fx == 0 || b.Min.X%fx != 0 || b.Min.Y%fy != 0 {
		return nil, false
	}
	w, h := b.Dx(), b.Dy()
	off := m.COffset(b.Min.X, b.Min.Y)
	out := &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	parallelRows(h, func(y0, y1 int) {
		cb := newChroma(m.Cb, off, m.CStride, w, h, fx, fy)
		cr := newChroma(m.Cr, off, m.CStride, w, h, fx, fy)
		cbRow, crRow := make([]uint8, w), make([]uint8, w)
		for y := y0; y < y1; y++ {
			cb.upsampleRow(y, cbRow)
			cr.upsampleRow(y, crRow)
			yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):][:w]
			o := out.Pix[3*y*w : 3*(y+1)*w]
			for x, yy := range yrow {
				u, v := cbRow[x], crRow[x]
				o[3*x] = clamp8(int32(yy) + crR[v])
				o[3*x+1] = clamp8(int32(yy) + (cbG[u]+crG[v])>>scaleBits)
				o[3*x+2] = clamp8(int32(yy) + cbB[u])
			}
		}
	})
	return out, true
}

// factors returns the horizontal and vertical chroma subsampling factors
// of a ratio, or 0, 0 for one it does not know.
func factors(r image.YCbCrSubsampleRatio) (fx, fy int) {
	switch r {
	case image.YCbCrSubsampleRatio444:
		return 1, 1
	case image.YCbCrSubsampleRatio422:
		return 2, 1
	case image.YCbCrSubsampleRatio420:
		return 2, 2
	case image.YCbCrSubsampleRatio440:
		return 1, 2
	case image.YCbCrSubsampleRatio411:
		return 4, 1
	case image.YCbCrSubsampleRatio410:
		return 4, 2
	}
	return 0, 0
}

// chroma upsamples one subsampled chroma plane to full resolution a row at
// a time, choosing libjpeg's method (jdsample.c's jinit_upsampler): fancy
// h2v1, h2v2 (when the plane is more than 2 samples wide) and h1v2, box
// (int_upsample) otherwise.
type chroma struct {
	p           []uint8 // chroma row r is p[off+r·stride:][:cw]
	off, stride int
	cw, ch      int
	fx, fy      int
	sums        []int   // h2v2: the vertically mixed row
	wide        []uint8 // 2× horizontal: a whole output row before cropping
}

func newChroma(p []uint8, off, stride, w, h, fx, fy int) *chroma {
	cw, ch := (w+fx-1)/fx, (h+fy-1)/fy
	return &chroma{p: p, off: off, stride: stride, cw: cw, ch: ch, fx: fx, fy: fy,
		sums: make([]int, cw), wide: make([]uint8, 2*cw)}
}

func (c *chroma) row(r int) []uint8 { return c.p[c.off+r*c.stride:][:c.cw] }

// near returns the chroma row nearest to output row y and the next
// nearest for a 2× vertical filter: the row above for the upper output
// row of a pair, the one below for the lower — the row itself at the top
// and bottom edges, as libjpeg's context rows replicate it.
func (c *chroma) near(y int) (near, far []uint8, lower bool) {
	n := y / 2
	f, lower := n-1, y%2 == 1
	if lower {
		f = n + 1
	}
	return c.row(n), c.row(min(max(f, 0), c.ch-1)), lower
}

// upsampleRow writes the chroma of output row y into dst (the image width).
func (c *chroma) upsampleRow(y int, dst []uint8) {
	switch {
	case c.fx == 1 && c.fy == 1:
		copy(dst, c.row(y))
	case c.fx == 2 && c.fy == 1 && c.cw > 2:
		// h2v1_fancy_upsample: 3/4 nearer + 1/4 farther, rounded +1 to
		// the left of a sample's centre and +2 to the right; edges copied.
		src, o := c.row(y), c.wide
		o[0] = src[0]
		o[1] = uint8((int(src[0])*3 + int(src[1]) + 2) >> 2)
		for x := 1; x < c.cw-1; x++ {
			v := int(src[x]) * 3
			o[2*x] = uint8((v + int(src[x-1]) + 1) >> 2)
			o[2*x+1] = uint8((v + int(src[x+1]) + 2) >> 2)
		}
		last := int(src[c.cw-1])
		o[2*c.cw-2] = uint8((last*3 + int(src[c.cw-2]) + 1) >> 2)
		o[2*c.cw-1] = uint8(last)
		copy(dst, o)
	case c.fx == 2 && c.fy == 2 && c.cw > 2:
		// h2v2_fancy_upsample: the same filter in both directions on
		// column sums 3·near + far, rounded +8 and +7 alternately.
		near, far, _ := c.near(y)
		s, o := c.sums, c.wide
		for x := range s {
			s[x] = int(near[x])*3 + int(far[x])
		}
		o[0] = uint8((s[0]*4 + 8) >> 4)
		o[1] = uint8((s[0]*3 + s[1] + 7) >> 4)
		for x := 1; x < c.cw-1; x++ {
			o[2*x] = uint8((s[x]*3 + s[x-1] + 8) >> 4)
			o[2*x+1] = uint8((s[x]*3 + s[x+1] + 7) >> 4)
		}
		last := c.cw - 1
		o[2*last] = uint8((s[last]*3 + s[last-1] + 8) >> 4)
		o[2*last+1] = uint8((s[last]*4 + 7) >> 4)
		copy(dst, o)
	case c.fx == 1 && c.fy == 2:
		// h1v2_fancy_upsample (libjpeg-turbo): 3/4 nearer row + 1/4
		// farther, rounded +1 above a chroma row's centre, +2 below.
		near, far, lower := c.near(y)
		bias := 1
		if lower {
			bias = 2
		}
		for x := range dst {
			dst[x] = uint8((int(near[x])*3 + int(far[x]) + bias) >> 2)
		}
	default: // int_upsample, and 2× of planes at most 2 samples wide: box
		src := c.row(y / c.fy)
		for x := range dst {
			dst[x] = src[x/c.fx]
		}
	}
}
