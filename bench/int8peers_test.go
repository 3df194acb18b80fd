package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resnetgen/resnetgen/bench/ort"
	"github.com/resnetgen/resnetgen/bench/torchq"
	"github.com/resnetgen/resnetgen/engine"
	"github.com/resnetgen/resnetgen/resnet"
	"github.com/resnetgen/resnetgen/resnet/quant"
)

// small is ResNet-18 at 32×32 with seeded weights, folded, one seeded
// image, our calibration on it and that of the pre-add twin network:
// small enough for the portable kernels (and qemu), made once.
var small struct {
	sync.Once
	f         *engine.Folded
	names     []string
	cal, twin *engine.Calibration
	err       error
}

func smallNet(t *testing.T) (f *engine.Folded, names []string, cal, twin *engine.Calibration) {
	t.Helper()
	small.Do(func() {
		a, err := resnet.Lookup("resnet18")
		if small.err = err; err != nil {
			return
		}
		a.InputH, a.InputW = 32, 32
		net, err := resnet.Build(a)
		if small.err = err; err != nil {
			return
		}
		w := resnet.RandomWeights(net, 5)
		if small.f, small.err = engine.Fold(net, w); small.err != nil {
			return
		}
		x := PeerImages(1, 9, 32, 32)
		if small.cal, small.err = calibrate(small.f, nil, x); small.err != nil {
			return
		}
		twNet, names := preAddNetwork(net)
		small.names = names
		tw, err := engine.Fold(twNet, w)
		if small.err = err; err != nil {
			return
		}
		small.twin, small.err = calibrate(tw, nil, x)
	})
	require.NoError(t, small.err)
	return small.f, small.names, small.cal, small.twin
}

// The pre-add twins are measured on the network as it is: every other
// scale of the twinned network equals our calibration's, and each twin's
// scale is its own (not its convolution's post-sum one).
func TestPreAddScales(t *testing.T) {
	_, names, cal, twin := smallNet(t)
	require.Len(t, names, 8, "ResNet-18's eight blocks end in a conv that adds the residual")
	assert.Equal(t, "layer1.0.conv2", names[0])
	for name, s := range cal.Scales {
		assert.InEpsilon(t, s, twin.Scales[name], 1e-6, name)
	}
	for _, n := range names {
		assert.Contains(t, twin.Scales, n+".preadd")
		assert.NotEqual(t, cal.Scales[n], twin.Scales[n+".preadd"], n)
	}
	assert.Len(t, twin.Scales, len(cal.Scales)+8)
}

// preAdd is the twins' scales by their convolution's name, as
// PreAddScales returns them.
func preAdd(names []string, twin *engine.Calibration) map[string]float32 {
	m := map[string]float32{}
	for _, n := range names {
		m[n] = twin.Scales[n+".preadd"]
	}
	return m
}

// The QDQ mapping: the image at our input scale and zero point, our
// scales where we have them, quant.Weights' weight scales on every
// convolution (the stem's too), the pre-add scales before each sum, the
// max pool at the stem's scale.
func TestQDQScalesOf(t *testing.T) {
	f, names, cal, twin := smallNet(t)
	pre := preAdd(names, twin)
	s, err := QDQScalesOf(f, cal, pre, QDQOurs)
	require.NoError(t, err)
	require.NotNil(t, s.Input)
	assert.Equal(t, torchq.QParams{Scale: float64(cal.Scales["input"]), ZeroPoint: cal.InputZeroPoint}, *s.Input)
	assert.Greater(t, s.Input.ZeroPoint, 0, "a normalised image is signed: its zero point is inside the byte")
	assert.Empty(t, s.Float)
	assert.Empty(t, s.Pools, "the max pool keeps the stem's scale")
	assert.Len(t, s.Convs, 20)
	assert.Len(t, s.Adds, 8)
	assert.Equal(t, torchq.QParams{Scale: float64(cal.Scales["conv1"])}, s.Convs["conv1"].Output)
	c := s.Convs["layer1.0.conv1"]
	assert.Equal(t, torchq.QParams{Scale: float64(cal.Scales["layer1.0.conv1"])}, c.Output)
	w, err := f.Tensor("layer1.0.conv1.weight")
	require.NoError(t, err)
	_, ws, err := quant.Weights(w.Data, 64)
	require.NoError(t, err)
	assert.Equal(t, ws, c.WeightScales)
	assert.Equal(t, torchq.QParams{Scale: float64(pre["layer2.0.conv2"]), Signed: true}, s.Convs["layer2.0.conv2"].Output)
	assert.Equal(t, torchq.QParams{Scale: float64(cal.Scales["layer2.0.conv2"])}, s.Adds["layer2.0"].Output)
	assert.Equal(t, torchq.QParams{Scale: float64(cal.Scales["layer2.0.downsample.0"]), Signed: true}, s.Convs["layer2.0.downsample.0"].Output)

	exact, err := QDQScalesOf(f, cal, nil, QDQExact)
	require.NoError(t, err)
	assert.True(t, exact.Convs["layer2.0.conv2"].FloatOutput)
	assert.False(t, exact.Convs["layer2.0.conv1"].FloatOutput)
	assert.Equal(t, s.Adds, exact.Adds)

	delete(pre, "layer3.1.conv2")
	_, err = QDQScalesOf(f, cal, pre, QDQOurs)
	assert.ErrorContains(t, err, "no pre-add scale for layer3.1.conv2")
}

