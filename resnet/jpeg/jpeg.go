// Package jpeg decodes JPEG files to the very samples libjpeg(-turbo)
// produces with its default settings, which is what Pillow, and so
// torchvision's image loader, returns.
//
// Go's image/jpeg is a fine decoder but not libjpeg's: its inverse DCT
// rounds differently, so its samples are up to a few levels away from
// Pillow's, and a network's top-5 can differ from Python's on the same
// file. This decoder uses libjpeg's "islow" IDCT (idct.go) and follows
// libjpeg wherever the standard leaves a choice (Huffman table checks,
// coefficient overflow, range limiting). Colour conversion and chroma
// upsampling are the caller's: resnet/preprocess does them as libjpeg does.
//
// Supported: baseline, extended-sequential (Huffman) and progressive
// JPEGs with 8-bit samples, one component (grey) or three: YCbCr with
// 4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1 or 4:1:0 chroma, or RGB (Adobe
// transform 0, or ids 'R', 'G', 'B'); any restart interval. Anything
// else — arithmetic coding, lossless, hierarchical, 12-bit, CMYK/YCCK,
// other chroma layouts, tables left to their defaults (Motion JPEG),
// and progressive files whose scans never complete the low-frequency
// coefficients (libjpeg smooths those) — is reported as ErrUnsupported, so
// that the caller can fall back to image/jpeg. Corrupt data is an error
// (libjpeg warns and decodes zeros; we refuse), never a panic.
package jpeg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
)

// ErrUnsupported is wrapped by the error for a valid JPEG this decoder
// does not handle.
var ErrUnsupported = errors.New("jpeg: unsupported")

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

// A FormatError reports a corrupt or malformed JPEG.
type FormatError string

func (e FormatError) Error() string { return "jpeg: " + string(e) }

// frameKinds names the SOFn frame types by n/4 and n%4 (T.81 table B.1).
var frameKinds = [4][4]string{
	{"baseline", "extended sequential", "progressive", "lossless"},
	{"", "hierarchical sequential", "hierarchical progressive", "hierarchical lossless"},
	{"", "arithmetic coding, sequential", "arithmetic coding, progressive", "arithmetic coding, lossless"},
	{"", "hierarchical arithmetic coding, sequential", "hierarchical arithmetic coding, progressive", "hierarchical arithmetic coding, lossless"},
}

// zigzag[k] is the natural-order index of the k-th coefficient in zigzag
// order, followed by 16 entries of 63 as in libjpeg's jpeg_natural_order:
// a corrupt run can step k past 63 by up to 15, and libjpeg then writes
// coefficient 63.
var zigzag = [64 + 16]int{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
	63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
}

type component struct {
	id       byte
	h, v     int         // sampling factors
	tq       int         // quantisation table selector
	w, hgt   int         // samples: ceil(width·h/hmax) × ceil(height·v/vmax)
	bw, bh   int         // blocks per row and column, padded to whole MCUs
	coef     []int16     // progressive: every block's coefficients until the last scan
	plane    []uint8     // samples, (bw·8)×(bh·8); sequential scans fill it row by row
	quant    *[64]uint16 // latched when the component's first scan starts, as libjpeg does
	coefBits [64]int8    // progressive: per zigzag position, the lowest bit received, -1: none
	dc, ac   int         // the current scan's Huffman table selectors
	lastDC   int32
	scanned  bool // sequential: its scan has been decoded
}

// idct writes block (bx, by)'s samples into the plane.
func (c *component) idct(b *[64]int16, bx, by int) {
	stride := c.bw * 8
	idct(b, c.quant, c.plane[by*8*stride+bx*8:], stride)
}

func (c *component) block(bx, by int) *[64]int16 {
	i := (by*c.bw + bx) * 64
	return (*[64]int16)(c.coef[i : i+64])
}

type decoder struct {
	data      []byte
	pos       int
	maxPixels int // 0: no limit (DecodeConfig)

	quant     [4]*[64]uint16 // natural order
	dcTab     [4]*huffTable
	acTab     [4]*huffTable
	restart   int
	jfif      bool
	adobe     bool
	transform byte
	rgb       bool // three components coded as R, G, B (no colour transform)

	frame       bool
	progressive bool
	width       int
	height      int
	comps       []component
	hmax, vmax  int
	mcusX       int
	mcusY       int
	scans       int

	eobrun int32
	bits   bitReader
}

