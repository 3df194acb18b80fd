package bench

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/resnetgen/resnetgen/asm"
	"github.com/resnetgen/resnetgen/bench/ort"
	"github.com/resnetgen/resnetgen/bench/torchq"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/generated/all"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/npy"
	"github.com/resnetgen/resnetgen/resnet/quant"
	"github.com/resnetgen/resnetgen/resnet/weightfile"
)

// Our int8 beside its two peers, on torchvision's seeded exports
// (bench/ort): PyTorch's own int8 (bench/torchq, oneDNN), calibrated on the
// same images, and ONNX Runtime on a QDQ export of our quantized network —
// our scales, so that ORT's int8 kernels also check our numerics.

// Int8PeersOptions set up Int8Peers.
type Int8PeersOptions struct {
	// Calibration and Images are how many seeded images calibrate (ours
	// and PyTorch's) and how many the logits are compared on (0: 32 each).
	Calibration, Images int
	// ISA caps PyTorch's oneDNN (ONEDNN_MAX_CPU_ISA; "" for torchq.VNNI,
	// the ISA of our int8 kernels; "none" for no cap).
	ISA    string
	Python string    // interpreter with torch, torchvision and onnx ("" for torchq.Python())
	Dir    string    // where the images, logits and QDQ models are kept ("" for a temporary directory, removed by Close)
	Log    io.Writer // progress; nil for none
}

func (o Int8PeersOptions) torch() torchq.Options {
	isa := o.ISA
	switch isa {
	case "":
		isa = torchq.VNNI
	case "none":
		isa = ""
	}
	return torchq.Options{Python: o.Python, ISA: isa, Log: o.Log}
}

func (o Int8PeersOptions) logf(format string, a ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format, a...)
	}
}

// Int8Peers is one network prepared for the comparison: its weights (the
// ONNX export ORT and we load), our calibration, the QDQ models and the
// seeded images.
type Int8Peers struct {
	Info    all.Info
	Net     *resnet.Network
	Weights *resnet.Weights
	Folded  *engine.Folded
	ONNX    string // torchvision's export, BatchNorm folded
	// Cal is our calibration on the calibration images, as
	// engine.WithInt8Calibrating measures it; every int8 Model here runs
	// with engine.WithInt8(Cal).
	Cal *engine.Calibration
	// PreAdd is, by the name of each convolution that adds a residual, the
	// scale of its output before the sum (see PreAddScales).
	PreAdd map[string]float32
	// The QDQ models of our network (QDQForm), each run by ORT on the
	// comparison images.
	QDQ, QDQExact           *QDQModel
	Calib, Eval             string // .npy of the seeded calibration and comparison images
	CalibImages, EvalImages []float32
	ortDir, dir             string
	removeDir               bool
	opts                    Int8PeersOptions
	classes, height, width  int
	evalCount, calibCount   int
}

// QDQModel is one QDQ form of our network and what ORT made of it.
type QDQModel struct {
	Form   QDQForm
	Scales *torchq.QDQScales
	Path   string
	// Check is ORT on the comparison images, unoptimised (Reference) and
	// optimised (Fused), with the optimised graph's ops.
	Check *torchq.QDQCheck
}

func (f QDQForm) String() string {
	switch f {
	case QDQOurs:
		return "qdq"
	case QDQExact:
		return "qdq_exact"
	}
	return fmt.Sprintf("QDQForm(%d)", int(f))
}

