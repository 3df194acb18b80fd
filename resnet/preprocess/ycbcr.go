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
// the generic way.
func ycbcrToRGB(m *image.YCbCr) (*RGB, bool) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	var cb, cr []uint8 // full-resolution chroma, w×h
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
		cb, cr = plane(m.Cb, m.CStride, m.COffset(b.Min.X, b.Min.Y), w, h), plane(m.Cr, m.CStride, m.COffset(b.Min.X, b.Min.Y), w, h)
	case image.YCbCrSubsampleRatio440:
		ch := (h + 1) / 2
		if b.Min.Y%2 != 0 {
			return nil, false
		}
		off := m.COffset(b.Min.X, b.Min.Y)
		cb, cr = upsampleH1V2(plane(m.Cb, m.CStride, off, w, ch), w, ch, h), upsampleH1V2(plane(m.Cr, m.CStride, off, w, ch), w, ch, h)
	case image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio422:
		cw, ch := (w+1)/2, h
		if m.SubsampleRatio == image.YCbCrSubsampleRatio420 {
			ch = (h + 1) / 2
		}
		if b.Min.X%2 != 0 || b.Min.Y%2 != 0 {
			return nil, false // a sub-image not aligned to the chroma grid; never from Decode
		}
		off := m.COffset(b.Min.X, b.Min.Y)
		cb, cr = plane(m.Cb, m.CStride, off, cw, ch), plane(m.Cr, m.CStride, off, cw, ch)
		if m.SubsampleRatio == image.YCbCrSubsampleRatio420 {
			cb, cr = upsampleH2V2(cb, cw, ch, w, h), upsampleH2V2(cr, cw, ch, w, h)
		} else {
			cb, cr = upsampleH2V1(cb, cw, ch, w), upsampleH2V1(cr, cw, ch, w)
		}
	case image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410:
		// libjpeg has no fancy filter for 4× (jdsample.c's int_upsample):
		// each chroma sample covers its 4×1 or 4×2 block.
		fy := 1
		if m.SubsampleRatio == image.YCbCrSubsampleRatio410 {
			fy = 2
		}
		if b.Min.X%4 != 0 || b.Min.Y%fy != 0 {
			return nil, false
		}
		cw, ch := (w+3)/4, (h+fy-1)/fy
		off := m.COffset(b.Min.X, b.Min.Y)
		cb, cr = upsampleBox(plane(m.Cb, m.CStride, off, cw, ch), cw, 4, fy, w, h), upsampleBox(plane(m.Cr, m.CStride, off, cw, ch), cw, 4, fy, w, h)
	default:
		return nil, false
	}
	out := &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for y := range h {
		yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):]
		for x := range w {
			i := y*w + x
			yy, u, v := int32(yrow[x]), cb[i], cr[i]
			o := out.Pix[3*i : 3*i+3]
			o[0] = clamp8(yy + crR[v])
			o[1] = clamp8(yy + (cbG[u]+crG[v])>>scaleBits)
			o[2] = clamp8(yy + cbB[u])
		}
	}
	return out, true
}

// plane copies a w×h window of a strided plane starting at off.
func plane(p []uint8, stride, off, w, h int) []uint8 {
	out := make([]uint8, w*h)
	for y := range h {
		copy(out[y*w:(y+1)*w], p[off+y*stride:])
	}
	return out
}

// upsampleH2V1 doubles the width (4:2:2) as libjpeg's h2v1_fancy_upsample,
// cropping to w columns.
func upsampleH2V1(in []uint8, cw, ch, w int) []uint8 {
	full := make([]uint8, 2*cw*ch)
	for y := range ch {
		src, dst := in[y*cw:(y+1)*cw], full[y*2*cw:(y+1)*2*cw]
		if cw <= 2 { // libjpeg's fancy upsamplers need 3 samples; box otherwise
			for x := range dst {
				dst[x] = src[x/2]
			}
			continue
		}
		dst[0] = src[0]
		dst[1] = uint8((int(src[0])*3 + int(src[1]) + 2) >> 2)
		for x := 1; x < cw-1; x++ {
			v := int(src[x]) * 3
			dst[2*x] = uint8((v + int(src[x-1]) + 1) >> 2)
			dst[2*x+1] = uint8((v + int(src[x+1]) + 2) >> 2)
		}
		last := int(src[cw-1])
		dst[2*cw-2] = uint8((last*3 + int(src[cw-2]) + 1) >> 2)
		dst[2*cw-1] = uint8(last)
	}
	return crop(full, 2*cw, w, ch)
}