// DecodeConfig reads the size and colour model of a JPEG without decoding
// its pixels. It reports ErrUnsupported for what the frame header shows
// Decode does not decode (a progressive file libjpeg would smooth shows
// only in its scans).
func DecodeConfig(data []byte) (image.Config, error) {
	d := &decoder{data: data}
	if err := d.parse(true); err != nil {
		return image.Config{}, err
	}
	model := image.Config{Width: d.width, Height: d.height, ColorModel: color.YCbCrModel}
	switch {
	case len(d.comps) == 1:
		model.ColorModel = color.GrayModel
	case d.rgb:
		model.ColorModel = color.RGBAModel
	}
	return model, nil
}

// Decode decodes a JPEG held in memory into an *image.Gray, an
// *image.YCbCr or (for an RGB-coded JPEG) an *image.RGBA. It refuses a
// frame of more than maxPixels pixels before allocating anything for it.
func Decode(data []byte, maxPixels int) (image.Image, error) {
	if maxPixels < 1 {
		return nil, fmt.Errorf("jpeg: maxPixels %d", maxPixels)
	}
	d := &decoder{data: data, maxPixels: maxPixels}
	if err := d.parse(false); err != nil {
		return nil, err
	}
	return d.image()
}

var errEnd = FormatError("truncated: the data ends before the EOI marker")

// parse reads markers and segments up to EOI (or, for DecodeConfig, up to
// the frame header), decoding each scan as it comes.
func (d *decoder) parse(frameOnly bool) error {
	if len(d.data) < 2 || d.data[0] != 0xFF || d.data[1] != 0xD8 {
		return FormatError("not a JPEG: no SOI marker at the start")
	}
	d.pos = 2
	for {
		m, err := d.nextMarker()
		if err != nil {
			if !frameOnly && d.sequentialDone() {
				return nil // the image is complete; only EOI is missing
			}
			return err
		}
		switch {
		case m == 0xD9: // EOI
			if frameOnly {
				return FormatError("no frame header before EOI")
			}
			return nil
		case m == 0xD8:
			return FormatError("a second SOI marker")
		case m == 0x01 || 0xD0 <= m && m <= 0xD7: // TEM, RSTn: no segment (libjpeg ignores them here)
			continue
		}
		seg, err := d.segment()
		if err != nil {
			return err
		}
		switch {
		case m == 0xC0 || m == 0xC1 || m == 0xC2:
			if err := d.readFrame(m, seg); err != nil {
				return err
			}
			if frameOnly {
				return d.checkLayout()
			}
		case m == 0xC3 || 0xC5 <= m && m <= 0xC7 || 0xC9 <= m && m <= 0xCB || 0xCD <= m && m <= 0xCF:
			return unsupported("%s (SOF%d)", frameKinds[(m-0xC0)/4][m%4], m-0xC0)
		case m == 0xCC:
			return unsupported("arithmetic coding")
		case m == 0xC4:
			err = d.readHuffman(seg)
		case m == 0xDB:
			err = d.readQuant(seg)
		case m == 0xDD:
			if len(seg) != 2 {
				return FormatError("DRI segment of the wrong length")
			}
			d.restart = int(binary.BigEndian.Uint16(seg))
		case m == 0xDA:
			if frameOnly {
				return FormatError("a scan before the frame header")
			}
			err = d.readScan(seg)
		case m == 0xE0:
			// libjpeg's examine_app0: a JFIF APP0 has at least 14 bytes.
			d.jfif = d.jfif || len(seg) >= 14 && string(seg[:5]) == "JFIF\x00"
		case m == 0xEE:
			if len(seg) >= 12 && string(seg[:5]) == "Adobe" { // examine_app14
				d.adobe, d.transform = true, seg[11]
			}
		case 0xE1 <= m && m <= 0xEF || m == 0xFE: // other APPn, COM
		case m == 0xDC || m == 0xDE || m == 0xDF:
			return unsupported("marker 0x%02X (DNL, DHP, EXP)", m)
		default:
			return FormatError(fmt.Sprintf("unknown marker 0x%02X", m))
		}
		if err != nil {
			return err
		}
	}
}

// nextMarker skips to the next marker, as libjpeg's next_marker does
// (stray bytes are skipped; libjpeg warns about them), and returns its code.
func (d *decoder) nextMarker() (byte, error) {
	for {
		for d.pos < len(d.data) && d.data[d.pos] != 0xFF {
			d.pos++
		}
		for d.pos < len(d.data) && d.data[d.pos] == 0xFF {
			d.pos++
		}
		if d.pos >= len(d.data) {
			return 0, errEnd
		}
		m := d.data[d.pos]
		d.pos++
		if m != 0 { // FF 00 is a stuffed data byte, not a marker
			return m, nil
		}
	}
}