// PrepareInt8Peers exports arch (torchvision's, seeded: bench/ort's
// export), loads it into our package, calibrates it on seeded images,
// measures the pre-add scales, writes both QDQ models and runs them in ORT
// on the comparison images, checking that every convolution we quantize
// became a QLinearConv.
func PrepareInt8Peers(arch string, o Int8PeersOptions) (*Int8Peers, error) {
	if o.Calibration == 0 {
		o.Calibration = 32
	}
	if o.Images == 0 {
		o.Images = 32
	}
	if o.Calibration < 1 || o.Images < 1 {
		return nil, fmt.Errorf("int8 peers: %d calibration and %d compared images", o.Calibration, o.Images)
	}
	info, err := Int8PeerInfo(arch)
	if err != nil {
		return nil, err
	}
	py := o.Python
	if py == "" {
		py = torchq.Python()
	}
	if _, err := exec.LookPath(py); err != nil {
		return nil, fmt.Errorf("the int8 peers need Python with torch, torchvision and onnx (Debian: apt-get install python3-torchvision python3-onnx; or RESNET_TORCH_PYTHON): %s: %v", py, err)
	}
	o.Python = py
	p := &Int8Peers{Info: info, opts: o, classes: info.Classes, height: info.InputHeight, width: info.InputWidth,
		evalCount: o.Images, calibCount: o.Calibration}
	if p.ortDir, err = ort.Dir(); err != nil {
		return nil, err
	}
	if err := ort.Setup(p.ortDir, logOr(o.Log)); err != nil {
		return nil, err
	}
	models, err := ort.Export(p.ortDir, o.Python, []string{arch}, logOr(o.Log))
	if err != nil {
		return nil, err
	}
	p.ONNX = models[arch]
	p.dir = o.Dir
	if p.dir == "" {
		if p.dir, err = os.MkdirTemp("", "int8peers"); err != nil {
			return nil, err
		}
		p.removeDir = true
	} else if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	if p.Net, err = info.Network(); err != nil {
		return nil, err
	}
	if p.Weights, err = weightfile.Load(p.ONNX, p.Net); err != nil {
		return nil, err
	}
	if p.Folded, err = engine.Fold(p.Net, p.Weights); err != nil {
		return nil, err
	}
	p.CalibImages = PeerImages(o.Calibration, 1, p.height, p.width)
	p.EvalImages = PeerImages(o.Images, 2, p.height, p.width)
	p.Calib = filepath.Join(p.dir, arch+"_calib.npy")
	p.Eval = filepath.Join(p.dir, arch+"_eval.npy")
	for _, f := range []struct {
		path string
		x    []float32
	}{{p.Calib, p.CalibImages}, {p.Eval, p.EvalImages}} {
		a := &npy.Array{Shape: []int{len(f.x) / info.InputLen, 3, p.height, p.width}, Data: f.x}
		if err := npy.WriteFile(f.path, a); err != nil {
			return nil, err
		}
	}
	o.logf("%s: calibrating ours on %d seeded images\n", arch, o.Calibration)
	if p.Cal, err = calibrate(p.Folded, info.Kernels, p.CalibImages); err != nil {
		return nil, err
	}
	if p.PreAdd, err = PreAddScales(p.Net, p.Weights, info.Kernels, p.CalibImages); err != nil {
		return nil, err
	}
	p.QDQ, p.QDQExact = &QDQModel{Form: QDQOurs}, &QDQModel{Form: QDQExact}
	shape := [4]int{o.Images, 3, p.height, p.width}
	for _, m := range []*QDQModel{p.QDQ, p.QDQExact} {
		if m.Scales, err = QDQScalesOf(p.Folded, p.Cal, p.PreAdd, m.Form); err != nil {
			return nil, err
		}
		m.Path = filepath.Join(p.dir, arch+"_"+m.Form.String()+".onnx")
		o.logf("%s: QDQ export %s, run in ONNX Runtime on %d images\n", arch, filepath.Base(m.Path), o.Images)
		if err := torchq.WriteQDQ(p.ONNX, m.Scales, m.Path, o.torch()); err != nil {
			return nil, err
		}
		if m.Check, err = torchq.CheckQDQ(p.ortDir, m.Path, p.EvalImages, shape, strings.TrimSuffix(m.Path, ".onnx")+"_ort_optimized.onnx", o.torch()); err != nil {
			return nil, err
		}
		if m.Form == QDQExact {
			continue // its sums stay float: ORT cannot fuse the convs before them
		}
		floats := 0
		for _, n := range m.Check.FloatConvs {
			floats += n
		}
		if m.Check.QLinearConv != len(m.Scales.Convs) || floats != len(m.Scales.Float) {
			return nil, fmt.Errorf("%s: ONNX Runtime fused %d of the %d quantized convolutions into QLinearConv and left %d in float (want %d): %v",
				m.Path, m.Check.QLinearConv, len(m.Scales.Convs), floats, len(m.Scales.Float), m.Check.Ops)
		}
	}
	ok = true
	return p, nil
}