// upsampleBox repeats each sample of a cw-wide plane over an fx×fy block,
// giving w×h samples.
func upsampleBox(in []uint8, cw, fx, fy, w, h int) []uint8 {
	out := make([]uint8, w*h)
	for y := range h {
		src := in[(y/fy)*cw:]
		for x := range w {
			out[y*w+x] = src[x/fx]
		}
	}
	return out
}

// upsampleH1V2 doubles the height (4:4:0) as libjpeg-turbo's
// h1v2_fancy_upsample: each output row is 3/4 of its nearest chroma row
// and 1/4 of the next nearest (the row itself at the top and bottom
// edges), rounded with +1 above a chroma row's centre and +2 below.
// Cropped to h rows.
func upsampleH1V2(in []uint8, cw, ch, h int) []uint8 {
	full := make([]uint8, cw*2*ch)
	for y := range 2 * ch {
		near, far, bias := y/2, y/2-1, 1
		if y%2 == 1 {
			far, bias = near+1, 2
		}
		far = min(max(far, 0), ch-1)
		dst := full[y*cw : (y+1)*cw]
		for x := range dst {
			dst[x] = uint8((int(in[near*cw+x])*3 + int(in[far*cw+x]) + bias) >> 2)
		}
	}
	return full[:cw*h]
}

// upsampleH2V2 doubles both dimensions (4:2:0) as libjpeg's
// h2v2_fancy_upsample: each output row mixes its nearest chroma row (×3)
// with the next nearest (×1, the row itself at the image's top and bottom
// edges, as libjpeg's context rows replicate it), then each column likewise
// with weights 3 and 1, rounding with +8 / +7 alternately. Cropped to w×h.
func upsampleH2V2(in []uint8, cw, ch, w, h int) []uint8 {
	full := make([]uint8, 2*cw*2*ch)
	sums := make([]int, cw)
	for y := range 2 * ch {
		near := y / 2
		far := near - 1
		if y%2 == 1 {
			far = near + 1
		}
		far = min(max(far, 0), ch-1)
		dst := full[y*2*cw : (y+1)*2*cw]
		if cw <= 2 {
			for x := range dst {
				dst[x] = in[near*cw+x/2]
			}
			continue
		}
		for x := range cw {
			sums[x] = int(in[near*cw+x])*3 + int(in[far*cw+x])
		}
		dst[0] = uint8((sums[0]*4 + 8) >> 4)
		dst[1] = uint8((sums[0]*3 + sums[1] + 7) >> 4)
		for x := 1; x < cw-1; x++ {
			dst[2*x] = uint8((sums[x]*3 + sums[x-1] + 8) >> 4)
			dst[2*x+1] = uint8((sums[x]*3 + sums[x+1] + 7) >> 4)
		}
		dst[2*cw-2] = uint8((sums[cw-1]*3 + sums[cw-2] + 8) >> 4)
		dst[2*cw-1] = uint8((sums[cw-1]*4 + 7) >> 4)
	}
	return crop(full, 2*cw, w, h)
}

// crop keeps the first w columns and h rows of a stride-wide plane.
func crop(p []uint8, stride, w, h int) []uint8 {
	if stride == w && len(p) == w*h {
		return p
	}
	out := make([]uint8, w*h)
	for y := range h {
		copy(out[y*w:(y+1)*w], p[y*stride:y*stride+w])
	}
	return out
}
