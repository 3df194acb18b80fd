package jpeg

import "fmt"

// A scan header and its entropy-coded data, sequential (jdhuff.c) or
// progressive (jdphuff.c).

type scan struct {
	comps          []*component
	ss, se, ah, al int
}

func (d *decoder) readScan(seg []byte) error {
	if !d.frame {
		return FormatError("a scan before the frame header")
	}
	if d.scans == 0 {
		if err := d.checkLayout(); err != nil {
			return err
		}
	}
	if len(seg) < 1 {
		return FormatError("scan header too short")
	}
	ns := int(seg[0])
	if ns < 1 || ns > 4 || len(seg) != 1+2*ns+3 {
		return FormatError("scan header of the wrong length")
	}
	var sc scan
	for i := range ns {
		id, tables := seg[1+2*i], seg[2+2*i]
		var c *component
		for j := range d.comps {
			if d.comps[j].id == id {
				c = &d.comps[j]
			}
		}
		if c == nil {
			return FormatError(fmt.Sprintf("scan names component id %d, not in the frame", id))
		}
		for _, o := range sc.comps {
			if o == c {
				return FormatError("a component twice in one scan")
			}
		}
		c.dc, c.ac = int(tables>>4), int(tables&15)
		if c.dc > 3 || c.ac > 3 {
			return FormatError("bad Huffman table selector")
		}
		sc.comps = append(sc.comps, c)
	}
	p := seg[1+2*ns:]
	sc.ss, sc.se, sc.ah, sc.al = int(p[0]), int(p[1]), int(p[2]>>4), int(p[2]&15)
	if d.progressive {
		// libjpeg's start_pass_phuff_decoder checks.
		bad := sc.ss == 0 && sc.se != 0 ||
			sc.ss != 0 && (sc.se < sc.ss || sc.se > 63 || ns != 1) ||
			sc.ah != 0 && sc.al != sc.ah-1 || sc.al > 13
		if bad {
			return FormatError(fmt.Sprintf("bad progression parameters Ss=%d Se=%d Ah=%d Al=%d", sc.ss, sc.se, sc.ah, sc.al))
		}
	} else {
		// libjpeg only warns about Ss, Se, Ah, Al in a sequential scan
		// and decodes all 64 coefficients.
		for _, c := range sc.comps {
			if c.scanned {
				return FormatError("a component in two sequential scans")
			}
		}
	}
	if ns > 1 {
		blocks := 0
		for _, c := range sc.comps {
			blocks += c.h * c.v
		}
		if blocks > 10 {
			return FormatError("more than 10 blocks in an MCU")
		}
	}
	for _, c := range sc.comps {
		needDC := !d.progressive || sc.ss == 0 && sc.ah == 0
		needAC := !d.progressive || sc.ss > 0
		if needDC {
			t := d.dcTab[c.dc]
			if t == nil {
				return unsupported("a scan without its DC Huffman table (Motion JPEG's default tables)")
			}
			for _, v := range t.vals {
				if v > 15 { // libjpeg-turbo refuses these in a DC table
					return FormatError("bad DC Huffman table: symbol above 15")
				}
			}
		}
		if needAC && d.acTab[c.ac] == nil {
			return unsupported("a scan without its AC Huffman table (Motion JPEG's default tables)")
		}
		if c.quant == nil {
			q := d.quant[c.tq]
			if q == nil {
				return FormatError("a component's quantisation table is not defined")
			}
			c.quant = new([64]uint16)
			*c.quant = *q
		}
		if c.plane == nil {
			c.plane = make([]uint8, c.bw*8*c.bh*8)
			if d.progressive {
				c.coef = make([]int16, c.bw*c.bh*64)
			}
		}
		if d.progressive {
			for k := sc.ss; k <= sc.se; k++ {
				c.coefBits[k] = int8(sc.al) // libjpeg only warns when Ah does not follow on
			}
		}
	}
	if err := d.decodeScan(&sc); err != nil {
		return err
	}
	for _, c := range sc.comps {
		c.scanned = true
	}
	d.scans++
	return nil
}