// Int8PeerInfo is arch's package, or why the peers cannot run it: it must
// have int8 kernels and be one of torchvision's ImageNet networks.
func Int8PeerInfo(arch string) (all.Info, error) {
	info, err := all.Lookup(arch)
	if err != nil {
		return info, err
	}
	if !info.Kernels.HasInt8() {
		return info, fmt.Errorf("%s has no int8 kernels (the family's int8 packages: the CIFAR nets, resnet18, resnet50)", arch)
	}
	if info.InputHeight != 224 || info.InputWidth != 224 || info.Classes != 1000 {
		return info, fmt.Errorf("%s: the peers run torchvision's ImageNet networks (224×224, 1000 classes)", arch)
	}
	return info, nil
}

func logOr(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// Close removes the temporary directory, if PrepareInt8Peers made one.
func (p *Int8Peers) Close() {
	if p.removeDir {
		os.RemoveAll(p.dir)
	}
}

// PeerImages are n seeded image-like inputs (normalised CHW float32, one
// after the other): per channel a coarse Gaussian field (one value every 8
// pixels) bilinearly upsampled, plus fine noise at a tenth of it, scaled to
// unit variance — smooth like photographs, in the range of normalised
// pixels.
func PeerImages(n int, seed uint64, h, w int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x1a7))
	gh, gw := h/8+2, w/8+2
	out := make([]float32, 0, n*3*h*w)
	grid := make([]float64, gh*gw)
	for range n * 3 {
		for i := range grid {
			grid[i] = rng.NormFloat64()
		}
		for y := range h {
			fy := float64(y) / 8
			y0 := int(fy)
			ty := fy - float64(y0)
			for x := range w {
				fx := float64(x) / 8
				x0 := int(fx)
				tx := fx - float64(x0)
				v := (1-ty)*((1-tx)*grid[y0*gw+x0]+tx*grid[y0*gw+x0+1]) + ty*((1-tx)*grid[(y0+1)*gw+x0]+tx*grid[(y0+1)*gw+x0+1])
				// A bilinear mix of four unit Gaussians has variance
				// ((1−ty)²+ty²)·((1−tx)²+tx²), (2/3)² on average.
				out = append(out, float32((v+0.1*rng.NormFloat64())/math.Sqrt(4.0/9+0.01)))
			}
		}
	}
	return out
}

// calibrate measures our calibration as engine.WithInt8Calibrating does at
// New: the float32 network interpreted with the package's kernels, in
// batches of 8, the default scale method.
func calibrate(f *engine.Folded, ks *asm.KernelSet, images []float32) (*engine.Calibration, error) {
	m, err := engine.Interpret(f, ks, engine.WithBatch(8))
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return engine.Calibrate(m, f, images, f.Net.Input().Len(), 8, engine.CalibrateOptions{})
}

// PreAddScales measures, for every convolution of f's network that adds a
// residual, the scale of its output before the sum: the tensor ONNX
// Runtime quantizes before its QLinearAdd, which our int8 network never
// forms (the sum is fused into the convolution's epilogue). Measured, not
// derived: the network is interpreted with a twin of each such
// convolution, "L.preadd", reading L's input with L's weights, without the
// residual and ReLU, and calibrated on images by engine.Calibrate — the
// same images and method (MSE, a signed grid of ±127 steps, as for a
// projection shortcut's output) as every other scale. The twins' scales
// are returned under L's name; the other scales equal our calibration's.
func PreAddScales(net *resnet.Network, w *resnet.Weights, ks *asm.KernelSet, images []float32) (map[string]float32, error) {
	twinNet, names := preAddNetwork(net)
	if len(names) == 0 {
		return nil, fmt.Errorf("%s has no convolution that adds a residual", net.Arch.Name)
	}
	twin, err := engine.Fold(twinNet, w)
	if err != nil {
		return nil, err
	}
	c, err := calibrate(twin, ks, images)
	if err != nil {
		return nil, err
	}
	out := map[string]float32{}
	for _, n := range names {
		s, ok := c.Scales[n+".preadd"]
		if !ok {
			return nil, fmt.Errorf("pre-add calibration: no scale for %s.preadd", n)
		}
		out[n] = s
	}
	return out, nil
}

