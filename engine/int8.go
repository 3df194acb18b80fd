package engine

import (
	"fmt"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/resnet/quant"
	"github.com/resnetgen/resnetgen/shape"
)

// An int8 Model runs the layers of its float32 twin, built by the same
// Builder calls: the images quantized into 4-byte pixels with zero point
// 128 (QInput), every convolution on uint8 activations and int8 weights
// (QConv; the stem's 3 channels as 4, its bias taking off the zero point),
// the max pool and the option-A shortcuts on bytes, and the average pool
// dequantizing into the float32 classifier. The
// Builder keeps, beside each float32 buffer slot of the generated plan, a
// byte twin of the same geometry (same zero halo), and tracks which value
// each slot holds — float32 or quantized, with its scale.

// QConv is an int8 convolution: Out = requantize(conv(In, W) + Bias +
// Res), per image (asm.QConvKernel, asm.QEpilogue).
type QConv struct {
	K        *asm.QConvKernel
	In, Out  []asm.QBuffer // per image
	Res      []asm.QBuffer // per image; nil: no residual
	Packed   []byte
	Epilogue asm.QEpilogue
	Batch    *Batch
}

func (c *QConv) res(i int) *asm.QBuffer {
	if c.Res == nil {
		return nil
	}
	return &c.Res[i]
}

// Check reports whether the kernel accepts every image's buffers.
func (c *QConv) Check() error {
	if len(c.In) == 0 || len(c.Out) != len(c.In) || c.Res != nil && len(c.Res) != len(c.In) {
		return fmt.Errorf("%s: %d input, %d output and %d residual buffers", c.K.Name, len(c.In), len(c.Out), len(c.Res))
	}
	for i := range c.In {
		if err := c.K.Check(c.In[i], c.Out[i], c.res(i), c.Packed, &c.Epilogue, false); err != nil {
			return err
		}
	}
	return nil
}

// RunPart computes part of parts of the layer over Batch.N images: one
// image split as asm.QConvKernel.RunPart splits it; a batch by whole images
// where they divide evenly among the parts, else every image split.
func (c *QConv) RunPart(part, parts int) {
	first, n := c.Batch.First, c.Batch.N
	if n > 1 && n%parts == 0 {
		i0, i1 := split(n, part, parts)
		for i := first + i0; i < first+i1; i++ {
			c.K.RunPart(c.In[i], c.Out[i], c.res(i), c.Packed, &c.Epilogue, 0, 1)
		}
		return
	}
	for i := first; i < first+n; i++ {
		c.K.RunPart(c.In[i], c.Out[i], c.res(i), c.Packed, &c.Epilogue, part, parts)
	}
}

// QShortcut is the option-A shortcut (asm.SubsamplePad) on bytes: the
// same scale in and out.
type QShortcut struct {
	In, Out []asm.QBuffer
	Stride  int
	Batch   *Batch
}

// Check reports whether every image's buffers describe the shortcut.
func (s *QShortcut) Check() error {
	if len(s.In) == 0 || len(s.Out) != len(s.In) {
		return fmt.Errorf("shortcut: %d input and %d output buffers", len(s.In), len(s.Out))
	}
	for i := range s.In {
		in, out := s.In[i], s.Out[i]
		if out.H != (in.H-1)/s.Stride+1 || out.W != (in.W-1)/s.Stride+1 || out.C < in.C || (out.C-in.C)%2 != 0 {
			return fmt.Errorf("shortcut: %v to %v at stride %d", in, out, s.Stride)
		}
	}
	return nil
}

// RunPart writes part of parts of every image's output rows: each output
// pixel takes the input pixel at stride·(y, x), its channels centred in the
// wider output, zeros around (PyTorch's option A).
func (s *QShortcut) RunPart(part, parts int) {
	i0, i1 := s.Batch.images()
	for i := i0; i < i1; i++ {
		in, out := s.In[i], s.Out[i]
		pad := (out.C - in.C) / 2
		y0, y1 := split(out.H, part, parts)
		for y := y0; y < y1; y++ {
			for x := 0; x < out.W; x++ {
				o := out.Data[out.Index(y, x, 0):][:out.C]
				clear(o[:pad])
				copy(o[pad:pad+in.C], in.Data[in.Index(y*s.Stride, x*s.Stride, 0):][:in.C])
				clear(o[pad+in.C:])
			}
		}
	}
}