// segment returns the payload of the segment at d.pos and moves past it.
func (d *decoder) segment() ([]byte, error) {
	if len(d.data)-d.pos < 2 {
		return nil, errEnd
	}
	n := int(binary.BigEndian.Uint16(d.data[d.pos:]))
	if n < 2 {
		return nil, FormatError("segment length below 2")
	}
	if len(d.data)-d.pos < n {
		return nil, errEnd
	}
	seg := d.data[d.pos+2 : d.pos+n]
	d.pos += n
	return seg, nil
}

func (d *decoder) readFrame(m byte, seg []byte) error {
	if d.frame {
		return FormatError("a second frame header")
	}
	if len(seg) < 6 {
		return FormatError("frame header too short")
	}
	if seg[0] != 8 {
		return unsupported("%d-bit samples", seg[0])
	}
	d.height = int(binary.BigEndian.Uint16(seg[1:]))
	d.width = int(binary.BigEndian.Uint16(seg[3:]))
	nf := int(seg[5])
	if len(seg) != 6+3*nf || nf == 0 {
		return FormatError("frame header of the wrong length")
	}
	if d.height == 0 {
		return unsupported("a height given by a DNL marker")
	}
	if d.width == 0 {
		return FormatError("zero width")
	}
	if nf != 1 && nf != 3 {
		return unsupported("%d colour components (CMYK/YCCK or other)", nf)
	}
	d.comps = make([]component, nf)
	for i := range d.comps {
		c := &d.comps[i]
		b := seg[6+3*i:]
		c.id, c.h, c.v, c.tq = b[0], int(b[1]>>4), int(b[1]&15), int(b[2])
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 {
			return FormatError("bad sampling factors")
		}
		if c.tq > 3 {
			return FormatError("bad quantisation table selector")
		}
		for j := range i {
			if d.comps[j].id == c.id {
				return FormatError("two components with one id")
			}
		}
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
	}
	if d.maxPixels > 0 && d.width*d.height > d.maxPixels {
		return FormatError(fmt.Sprintf("%dx%d pixels; the limit is %d", d.width, d.height, d.maxPixels))
	}
	d.mcusX = ceilDiv(d.width, 8*d.hmax)
	d.mcusY = ceilDiv(d.height, 8*d.vmax)
	for i := range d.comps {
		c := &d.comps[i]
		c.w, c.hgt = ceilDiv(d.width*c.h, d.hmax), ceilDiv(d.height*c.v, d.vmax)
		c.bw, c.bh = d.mcusX*c.h, d.mcusY*c.v
		for k := range c.coefBits {
			c.coefBits[k] = -1
		}
	}
	d.frame, d.progressive = true, m == 0xC2
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// checkLayout reports ErrUnsupported for a colour space or chroma layout
// Decode does not return. libjpeg (default_decompress_parms) takes three
// components for YCbCr unless an Adobe marker says transform 0 or, with
// neither JFIF nor Adobe marker, the ids are 'R', 'G', 'B'.
func (d *decoder) checkLayout() error {
	if len(d.comps) == 1 {
		return nil
	}
	c := d.comps
	d.rgb = !d.jfif && (d.adobe && d.transform == 0 || !d.adobe && c[0].id == 'R' && c[1].id == 'G' && c[2].id == 'B')
	if d.rgb {
		if c[0].h != c[1].h || c[0].h != c[2].h || c[0].v != c[1].v || c[0].v != c[2].v {
			return unsupported("subsampled RGB-coded JPEG")
		}
		return nil
	}
	if _, ok := d.subsampling(); !ok {
		return unsupported("chroma sampling Y %dx%d, Cb %dx%d, Cr %dx%d", c[0].h, c[0].v, c[1].h, c[1].v, c[2].h, c[2].v)
	}
	return nil
}

// subsampling maps the sampling factors to image.YCbCr's ratios: luma
// must carry the largest factors, both chroma components the same ones,
// and the ratio one image.YCbCr has: 1×1, 2×1, 2×2, 1×2, 4×1 or 4×2.
func (d *decoder) subsampling() (image.YCbCrSubsampleRatio, bool) {
	y, cb, cr := d.comps[0], d.comps[1], d.comps[2]
	if y.h != d.hmax || y.v != d.vmax || cb.h != cr.h || cb.v != cr.v || y.h%cb.h != 0 || y.v%cb.v != 0 {
		return 0, false
	}
	switch [2]int{y.h / cb.h, y.v / cb.v} {
	case [2]int{1, 1}:
		return image.YCbCrSubsampleRatio444, true
	case [2]int{2, 1}:
		return image.YCbCrSubsampleRatio422, true
	case [2]int{2, 2}:
		return image.YCbCrSubsampleRatio420, true
	case [2]int{1, 2}:
		return image.YCbCrSubsampleRatio440, true
	case [2]int{4, 1}:
		return image.YCbCrSubsampleRatio411, true
	case [2]int{4, 2}:
		return image.YCbCrSubsampleRatio410, true
	}
	return 0, false
}

func (d *decoder) readQuant(seg []byte) error {
	for len(seg) > 0 {
		pq, tq := seg[0]>>4, seg[0]&15
		if pq > 1 || tq > 3 {
			return FormatError("bad quantisation table header")
		}
		n := 1 + 64*(1+int(pq))
		if len(seg) < n {
			return FormatError("quantisation table segment too short")
		}
		q := new([64]uint16)
		for k := range 64 {
			if pq == 0 {
				q[zigzag[k]] = uint16(seg[1+k])
			} else {
				q[zigzag[k]] = binary.BigEndian.Uint16(seg[1+2*k:])
			}
		}
		d.quant[tq] = q
		seg = seg[n:]
	}
	return nil
}

func (d *decoder) readHuffman(seg []byte) error {
	for len(seg) > 0 {
		if len(seg) < 17 {
			return FormatError("Huffman table segment too short")
		}
		tc, th := seg[0]>>4, seg[0]&15
		if tc > 1 || th > 3 {
			return FormatError("bad Huffman table header")
		}
		var counts [16]int
		total := 0
		for i := range counts {
			counts[i] = int(seg[1+i])
			total += counts[i]
		}
		if total > 256 || len(seg) < 17+total {
			return FormatError("bad Huffman table: too many symbols")
		}
		t, err := newHuffTable(counts, append([]byte(nil), seg[17:17+total]...))
		if err != nil {
			return err
		}
		if tc == 0 {
			d.dcTab[th] = t
		} else {
			d.acTab[th] = t
		}
		seg = seg[17+total:]
	}
	return nil
}

// sequentialDone reports whether a sequential image has all its scans.
func (d *decoder) sequentialDone() bool {
	if !d.frame || d.progressive {
		return false
	}
	for i := range d.comps {
		if !d.comps[i].scanned {
			return false
		}
	}
	return true
}

// image runs the IDCT over a progressive image's blocks and returns the
// planes.
func (d *decoder) image() (image.Image, error) {
	if !d.frame {
		return nil, FormatError("no frame header")
	}
	for i := range d.comps { // also catches a file with no scan at all
		c := &d.comps[i]
		if !d.progressive && !c.scanned || d.progressive && c.coefBits[0] < 0 {
			return nil, FormatError(fmt.Sprintf("component %d has no scan", i))
		}
	}
	if d.wouldSmooth() {
		return nil, unsupported("progressive scans that leave low-frequency coefficients incomplete (libjpeg smooths them)")
	}
	planes := make([][]uint8, len(d.comps))
	for i := range d.comps {
		c := &d.comps[i]
		if d.progressive { // sequential blocks went through the IDCT as they were decoded
			for by := range c.bh {
				for bx := range c.bw {
					c.idct(c.block(bx, by), bx, by)
				}
			}
		}
		planes[i] = c.plane
	}
	r := image.Rect(0, 0, d.width, d.height)
	if len(d.comps) == 1 {
		return &image.Gray{Pix: planes[0], Stride: d.comps[0].bw * 8, Rect: r}, nil
	}
	if d.rgb { // libjpeg's RGB → RGB "conversion" is a copy
		m := image.NewRGBA(r)
		for y := range d.height {
			row := m.Pix[y*m.Stride:]
			for x := range d.width {
				for i, p := range planes {
					row[4*x+i] = p[y*d.comps[i].bw*8+x]
				}
				row[4*x+3] = 255
			}
		}
		return m, nil
	}
	ratio, _ := d.subsampling()
	return &image.YCbCr{
		Y: planes[0], Cb: planes[1], Cr: planes[2],
		YStride: d.comps[0].bw * 8, CStride: d.comps[1].bw * 8,
		SubsampleRatio: ratio, Rect: r,
	}, nil
}

// wouldSmooth reports whether libjpeg would apply block smoothing
// (jdcoefct.c's smoothing_ok in libjpeg-turbo 2.1): a progressive image
// whose coefficients at zigzag positions 1–9 are not all complete, with
// every component's DC known and its quantisers there nonzero.
func (d *decoder) wouldSmooth() bool {
	if !d.progressive {
		return false
	}
	useful := false
	for i := range d.comps {
		c := &d.comps[i]
		if c.coefBits[0] < 0 {
			return false
		}
		for k := range 10 {
			if c.quant[zigzag[k]] == 0 {
				return false
			}
			if k > 0 && c.coefBits[k] != 0 {
				useful = true
			}
		}
	}
	return useful
}