// preAddNetwork is net with a twin before every convolution L that adds a
// residual: "L.preadd", L without residual and ReLU, reading L's
// checkpoint tensors (weight and BatchNorm) and writing a value of its own
// that no layer reads. It returns the L names.
func preAddNetwork(src *resnet.Network) (*resnet.Network, []string) {
	net := &resnet.Network{Arch: src.Arch, Values: append([]resnet.Shape(nil), src.Values...), Output: src.Output}
	var names []string
	for _, l := range src.Layers {
		if l.Op == resnet.OpConv && l.Residual != resnet.NoValue {
			t := l
			t.Name, t.Residual, t.ReLU = l.Name+".preadd", resnet.NoValue, false
			t.Out = len(net.Values)
			net.Values = append(net.Values, l.OutShape)
			net.Layers = append(net.Layers, t)
			names = append(names, l.Name)
		}
		net.Layers = append(net.Layers, l)
	}
	return net, names
}

// QDQForm is which QDQ form of our int8 network QDQScalesOf writes.
type QDQForm int

const (
	// QDQOurs is our network as ORT can fuse it: the image quantized as
	// ours is (uint8 at our input scale and zero point), every convolution
	// int8 at our scales, the max pool on the stem's bytes; each
	// convolution that adds a residual quantized before the sum at its
	// pre-add scale (ORT has no conv with a residual input), the sum at
	// our scale: one rounding more per block than ours.
	QDQOurs QDQForm = iota
	// QDQExact is our network with our roundings only: as QDQOurs, but the
	// convolutions that add a residual keep their output float up to the
	// sum's Q (torchq.QDQConv.FloatOutput). ORT cannot fuse those; its
	// unoptimised run (Q, DQ, float Conv) is a fake-quantized twin of our
	// network, rounding where and as we do.
	QDQExact
)

// QDQScalesOf maps our int8 network to ONNX Runtime's QDQ form (see
// torchq.QDQScales and QDQForm), by the name of the layer writing each
// tensor: the image at our input scale and zero point; every convolution
// gets its int8 weight scales as quant.Weights computes them from the
// folded weights (ours exactly) and its output at our scale (unsigned
// after a ReLU, signed for a projection shortcut's output); a convolution
// that adds a residual gets its output before the sum at preAdd's scale
// (signed; unused by QDQExact), and the block's sum (after its ReLU: our
// convolution's output) our scale for that convolution. The max pool
// keeps the stem's scale, as ours pools its bytes.
func QDQScalesOf(f *engine.Folded, cal *engine.Calibration, preAdd map[string]float32, form QDQForm) (*torchq.QDQScales, error) {
	s := &torchq.QDQScales{Convs: map[string]torchq.QDQConv{}, Adds: map[string]torchq.QDQAdd{}}
	scale := func(name string) (float64, error) {
		v, ok := cal.Scales[name]
		if !ok {
			return 0, fmt.Errorf("the calibration has no scale for %s", name)
		}
		return float64(v), nil
	}
	in, err := scale("input")
	if err != nil {
		return nil, err
	}
	s.Input = &torchq.QParams{Scale: in, ZeroPoint: cal.InputZeroPoint}
	for _, l := range f.Net.Layers {
		if l.Op != resnet.OpConv {
			continue
		}
		w, err := f.Tensor(l.Name + ".weight")
		if err != nil {
			return nil, err
		}
		_, ws, err := quant.Weights(w.Data, l.OutShape.C)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.Name, err)
		}
		out, err := scale(l.Name)
		if err != nil {
			return nil, err
		}
		c := torchq.QDQConv{WeightScales: ws, Output: torchq.QParams{Scale: out, Signed: !l.ReLU}}
		if l.Residual != resnet.NoValue {
			if !l.ReLU {
				return nil, fmt.Errorf("%s: a residual sum without ReLU has no unsigned QDQ form here", l.Name)
			}
			block := l.Name[:strings.LastIndexByte(l.Name, '.')]
			s.Adds[block] = torchq.QDQAdd{Output: torchq.QParams{Scale: out}}
			if form == QDQExact {
				c.Output, c.FloatOutput = torchq.QParams{}, true
			} else {
				pre, ok := preAdd[l.Name]
				if !ok {
					return nil, fmt.Errorf("no pre-add scale for %s", l.Name)
				}
				c.Output = torchq.QParams{Scale: float64(pre), Signed: true}
			}
		}
		s.Convs[l.Name] = c
	}
	return s, nil
}