// QInput quantizes the float32 CHW images into the int8 stem's input
// (asm.QInputKernel: 4-byte pixels), with 1/scale Inv and zero point ZP.
type QInput struct {
	K   *asm.QInputKernel
	Out []asm.QBuffer
	Inv float32
	ZP  uint8
}

// QMaxPool is the 3x3/2 max pool on an int8 Model's bytes.
type QMaxPool struct {
	K       *asm.QMaxPoolKernel
	In, Out []asm.QBuffer
	Batch   *Batch
}

// Check reports whether the kernel accepts every image's buffers.
func (m *QMaxPool) Check() error {
	if len(m.In) == 0 || len(m.Out) != len(m.In) {
		return fmt.Errorf("max pool: %d input and %d output buffers", len(m.In), len(m.Out))
	}
	for i := range m.In {
		if err := m.K.Check(m.In[i], m.Out[i]); err != nil {
			return err
		}
	}
	return nil
}

// RunPart pools part of parts of every image's output rows.
func (m *QMaxPool) RunPart(part, parts int) {
	i0, i1 := m.Batch.images()
	for i := i0; i < i1; i++ {
		m.K.RunPart(m.In[i], m.Out[i], part, parts)
	}
}

// q8 is what the Builder knows of an int8 build.
type q8 struct {
	tier asm.Tier // the int8 kernels' tier
	cal  *Calibration
	twin map[*float32][]asm.QBuffer // a float32 slot's byte twin
	held map[*float32]held          // the value a slot holds now
}

// held is the value a buffer slot holds: quantized (in its twin) with a
// scale and sign, or float32, written by the layer producer.
type held struct {
	quantized bool
	scale     float32
	signed    bool
	zp        int // the zero point: 0, but the stem's input's (QInput)
	producer  string
}

// tiersFor splits a Config's tier into the float32 tier of the layers that
// stay float32 and the tier of the int8 kernels.
func tiersFor(t asm.Tier) (fp32, int8 asm.Tier) {
	switch t {
	case asm.VNNI:
		return asm.AVX512, asm.VNNI
	case asm.AVX512:
		if asm.Has(asm.VNNI) {
			return asm.AVX512, asm.VNNI
		}
		return asm.AVX512, asm.AVX2
	case asm.AVX2:
		return asm.AVX2, asm.AVX2
	}
	return t, asm.Purego
}

// startInt8 prepares an int8 build: the calibration (measured now on the
// Config's images if it has no scales) checked against the weights, and
// the tiers.
func (b *Builder) startInt8() {
	if b.cfg.Calibration == nil && len(b.cfg.CalibrationImages) == 0 && b.f.Calibration != nil {
		b.cfg.Calibration = b.f.Calibration // the int8 weights' own
	}
	if !b.ks.HasInt8() {
		b.fail(fmt.Errorf("int8: this package has no int8 kernels (generate it with resnetgen -precision int8)"))
		return
	}
	cal := b.cfg.Calibration
	if cal == nil {
		if len(b.cfg.CalibrationImages) == 0 {
			b.fail(fmt.Errorf("int8 needs a calibration: engine.WithInt8(calibration) or engine.WithInt8Calibrating(images)"))
			return
		}
		opts := []Option{WithTier(b.tier), WithWorkers(b.cfg.Workers), WithBatch(8), WithConv(b.cfg.Conv)}
		m, err := Interpret(b.f, b.ks, opts...)
		if b.fail(err) {
			return
		}
		s := b.f.Net.Values[0]
		cal, err = Calibrate(m, b.f, b.cfg.CalibrationImages, s.Len(), 8, CalibrateOptions{Progress: b.cfg.Progress})
		m.Close()
		if b.fail(err) {
			return
		}
	}
	if got := b.f.digest(); cal.WeightsSHA256 != hexDigest(got) {
		b.fail(fmt.Errorf("int8: the calibration was measured on other weights (SHA-256 %.12s…; these weights are %.12s…): calibrate on these weights", cal.WeightsSHA256, hexDigest(got)))
		return
	}
	fp, i8 := tiersFor(b.cfg.Tier)
	b.tier = fp
	b.q = &q8{tier: i8, cal: cal, twin: map[*float32][]asm.QBuffer{}, held: map[*float32]held{}}
}

