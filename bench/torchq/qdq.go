package torchq

import (
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/resnetgen/resnetgen/bench/ort"
)

//go:embed qdq.py
var qdqPy []byte

//go:embed qdq_check.js
var qdqCheckJS []byte

// QParams quantizes one activation tensor per tensor. Unsigned: uint8 with
// zero point ZeroPoint (0 for ReLU outputs; the network input's, which
// resnetgen quantizes asymmetrically over its range, its own). Signed: the
// symmetric int8 grid Scale·q, q ∈ [−127, 127], which the QDQ model stores
// as uint8 with zero point 128 (ORT fuses a Conv only when its input and
// output types agree).
type QParams struct {
	Scale     float64 `json:"scale"`
	Signed    bool    `json:"signed"`
	ZeroPoint int     `json:"zero_point,omitempty"` // unsigned only, in [0, 255]
}

// QDQConv is one convolution's quantization: symmetric int8 weights per
// output channel, and its output's (after its ReLU, if one follows).
type QDQConv struct {
	WeightScales []float32 `json:"weight_scales"`
	Output       QParams   `json:"output"`
	// FloatOutput leaves the output float (Output unused): a residual
	// sum after it in float, quantized once after the add, as resnetgen
	// computes it; ORT then cannot fuse the conv.
	FloatOutput bool `json:"float_output,omitempty"`
}

// QDQAdd is a residual block's sum (after the block's ReLU).
type QDQAdd struct {
	Output QParams `json:"output"`
}

// QDQScales are the scales WriteQDQ puts into a float ONNX export: the
// network input's, every convolution's by module name (conv1,
// layer1.0.conv1, layer2.0.downsample.0; see bench.ORTLayer) and every
// block's sum by block name (layer1.0). A block's last convolution and its
// projection shortcut are signed; ORT needs them quantized before the sum,
// which resnetgen fuses into the convolution's epilogue instead.
type QDQScales struct {
	// Input is nil when the network input stays float32 (its first
	// convolutions in Float).
	Input *QParams           `json:"input,omitempty"`
	Convs map[string]QDQConv `json:"convs"`
	Adds  map[string]QDQAdd  `json:"adds"`
	// Float names convolutions left in float32, without Q or DQ (resnetgen
	// keeps its stem so); ORT's optimised graph then keeps them as float
	// convolutions (QDQCheck.FloatConvs counts them).
	Float []string `json:"float,omitempty"`
	// Pools gives a max pool's output (by module name, maxpool) a scale of
	// its own, as resnetgen quantizes after the stem's max pool; without an
	// entry a max pool of a quantized input keeps its input's scale.
	Pools map[string]QDQAdd `json:"pools,omitempty"`
}

// WriteQDQ writes to out the float ONNX model floatONNX (a torch.onnx
// export, BatchNorm folded) in QDQ form with the given scales (qdq.py,
// python3-onnx).
func WriteQDQ(floatONNX string, s *QDQScales, out string, o Options) error {
	dir, err := os.MkdirTemp("", "torchq-qdq")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	js := filepath.Join(dir, "scales.json")
	if err := os.WriteFile(js, b, 0o644); err != nil {
		return err
	}
	_, err = runQDQPy(o, "build", floatONNX, js, out)
	return err
}

// runQDQPy runs qdq.py with args and returns its standard output.
func runQDQPy(o Options, args ...string) ([]byte, error) {
	py := o.python()
	if _, err := exec.LookPath(py); err != nil {
		return nil, fmt.Errorf("qdq.py runs in Python: %s not found (%v); it needs python3-onnx", py, err)
	}
	dir, err := os.MkdirTemp("", "torchq-qdq")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "qdq.py")
	if err := os.WriteFile(path, qdqPy, 0o644); err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd := exec.Command(py, append([]string{path}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e := fmt.Errorf("qdq.py %s: %v\n%s", args[0], err, strings.TrimSpace(stderr.String()))
		if strings.Contains(stderr.String(), "No module named") {
			e = fmt.Errorf("%w\nit needs python3-onnx (and python3-torchvision for the toy)", e)
		}
		return out, e
	}
	return out, nil
}

// QDQCheck is what ONNX Runtime made of a QDQ model.
type QDQCheck struct {
	// Ops counts the optimised graph's ops ("com.microsoft:QLinearConv",
	// "QuantizeLinear", …), as ORT saved it (optimizedModelFilePath).
	Ops         map[string]int `json:"ops"`
	QLinearConv int            `json:"qlinearconv"`
	// FloatConvs counts convolutions left in float (Conv, FusedConv,
	// NchwcConv, ConvInteger): none when every conv fused to int8.
	FloatConvs map[string]int `json:"float_convs"`
	// Reference is the model's first output run node by node (optimisation
	// disabled: Q, DQ and float Conv — the fake-quantized network); Fused
	// the same input through the optimised graph's int8 kernels.
	Reference, Fused []float32
}

// CheckQDQ runs the QDQ model in ONNX Runtime (onnxruntime-node in
// ortDir, installed by ort.Setup when missing) on input of the given NCHW
// shape, once unoptimised and once at level "all", and reads the graph ORT
// optimised. optimized is where that graph is saved ("" for a temporary
// file).
func CheckQDQ(ortDir, model string, input []float32, shape [4]int, optimized string, o Options) (*QDQCheck, error) {
	if err := ort.Setup(ortDir, logWriter(o)); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "torchq-qdq")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if optimized == "" {
		optimized = filepath.Join(dir, "optimized.onnx")
	}
	raw := make([]byte, 4*len(input))
	for i, v := range input {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	in := filepath.Join(dir, "input.bin")
	js := filepath.Join(dir, "qdq_check.js")
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(js, qdqCheckJS, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("node", js, model, in, fmt.Sprintf("%d,%d,%d,%d", shape[0], shape[1], shape[2], shape[3]), optimized)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(ortDir, "node_modules"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("onnxruntime-node on %s: %v\n%s", model, err, stderr.String())
	}
	var c QDQCheck
	if err := json.Unmarshal(lastLine(out), &c); err != nil {
		return nil, fmt.Errorf("qdq_check.js: %v in %q", err, out)
	}
	ops, err := runQDQPy(o, "check", optimized)
	if err != nil && len(ops) == 0 {
		return nil, err
	}
	// qdq.py check fails when a float conv is left; the counts say which.
	if err := json.Unmarshal(lastLine(ops), &c); err != nil {
		return nil, fmt.Errorf("qdq.py check: %v in %q", err, ops)
	}
	return &c, nil
}

// WriteQDQToy writes qdq.py's toy network into dir: toy.onnx (float),
// toy.json (hand-made scales, QDQScales' form) and toy_input.bin (one
// 3×16×16 float32 image).
func WriteQDQToy(dir string, o Options) error {
	_, err := runQDQPy(o, "toy", dir)
	return err
}

func logWriter(o Options) io.Writer {
	if o.Log != nil {
		return o.Log
	}
	return io.Discard
}