// LogitsPair compares two networks' logits on the same images: a against
// b (b the reference of the relative figures).
type LogitsPair struct {
	A string `json:"a"`
	B string `json:"b"`
	torchq.LogitsDiff
	// The seeded networks' logits are mostly an image-independent offset
	// per class (on ResNet-18 every image's top-1 is the same class, and
	// the logits vary across images by a few percent of their range), so
	// the raw figures above say little about the part that depends on the
	// image. The centred ones compare what is left after subtracting from
	// each network's logits its mean over the images, class by class:
	// their correlation, the RMS of the difference over b's centred RMS,
	// and how many images' centred argmax agree.
	CentredCorrelation float64 `json:"centred_correlation"`
	CentredRMSRel      float64 `json:"centred_rms_rel"`
	CentredAgreeTop1   int     `json:"centred_agree_top1"`
}

// ComparePair compares logits a with b (N×classes).
func ComparePair(aName string, a *npy.Array, bName string, b *npy.Array) (LogitsPair, error) {
	d, err := torchq.Compare(a, b)
	if err != nil {
		return LogitsPair{}, fmt.Errorf("%s vs %s: %w", aName, bName, err)
	}
	p := LogitsPair{A: aName, B: bName, LogitsDiff: d}
	ca, cb := centred(a), centred(b)
	c, err := torchq.Compare(ca, cb)
	if err != nil {
		return LogitsPair{}, err
	}
	p.CentredCorrelation, p.CentredRMSRel, p.CentredAgreeTop1 = c.Correlation, c.RMSRel, c.AgreeTop1
	return p, nil
}

// centred is a's logits less each class's mean over the images.
func centred(a *npy.Array) *npy.Array {
	n, k := a.Shape[0], a.Shape[1]
	mean := make([]float64, k)
	for i, v := range a.Data {
		mean[i%k] += float64(v) / float64(n)
	}
	out := &npy.Array{Shape: a.Shape, Data: make([]float32, len(a.Data))}
	for i, v := range a.Data {
		out.Data[i] = float32(float64(v) - mean[i%k])
	}
	return out
}

// Int8Numerics is one network's logits compared across engines, on the
// same seeded weights and images; the JSON keys are a contract.
type Int8Numerics struct {
	Arch        string `json:"arch"`
	Calibration int    `json:"calibration"` // seeded calibration images (ours and PyTorch's)
	Images      int    `json:"images"`      // seeded images compared
	// Top1Classes is how many distinct classes our float32 network's
	// top-1 takes on them (1: raw top-1 agreement says nothing).
	Top1Classes int            `json:"top1_classes"`
	Torch       string         `json:"torch"`   // torch.__version__
	TorchISA    string         `json:"isa_cap"` // ONEDNN_MAX_CPU_ISA of PyTorch's process
	QLinearConv int            `json:"qlinearconv"`
	ORTOps      map[string]int `json:"ort_ops"` // ORT's optimised graph of our QDQ network
	Pairs       []LogitsPair   `json:"pairs"`
}