// peersReady skips a test unless onnxruntime-node is installed (bench -ort
// installs it) and /usr/bin/python3 (or RESNET_TORCH_PYTHON) has torch,
// torchvision and onnx; RESNET_REQUIRE_ORT makes that a failure.
func peersReady(t *testing.T) {
	t.Helper()
	dir, err := ort.Dir()
	require.NoError(t, err)
	var missing []string
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "onnxruntime-node", "package.json")); err != nil {
		missing = append(missing, "onnxruntime-node in "+dir)
	}
	if out, err := exec.Command(torchq.Python(), "-c", "import torch, torchvision, onnx").CombinedOutput(); err != nil {
		missing = append(missing, torchq.Python()+" with torch, torchvision and onnx ("+strings.TrimSpace(string(out))+")")
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("RESNET_REQUIRE_ORT") != "" {
		t.Fatalf("RESNET_REQUIRE_ORT is set and these are missing: %s", strings.Join(missing, "; "))
	}
	t.Skipf("missing: %s", strings.Join(missing, "; "))
}

// ResNet-18 with torchvision's seeded weights on a few seeded images: our
// int8 against our float32, PyTorch's int8 and ORT running our scales.
func TestInt8PeersResNet18(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: torch and ONNX Runtime take a minute")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("an amd64 (VNNI) comparison: elsewhere our int8 runs the portable kernels, minutes under emulation")
	}
	peersReady(t)
	p, err := PrepareInt8Peers("resnet18", Int8PeersOptions{Calibration: 8, Images: 4, Log: testLog{t}})
	require.NoError(t, err)
	defer p.Close()
	assert.Equal(t, 20, p.QDQ.Check.QLinearConv, "every conv runs as QLinearConv")
	s, err := p.StartTorch(2)
	require.NoError(t, err)
	defer s.Close()
	n, err := p.Numerics(s, 2)
	require.NoError(t, err)
	for _, pr := range n.Pairs {
		t.Logf("%-18s vs %-13s top-1 %d/%d  max|Δ|/max|b| %.4f  r %.5f  centred: r %.4f, RMS %.4f, top-1 %d",
			pr.A, pr.B, pr.AgreeTop1, pr.Images, pr.MaxAbsRel, pr.Correlation, pr.CentredCorrelation, pr.CentredRMSRel, pr.CentredAgreeTop1)
	}
	get := func(a, b string) LogitsPair {
		pr, ok := n.Pair(a, b)
		require.True(t, ok, "%s vs %s", a, b)
		return pr
	}
	fp := get(OursFP32, TorchFP32)
	assert.Less(t, fp.MaxAbsRel, 1e-3, "our float32 is torch's network")
	q := get(OursInt8, OursFP32)
	assert.Less(t, q.MaxAbsRel, 0.1)
	assert.Equal(t, 4, q.AgreeTop1)
	o := get(ORTQDQ, OursInt8)
	assert.Less(t, o.MaxAbsRel, 0.05)
	e := get(ORTExactRef, OursInt8)
	assert.Less(t, e.MaxAbsRel, 0.01)
	assert.Less(t, e.MaxAbsRel, q.MaxAbsRel/2, "the fake-quantized twin of our network is nearer our int8 than our float32 is")
	tq := get(OursInt8, TorchInt8)
	assert.Less(t, tq.MaxAbsRel, 0.15)

	// The latency harness, once (its figures are a benchmark's, not this
	// test's).
	l, err := p.Latency(s, 2, 1, 2)
	require.NoError(t, err)
	t.Logf("%+v", *l)
	for _, v := range []float64{l.OursMs, l.TorchMs, l.ORTMs, l.OverTorch, l.OverORT} {
		assert.Greater(t, v, 0.0)
	}
	assert.InDelta(t, l.OursMs/l.TorchMs, l.OverTorch, 1e-9, "one round: the ratio of the medians")
	_, err = p.Latency(s, 1, 1, 2)
	assert.ErrorContains(t, err, "runs on 2 threads, not 1")
}

type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func TestInt8PeersMissingPython(t *testing.T) {
	_, err := PrepareInt8Peers("resnet18", Int8PeersOptions{Python: "/nonexistent/python3"})
	assert.ErrorContains(t, err, "/nonexistent/python3")
	assert.ErrorContains(t, err, "python3-torchvision python3-onnx")
	_, err = PrepareInt8Peers("resnet34", Int8PeersOptions{})
	assert.ErrorContains(t, err, "resnet34 has no int8 kernels")
}