// slotKey identifies a buffer slot by its first image's data.
func slotKey(bufs []asm.Buffer) *float32 { return &bufs[0].Data[0] }

// twinOf is the byte twin of a float32 slot, made on first use.
func (b *Builder) twinOf(bufs []asm.Buffer) []asm.QBuffer {
	k := slotKey(bufs)
	if t, ok := b.q.twin[k]; ok {
		return t
	}
	t := make([]asm.QBuffer, len(bufs))
	for i, f := range bufs {
		t[i] = asm.NewQBuffer(f.H, f.W, f.C, f.Halo)
	}
	b.q.twin[k] = t
	return t
}

// scale is the calibration's scale of the tensor layer writes.
func (b *Builder) scale(layer string) (float32, bool) {
	s, ok := b.q.cal.Scales[layer]
	if !ok {
		b.fail(fmt.Errorf("int8: the calibration has no scale for the output of %s", layer))
	}
	return s, ok
}

// quantized returns the byte twin of a slot holding the quantized value an
// int8 layer reads (every layer of an int8 build writes one: the input
// quantizer, the int8 convolutions, pools and shortcuts).
func (b *Builder) quantized(bufs []asm.Buffer) ([]asm.QBuffer, held, bool) {
	h, ok := b.q.held[slotKey(bufs)]
	if !ok || !h.quantized {
		b.fail(fmt.Errorf("int8: a layer reads a buffer no int8 layer wrote (written by %q)", h.producer))
		return nil, h, false
	}
	return b.twinOf(bufs), h, true
}

// int8Conv builds the int8 convolution name of shape s (see Conv).
func (b *Builder) int8Conv(dst *Conv, name string, s shape.Conv, bias []float32, ins, outs, res []asm.Buffer, relu bool) {
	in, h, ok := b.quantized(ins)
	if !ok {
		return
	}
	var r []asm.QBuffer
	var rh held
	if res != nil {
		if r, rh, ok = b.quantized(res); !ok {
			return
		}
	}
	outScale, ok := b.scale(name)
	if !ok {
		return
	}
	ks := asm.Int8Shape(s)
	if ks != s && h.producer != "input" {
		b.fail(fmt.Errorf("int8: %s has %d input channels and does not read the quantized image", name, s.InC))
		return
	}
	k, err := b.ks.QConvKernel(ks, b.q.tier)
	if b.fail(err) {
		return
	}
	var q []int8
	var ws []float32
	if qw, ok := b.f.qweights(name); ok {
		q, ws = qw.Q, qw.Scale
	} else {
		w, _, err := b.tensor(name+".weight", -1)
		if b.fail(err) {
			return
		}
		if q, ws, err = quant.Weights(w, s.OutC); b.fail(err) {
			return
		}
	}
	b.release(name)
	q = padInputChannels(q, s, ks.InC)
	packed, err := k.PackWeights(q)
	if b.fail(err) {
		return
	}
	e := asm.QEpilogue{Scale: make([]float32, s.OutC), Bias: bias, OutInv: 1 / outScale, ReLU: relu, OutSigned: !relu}
	for oc := range e.Scale {
		e.Scale[oc] = h.scale * ws[oc]
	}
	if h.zp != 0 {
		// The input is u = q + zp: Σ w·u = Σ w·q + zp·Σ w, every tap
		// read (the halo holds zp, a zero), so the bias takes the
		// constant off: real = Scale·(acc − zp·Σ w) + bias.
		per := len(q) / s.OutC
		e.Bias = make([]float32, s.OutC)
		for oc := range e.Bias {
			sum := 0
			for _, v := range q[oc*per : (oc+1)*per] {
				sum += int(v)
			}
			e.Bias[oc] = bias[oc] - e.Scale[oc]*float32(h.zp*sum)
		}
	}
	if r != nil {
		e.ResScale, e.ResSigned = rh.scale, rh.signed
	}
	qc := &QConv{K: k, In: in, Out: b.twinOf(outs), Res: r, Packed: packed, Epilogue: e, Batch: b.batch}
	*dst = Conv{Name: name, Q: qc, Batch: b.batch}
	b.add(name, "int8 conv", k.Name, "int8", s.MACs(), dst)
	b.q.held[slotKey(outs)] = held{quantized: true, scale: outScale, signed: !relu, producer: name}
}