// Pair returns the comparison of a with b.
func (n *Int8Numerics) Pair(a, b string) (LogitsPair, bool) {
	for _, p := range n.Pairs {
		if p.A == a && p.B == b {
			return p, true
		}
	}
	return LogitsPair{}, false
}

// The networks Numerics compares, by the names its pairs use.
const (
	OursInt8    = "ours int8"
	OursFP32    = "ours fp32"
	TorchInt8   = "PyTorch int8"
	TorchFP32   = "PyTorch fp32"
	ORTQDQ      = "ORT QDQ"       // our network, our scales, ORT's int8 kernels (QDQOurs)
	ORTQDQRef   = "ORT QDQ ref"   // the same graph unoptimised: Q, DQ, float Conv
	ORTExactRef = "ORT exact ref" // QDQExact unoptimised: our roundings in ORT's float ops
)

// Numerics runs our int8 and float32 networks on the comparison images and
// compares them with PyTorch's int8 (s: a Session quantized on p.Calib)
// and with ORT on our QDQ models (run by PrepareInt8Peers).
func (p *Int8Peers) Numerics(s *torchq.Session, workers int) (*Int8Numerics, error) {
	logits := map[string]*npy.Array{}
	for _, q := range []struct {
		name string
		opts []engine.Option
	}{{OursFP32, nil}, {OursInt8, []engine.Option{engine.WithInt8(p.Cal)}}} {
		m, err := p.Info.New(p.Weights, append(q.opts, engine.WithWorkers(workers), engine.WithBatch(1))...)
		if err != nil {
			return nil, err
		}
		a := &npy.Array{Shape: []int{p.evalCount, p.classes}, Data: make([]float32, p.evalCount*p.classes)}
		for i := range p.evalCount {
			if err := m.ForwardBatch(p.EvalImages[i*p.Info.InputLen:(i+1)*p.Info.InputLen], a.Data[i*p.classes:(i+1)*p.classes]); err != nil {
				m.Close()
				return nil, err
			}
		}
		m.Close()
		logits[q.name] = a
		if err := npy.WriteFile(filepath.Join(p.dir, p.Info.Arch+"_"+strings.ReplaceAll(q.name, " ", "_")+".npy"), a); err != nil {
			return nil, err
		}
	}
	var err error
	if logits[TorchInt8], logits[TorchFP32], err = s.Logits(p.Eval); err != nil {
		return nil, err
	}
	shape := []int{p.evalCount, p.classes}
	logits[ORTQDQ] = &npy.Array{Shape: shape, Data: p.QDQ.Check.Fused}
	logits[ORTQDQRef] = &npy.Array{Shape: shape, Data: p.QDQ.Check.Reference}
	logits[ORTExactRef] = &npy.Array{Shape: shape, Data: p.QDQExact.Check.Reference}
	for name, a := range logits {
		if len(a.Data) != p.evalCount*p.classes {
			return nil, fmt.Errorf("%s: %d logits for %d images of %d classes", name, len(a.Data), p.evalCount, p.classes)
		}
	}
	r := &Int8Numerics{Arch: p.Info.Arch, Calibration: p.calibCount, Images: p.evalCount, Torch: s.Ready().Torch,
		TorchISA: p.opts.torch().ISA, QLinearConv: p.QDQ.Check.QLinearConv, ORTOps: p.QDQ.Check.Ops}
	classes := map[int]bool{}
	for _, k := range torchq.Argmax(logits[OursFP32]) {
		classes[k] = true
	}
	r.Top1Classes = len(classes)
	for _, pr := range [][2]string{
		{OursFP32, TorchFP32},   // the same float32 network: a sanity check
		{OursInt8, OursFP32},    // what our quantization costs
		{TorchInt8, TorchFP32},  // what PyTorch's costs
		{OursInt8, TorchInt8},   // the two quantizations
		{ORTExactRef, OursInt8}, // our roundings, ORT's Q, DQ and float Conv: a check of our numerics
		{ORTQDQ, OursInt8},      // same scales, ORT's int8 kernels, one rounding more per block
		{ORTQDQ, ORTQDQRef},     // ORT's int8 kernels against its own graph
		{ORTQDQ, OursFP32},      // ORT's int8 of our network against float32
	} {
		c, err := ComparePair(pr[0], logits[pr[0]], pr[1], logits[pr[1]])
		if err != nil {
			return nil, err
		}
		r.Pairs = append(r.Pairs, c)
	}
	return r, nil
}