// decodeScan decodes the MCUs of one scan, handling restart markers.
func (d *decoder) decodeScan(sc *scan) error {
	d.bits = bitReader{data: d.data, pos: d.pos}
	d.resetPredictors(sc)
	var mcus, perRow int
	single := len(sc.comps) == 1
	if single {
		// A non-interleaved scan covers the component's own blocks, not
		// the MCU-padded grid.
		c := sc.comps[0]
		perRow = ceilDiv(c.w, 8)
		mcus = perRow * ceilDiv(c.hgt, 8)
	} else {
		perRow = d.mcusX
		mcus = d.mcusX * d.mcusY
	}
	var pipe *idctPipe
	if !d.progressive { // a sequential block is final: its IDCT can start
		pipe = newIDCTPipe(sc, perRow)
		defer pipe.close()
	}
	// block returns where block (bx, by) of the scan's component ci goes:
	// into the pipeline's row buffer, or the progressive coefficients.
	block := func(ci, bx, by, vv int) *[64]int16 {
		if pipe != nil {
			return pipe.block(ci, bx, vv)
		}
		return sc.comps[ci].block(bx, by)
	}
	nextRST := 0
	for m := range mcus {
		if d.restart > 0 && m > 0 && m%d.restart == 0 {
			if err := d.readRestart(nextRST); err != nil {
				return err
			}
			nextRST = (nextRST + 1) & 7
			d.resetPredictors(sc)
		}
		mx, my := m%perRow, m/perRow
		if single {
			if err := d.decodeBlock(sc, sc.comps[0], block(0, mx, my, 0)); err != nil {
				return err
			}
		} else {
			for ci, c := range sc.comps {
				for v := range c.v {
					for h := range c.h {
						if err := d.decodeBlock(sc, c, block(ci, mx*c.h+h, my*c.v+v, v)); err != nil {
							return err
						}
					}
				}
			}
		}
		if pipe != nil && mx == perRow-1 {
			pipe.endRow(my)
		}
	}
	d.pos = d.bits.pos
	return nil
}

// idctPipe runs the IDCT of a sequential scan on another goroutine, one
// row of MCUs behind the entropy decoding (which is serial by nature):
// the scan's blocks go into a row buffer, a full row is handed over, and
// the worker writes its samples into the planes and returns the buffer
// zeroed. Three buffers: one being filled, one queued, one in the IDCT.
type idctPipe struct {
	sc      *scan
	perRow  int   // MCUs per row
	offsets []int // per scan component, where its blocks start in a buffer
	cur     []int16
	jobs    chan idctRow
	free    chan []int16
	done    chan struct{}
}

type idctRow struct {
	my   int
	coef []int16
}

func newIDCTPipe(sc *scan, perRow int) *idctPipe {
	p := &idctPipe{sc: sc, perRow: perRow, jobs: make(chan idctRow, 1), free: make(chan []int16, 3), done: make(chan struct{})}
	size := 0
	for ci := range sc.comps {
		p.offsets = append(p.offsets, size)
		w, v := p.grid(ci)
		size += w * v * 64
	}
	for range 3 {
		p.free <- make([]int16, size)
	}
	p.cur = <-p.free
	go p.work()
	return p
}

// grid is a row's blocks of the scan's component ci: across and down.
func (p *idctPipe) grid(ci int) (w, v int) {
	if len(p.sc.comps) == 1 {
		return p.perRow, 1
	}
	c := p.sc.comps[ci]
	return p.perRow * c.h, c.v
}

// block is block bx of the vv-th block row of component ci in the row
// being filled.
func (p *idctPipe) block(ci, bx, vv int) *[64]int16 {
	w, _ := p.grid(ci)
	i := p.offsets[ci] + (vv*w+bx)*64
	return (*[64]int16)(p.cur[i : i+64])
}

// endRow hands MCU row my to the worker and takes an empty buffer.
func (p *idctPipe) endRow(my int) {
	p.jobs <- idctRow{my, p.cur}
	p.cur = <-p.free
}

// close waits until every handed-over row is in the planes.
func (p *idctPipe) close() {
	close(p.jobs)
	<-p.done
}

func (p *idctPipe) work() {
	defer close(p.done)
	for r := range p.jobs {
		for ci, c := range p.sc.comps {
			w, v := p.grid(ci)
			for vv := range v {
				for bx := range w {
					i := p.offsets[ci] + (vv*w+bx)*64
					c.idct((*[64]int16)(r.coef[i:i+64]), bx, r.my*v+vv)
				}
			}
		}
		clear(r.coef)
		p.free <- r.coef
	}
}

func (d *decoder) resetPredictors(sc *scan) {
	for _, c := range sc.comps {
		c.lastDC = 0
	}
	d.eobrun = 0
}

// readRestart expects marker RSTn after the bits of an interval.
func (d *decoder) readRestart(n int) error {
	d.pos = d.bits.pos
	m, err := d.nextMarker()
	if err != nil {
		return err
	}
	if m != byte(0xD0+n) {
		return FormatError(fmt.Sprintf("expected restart marker RST%d, found 0x%02X", n, m))
	}
	d.bits.reset()
	d.bits.pos = d.pos
	return nil
}

// decodeBlock decodes one block of c into b: a sequential block whole (b
// starts zeroed), a progressive one by the scan's band and bit.
func (d *decoder) decodeBlock(sc *scan, c *component, b *[64]int16) error {
	if !d.progressive {
		return d.sequentialBlock(c, b)
	}
	switch {
	case sc.ss == 0 && sc.ah == 0:
		return d.dcFirst(c, b, sc.al)
	case sc.ss == 0:
		bit, err := d.bits.bits(1)
		if bit != 0 {
			b[0] |= 1 << sc.al
		}
		return err
	case sc.ah == 0:
		return d.acFirst(c, b, sc)
	default:
		return d.acRefine(c, b, sc)
	}
}