// wrote records that a float32 layer wrote outs.
func (b *Builder) wrote(layer string, outs []asm.Buffer) {
	if b.q != nil {
		b.q.held[slotKey(outs)] = held{producer: layer}
	}
}

// int8Shortcut builds the option-A shortcut on bytes if its input slot
// holds a quantized value; ok is false if it holds a float32 one.
func (b *Builder) int8Shortcut(dst *Shortcut, name string, stride int, ins, outs []asm.Buffer) (done bool) {
	h, ok := b.q.held[slotKey(ins)]
	if !ok || !h.quantized {
		return false
	}
	*dst = Shortcut{Batch: b.batch, Q: &QShortcut{In: b.twinOf(ins), Out: b.twinOf(outs), Stride: stride, Batch: b.batch}}
	b.add(name, "shortcut", "subsample-pad-int8", "", 0, dst)
	h.producer = name
	b.q.held[slotKey(outs)] = h
	return true
}

// padInputChannels widens OIHW weights of s's InC input channels to inC,
// the added channels' weights zero.
func padInputChannels(q []int8, s shape.Conv, inC int) []int8 {
	if inC == s.InC {
		return q
	}
	k2 := s.K * s.K
	out := make([]int8, s.OutC*inC*k2)
	for o := 0; o < s.OutC; o++ {
		copy(out[o*inC*k2:], q[o*s.InC*k2:(o+1)*s.InC*k2])
	}
	return out
}

// int8Input sets the input layer of an int8 build: the images quantized
// straight into a 4-channel byte twin of the input slot (with the
// calibration's zero point, its halo the zero point), for the stem's int8
// kernel.
func (b *Builder) int8Input(dst *Input, bufs []asm.Buffer) {
	s, ok := b.scale("input")
	if !ok {
		return
	}
	zp := b.q.cal.InputZeroPoint
	k, err := b.ks.QInputKernel(b.q.tier)
	if b.fail(err) {
		return
	}
	t := make([]asm.QBuffer, len(bufs))
	for i, f := range bufs {
		t[i] = asm.NewQBuffer(f.H, f.W, 4, f.Halo)
		for j := range t[i].Data {
			t[i].Data[j] = uint8(zp)
		}
	}
	b.q.twin[slotKey(bufs)] = t
	b.q.held[slotKey(bufs)] = held{quantized: true, scale: s, signed: true, zp: zp, producer: "input"}
	dst.Q = &QInput{K: k, Out: t, Inv: 1 / s, ZP: uint8(zp)}
}

// int8MaxPool builds the max pool on bytes if its input slot holds a
// quantized value (zero point 0); done is false otherwise.
func (b *Builder) int8MaxPool(dst *MaxPool, name string, in, out []asm.Buffer) (done bool) {
	h, ok := b.q.held[slotKey(in)]
	if !ok || !h.quantized || h.zp != 0 || h.signed {
		return false
	}
	k, err := b.ks.QMaxPoolKernel(in[0].C, b.q.tier)
	if b.fail(err) {
		return true
	}
	*dst = MaxPool{Batch: b.batch, Q: &QMaxPool{K: k, In: b.twinOf(in), Out: b.twinOf(out), Batch: b.batch}}
	b.add(name, "maxpool", k.Name, "", 0, dst)
	h.producer = name
	b.q.held[slotKey(out)] = h
	return true
}

// hexDigest is the hexadecimal form of a Folded.digest.
func hexDigest(d string) string { return fmt.Sprintf("%x", d) }