// Int8Latency is our int8 network's batch-1 latency beside its peers',
// alternated in one run; the JSON keys are a contract.
type Int8Latency struct {
	Arch    string `json:"arch"`
	Threads int    `json:"threads"`
	// Each figure is the median over rounds of each round's median.
	OursMs  float64 `json:"ours_int8_ms"`
	TorchMs float64 `json:"torch_int8_ms"` // PyTorch's int8 (oneDNN)
	ORTMs   float64 `json:"ort_qdq_ms"`    // ONNX Runtime on QDQOurs: our network, its int8 kernels
	// OverTorch and OverORT are the medians over rounds of ours ÷ theirs
	// (< 1: we are faster).
	OverTorch float64 `json:"ours_over_torch"`
	OverORT   float64 `json:"ours_over_ort"`
	Rounds    int     `json:"rounds"`
	Runs      int     `json:"runs"` // per round and side
	// Torch is what PyTorch's process reported: its ISA and the oneDNN
	// implementations of its int8 convolutions.
	Torch torchq.Ready `json:"torch"`
	// Busy counts the times a side started while another process was
	// still busy after a second of waiting (timed regardless).
	Busy int `json:"busy"`
}

// side is one of the networks Latency alternates: a process and a way to
// time runs inferences in it.
type side struct {
	name string
	pid  int
	run  func(n int) ([]float64, error)
	ms   []float64 // each round's median
}

// Latency times our int8 Model (threads workers, batch 1, our scales),
// PyTorch's int8 (s, a Session on threads threads) and ORT's int8 on our
// network (QDQOurs) in rounds: each side runs runs inferences once the other processes
// are idle (ort.WaitIdle), on the deterministic input bench/ort and
// torchq feed.
func (p *Int8Peers) Latency(s *torchq.Session, threads, rounds, runs int) (*Int8Latency, error) {
	if rounds < 1 || runs < 1 {
		return nil, fmt.Errorf("int8 latency: %d rounds of %d runs", rounds, runs)
	}
	if got := s.Ready().Threads; got != threads {
		return nil, fmt.Errorf("PyTorch's session runs on %d threads, not %d", got, threads)
	}
	m, err := p.Info.New(p.Weights, engine.WithWorkers(threads), engine.WithBatch(1), engine.WithInt8(p.Cal))
	if err != nil {
		return nil, err
	}
	defer m.Close()
	in := make([]float32, p.Info.InputLen)
	for i := range in {
		in[i] = float32((i*7919)%401)/100 - 2
	}
	out := make([]float32, p.classes)
	ours := func(n int) ([]float64, error) {
		t := make([]float64, 0, n)
		for range n {
			start := time.Now()
			if err := m.ForwardBatch(in, out); err != nil {
				return nil, err
			}
			t = append(t, time.Since(start).Seconds())
		}
		return t, nil
	}
	if _, err := ours(3); err != nil { // warm
		return nil, err
	}
	sides := []*side{
		{name: "ours int8", pid: os.Getpid(), run: ours},
		{name: "PyTorch int8", pid: s.Pid(), run: func(n int) ([]float64, error) { return s.Run(torchq.Int8, n) }},
	}
	o, err := ort.Start(p.ortDir, p.QDQ.Path, threads, 1, p.height, p.width)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	sides = append(sides, &side{name: "ORT " + p.QDQ.Form.String(), pid: o.Pid(), run: o.Run})
	r := &Int8Latency{Arch: p.Info.Arch, Threads: threads, Rounds: rounds, Runs: runs, Torch: s.Ready()}
	var over [2][]float64 // ours ÷ each peer, per round
	for round := range rounds {
		for _, sd := range sides {
			// The others idle first: ORT's and OpenMP's workers spin on
			// after a run (our parked workers do not; waited for too).
			for _, other := range sides {
				if other != sd {
					if err := ort.WaitIdle(other.pid, time.Second); err != nil {
						r.Busy++
						p.opts.logf("warning: %s's round may share its cores: %v\n", sd.name, err)
					}
				}
			}
			t, err := sd.run(runs)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sd.name, err)
			}
			sd.ms = append(sd.ms, median(t)*1e3)
		}
		line := fmt.Sprintf("%s %d thread(s) round %d:", p.Info.Arch, threads, round+1)
		for i, sd := range sides {
			line += fmt.Sprintf(" %s %.2f ms", sd.name, sd.ms[round])
			if i > 0 {
				over[i-1] = append(over[i-1], sides[0].ms[round]/sd.ms[round])
				line += fmt.Sprintf(" (ours ÷ it %.3f)", sides[0].ms[round]/sd.ms[round])
			}
			line += ";"
		}
		p.opts.logf("%s\n", strings.TrimSuffix(line, ";"))
	}
	r.OursMs, r.TorchMs, r.ORTMs = median(sides[0].ms), median(sides[1].ms), median(sides[2].ms)
	r.OverTorch, r.OverORT = median(over[0]), median(over[1])
	return r, nil
}