// addDC adds a decoded difference to the component's DC predictor;
// libjpeg-turbo refuses a sum that overflows an int.
func addDC(c *component, diff int32) error {
	s := int64(c.lastDC) + int64(diff)
	if s != int64(int32(s)) {
		return FormatError("DC coefficient overflow")
	}
	c.lastDC = int32(s)
	return nil
}

func (d *decoder) sequentialBlock(c *component, b *[64]int16) error {
	if err := d.dcFirst(c, b, 0); err != nil { // a sequential DC is a first DC scan's at full precision
		return err
	}
	ac := d.acTab[c.ac]
	for k := 1; k < 64; k++ {
		rs, err := d.bits.decode(ac)
		if err != nil {
			return err
		}
		r, s := int(rs>>4), int(rs&15)
		if s == 0 {
			if r != 15 {
				break // EOB
			}
			k += 15 // ZRL
			continue
		}
		k += r
		v, err := d.bits.receiveExtend(s)
		if err != nil {
			return err
		}
		b[zigzag[k]] = int16(v)
	}
	return nil
}

func (d *decoder) dcFirst(c *component, b *[64]int16, al int) error {
	s, err := d.bits.decode(d.dcTab[c.dc])
	if err != nil {
		return err
	}
	diff, err := d.bits.receiveExtend(int(s))
	if err != nil {
		return err
	}
	if err := addDC(c, diff); err != nil {
		return err
	}
	b[0] = int16(c.lastDC << al) // libjpeg's (JCOEF) cast: wraps
	return nil
}

func (d *decoder) acFirst(c *component, b *[64]int16, sc *scan) error {
	if d.eobrun > 0 {
		d.eobrun--
		return nil
	}
	ac := d.acTab[c.ac]
	for k := sc.ss; k <= sc.se; k++ {
		rs, err := d.bits.decode(ac)
		if err != nil {
			return err
		}
		r, s := int(rs>>4), int(rs&15)
		if s != 0 {
			k += r
			v, err := d.bits.receiveExtend(s)
			if err != nil {
				return err
			}
			b[zigzag[k]] = int16(v << sc.al)
			continue
		}
		if r == 15 {
			k += 15 // ZRL
			continue
		}
		// EOBr: this block and 2^r + (r bits) − 1 more end the band here.
		if err := d.readEOBRun(r); err != nil {
			return err
		}
		d.eobrun--
		break
	}
	return nil
}

func (d *decoder) readEOBRun(r int) error {
	d.eobrun = 1 << r
	if r > 0 {
		e, err := d.bits.bits(r)
		if err != nil {
			return err
		}
		d.eobrun += e
	}
	return nil
}

// acRefine adds one bit of precision to a band (G.1.2.3): a correction
// bit for each coefficient already nonzero, and new coefficients of ±1
// (scaled) placed after runs of still-zero ones — libjpeg's
// decode_mcu_AC_refine step for step.
func (d *decoder) acRefine(c *component, b *[64]int16, sc *scan) error {
	p1, m1 := int16(1)<<sc.al, int16(-1)<<sc.al
	refine := func(coef *int16) error {
		bit, err := d.bits.bits(1)
		if bit != 0 && *coef&p1 == 0 {
			if *coef >= 0 {
				*coef += p1
			} else {
				*coef += m1
			}
		}
		return err
	}
	ac := d.acTab[c.ac]
	k := sc.ss
	if d.eobrun == 0 {
		for ; k <= sc.se; k++ {
			rs, err := d.bits.decode(ac)
			if err != nil {
				return err
			}
			r, s := int(rs>>4), int16(rs&15)
			if s != 0 {
				if s != 1 { // libjpeg warns and goes on
					return FormatError("corrupt progressive refinement: a new coefficient of size above 1")
				}
				bit, err := d.bits.bits(1)
				if err != nil {
					return err
				}
				s = m1
				if bit != 0 {
					s = p1
				}
			} else if r != 15 {
				if err := d.readEOBRun(r); err != nil {
					return err
				}
				break // the rest of the band is the EOB run's
			}
			for ; k <= sc.se; k++ {
				coef := &b[zigzag[k]]
				if *coef != 0 {
					if err := refine(coef); err != nil {
						return err
					}
				} else {
					r--
					if r < 0 {
						break // reached the target zero coefficient
					}
				}
			}
			if s != 0 {
				b[zigzag[k]] = s
			}
		}
	}
	if d.eobrun > 0 {
		for ; k <= sc.se; k++ {
			if coef := &b[zigzag[k]]; *coef != 0 {
				if err := refine(coef); err != nil {
					return err
				}
			}
		}
		d.eobrun--
	}
	return nil
}