// StartTorch starts PyTorch's int8 of p's network on threads threads,
// quantized on p's calibration images, with the ISA cap of the options.
func (p *Int8Peers) StartTorch(threads int) (*torchq.Session, error) {
	return torchq.Start(torchq.Net{Arch: p.Info.Arch}, p.Calib, threads, p.opts.torch())
}

// Int8PeersResult is a whole comparison; the JSON keys are a contract.
type Int8PeersResult struct {
	CPU string `json:"cpu"`
	// LoadBefore and LoadAfter are /proc/loadavg's 1-minute load when the
	// run started and ended: latencies taken beside other work are
	// provisional.
	LoadBefore float64         `json:"load_before"`
	LoadAfter  float64         `json:"load_after"`
	Numerics   []*Int8Numerics `json:"numerics"`
	Latency    []*Int8Latency  `json:"latency,omitempty"`
}

// RunInt8Peers prepares each network (PrepareInt8Peers), compares the
// logits with PyTorch's session on the first thread count, and, for
// rounds > 0, times the three int8 networks on each thread count.
func RunInt8Peers(archs []string, threads []int, rounds, runs int, o Int8PeersOptions) (*Int8PeersResult, error) {
	if len(archs) == 0 || len(threads) == 0 {
		return nil, fmt.Errorf("int8 peers: no network or no thread count")
	}
	res := &Int8PeersResult{CPU: engine.CPUModel(), LoadBefore: loadAvg()}
	for _, arch := range archs {
		p, err := PrepareInt8Peers(arch, o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", arch, err)
		}
		err = func() error {
			defer p.Close()
			for i, t := range threads {
				s, err := p.StartTorch(t)
				if err != nil {
					return err
				}
				if i == 0 {
					n, err := p.Numerics(s, t)
					if err != nil {
						s.Close()
						return err
					}
					res.Numerics = append(res.Numerics, n)
				}
				if rounds > 0 {
					l, err := p.Latency(s, t, rounds, runs)
					if err != nil {
						s.Close()
						return err
					}
					res.Latency = append(res.Latency, l)
				}
				if err := s.Close(); err != nil {
					return fmt.Errorf("PyTorch's process: %w", err)
				}
				if rounds == 0 {
					break
				}
			}
			return nil
		}()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", arch, err)
		}
	}
	res.LoadAfter = loadAvg()
	return res, nil
}

// loadAvg is the 1-minute load average (0 where /proc/loadavg is absent).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}
