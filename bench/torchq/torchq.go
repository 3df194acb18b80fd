// Package torchq runs PyTorch's own post-training int8 quantization — torch
// 1.13's oneDNN engine, FX graph mode — on the networks resnetgen runs,
// calibrated on the very tensors resnetgen's int8 calibration reads, so that
// int8 accuracy and latency can be set side by side with ours, as bench/ort
// does for fp32.
//
// The Python side (torchq.py, embedded) is run with Debian's
// python3-torchvision (RESNET_TORCH_PYTHON, or /usr/bin/python3). It
// quantizes with torch.backends.quantized.engine = "onednn" and
// get_default_qconfig_mapping("onednn"): per-output-channel symmetric int8
// weights, per-tensor uint8 activations from a histogram observer,
// conv+bn(+relu) and add+relu fused by prepare_fx. FX rather than eager
// mode, for one path on both families: akamaster's CIFAR ResNets would need
// QuantStubs and FloatFunctional edits for eager mode, and the fused ops FX
// emits for torchvision's ResNets are those of
// torchvision.models.quantization (quantized::conv2d_relu, add_relu).
//
// Two operations: Accuracy quantizes a network on a calibration .npy and
// writes its int8 and fp32 logits on an evaluation .npy; Start keeps a
// quantized network in a long-lived process that answers "run N times"
// requests, so that a benchmark can alternate it with ours at no process
// start-up.
package torchq

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/resnetgen/resnetgen/resnet/npy"
)

//go:embed torchq.py
var script []byte

// VNNI is the ONEDNN_MAX_CPU_ISA value that holds oneDNN to AVX-512 VNNI
// (no AMX, no AVX512_BF16 paths): the ISA of resnetgen's int8 kernels.
const VNNI = "AVX512_CORE_VNNI"

// Python is the interpreter with torch and torchvision: RESNET_TORCH_PYTHON,
// or /usr/bin/python3 (Debian's python3-torchvision).
func Python() string {
	if p := os.Getenv("RESNET_TORCH_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// Net names a network and its weights for the Python side.
type Net struct {
	// Arch is "cifar-resnetN" (akamaster's CIFAR-10 ResNets, option-A
	// shortcuts) or a torchvision ResNet: "resnet18" … "resnet152",
	// "resnet50v1" … (the stride on the first 1x1, as bench/ort's export).
	Arch string
	// Weights is a checkpoint torch.load reads: the published CIFAR .th
	// files, or a torchvision state_dict .pth (its class count is fc's).
	// Empty: torch.manual_seed(0) and torchvision's constructor, the
	// weights of bench/ort's ONNX exports.
	Weights string
}

// Options are what both operations share.
type Options struct {
	Python string    // interpreter; "" for Python()
	ISA    string    // ONEDNN_MAX_CPU_ISA for the Python process (e.g. VNNI); "" leaves oneDNN's choice (AMX where the CPU has it)
	Log    io.Writer // progress; nil for none
	// CalibBatch is how many calibration images PyTorch observes per
	// forward pass (0: 32). Its HistogramObserver merges batches by
	// re-binning, so the scales, and top-1 by a few hundredths of a
	// point, depend on it.
	CalibBatch int
}

func (o Options) python() string {
	if o.Python != "" {
		return o.Python
	}
	return Python()
}

func (o Options) logf(format string, a ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format, a...)
	}
}

// command prepares the script with args in a process whose environment
// carries the ISA cap. The script is written into dir.
func (o Options) command(dir string, args ...string) (*exec.Cmd, error) {
	py := o.python()
	if _, err := exec.LookPath(py); err != nil {
		return nil, fmt.Errorf("PyTorch's int8 runs in Python: %s not found (%v); %s", py, err, needs)
	}
	path := filepath.Join(dir, "torchq.py")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		return nil, err
	}
	if o.CalibBatch > 0 {
		args = append(args, "--calib-batch", fmt.Sprint(o.CalibBatch))
	}
	cmd := exec.Command(py, append([]string{path}, args...)...)
	cmd.Env = os.Environ()
	if o.ISA != "" {
		cmd.Env = append(cmd.Env, "ONEDNN_MAX_CPU_ISA="+o.ISA)
	}
	return cmd, nil
}

const needs = "it needs torch and torchvision (Debian 12: apt-get install python3-torchvision), or RESNET_TORCH_PYTHON naming an interpreter that has them"

// explain adds what to install when the Python side could not import torch.
func explain(err error, out string) error {
	if strings.Contains(out, "No module named") {
		return fmt.Errorf("%w\n%s\n%s", err, strings.TrimSpace(out), needs)
	}
	return fmt.Errorf("%w\n%s", err, strings.TrimSpace(out))
}

// AccuracyResult is PyTorch's int8 and fp32 on one evaluation set; the JSON
// keys are a contract.
type AccuracyResult struct {
	Arch        string  `json:"arch"`
	Torch       string  `json:"torch"`       // torch.__version__
	Calibration int     `json:"calibration"` // calibration images
	CalibBatch  int     `json:"calib_batch"` // calibration images per forward pass
	Images      int     `json:"images"`      // evaluated images
	FP32Correct int     `json:"fp32_correct"`
	Int8Correct int     `json:"int8_correct"`
	FP32Top1    float64 `json:"fp32_top1"` // percent
	Int8Top1    float64 `json:"int8_top1"` // percent
	// Int8VsFP32 compares the two networks' logits image by image.
	Int8VsFP32 LogitsDiff `json:"int8_vs_fp32"`
	// Int8Logits and FP32Logits are the .npy files (N×classes) written.
	Int8Logits string `json:"int8_logits"`
	FP32Logits string `json:"fp32_logits"`
}

// Accuracy quantizes net with PyTorch's int8 (oneDNN engine), calibrated on
// calib (float32 N×3×H×W, normalised), and runs both the int8 and the
// float32 network on eval. out is a path prefix: the logits go to
// out_int8.npy and out_fp32.npy. labels, one per image of eval, give the
// top-1 counts (nil: none).
func Accuracy(net Net, calib, eval string, labels []int, out string, o Options) (*AccuracyResult, error) {
	dir, err := os.MkdirTemp("", "torchq")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for _, p := range []*string{&calib, &eval, &out, &net.Weights} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return nil, err
			}
		}
	}
	cmd, err := o.command(dir, "accuracy", "--arch", net.Arch, "--weights", net.Weights, "--calib", calib, "--eval", eval, "--out", out)
	if err != nil {
		return nil, err
	}
	o.logf("torchq: %s int8 (oneDNN), calibrated on %s, on %s\n", net.Arch, filepath.Base(calib), filepath.Base(eval))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return nil, explain(fmt.Errorf("torchq.py accuracy %s: %v", net.Arch, err), stderr.String())
	}
	var r struct {
		Torch       string
		Calibration int
		CalibBatch  int `json:"calib_batch"`
		Images      int
	}
	if err := json.Unmarshal(lastLine(stdout), &r); err != nil {
		return nil, fmt.Errorf("torchq.py accuracy %s: %v in %q", net.Arch, err, stdout)
	}
	res := &AccuracyResult{Arch: net.Arch, Torch: r.Torch, Calibration: r.Calibration, CalibBatch: r.CalibBatch, Images: r.Images,
		Int8Logits: out + "_int8.npy", FP32Logits: out + "_fp32.npy"}
	q, err := npy.ReadFile(res.Int8Logits)
	if err != nil {
		return nil, err
	}
	f, err := npy.ReadFile(res.FP32Logits)
	if err != nil {
		return nil, err
	}
	if len(q.Shape) != 2 || q.Shape[0] != r.Images {
		return nil, fmt.Errorf("%s: shape %v, want %d × classes", res.Int8Logits, q.Shape, r.Images)
	}
	if res.Int8VsFP32, err = Compare(q, f); err != nil {
		return nil, err
	}
	if labels != nil {
		if len(labels) != r.Images {
			return nil, fmt.Errorf("%d labels for %d images in %s", len(labels), r.Images, eval)
		}
		res.Int8Correct, res.FP32Correct = Correct(q, labels), Correct(f, labels)
		res.Int8Top1 = 100 * float64(res.Int8Correct) / float64(r.Images)
		res.FP32Top1 = 100 * float64(res.FP32Correct) / float64(r.Images)
	}
	return res, nil
}

func lastLine(b []byte) []byte {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return []byte(s)
}

// Argmax is each row's largest entry (the first on ties) of an N×C array.
func Argmax(a *npy.Array) []int {
	n, c := a.Shape[0], a.Shape[1]
	top := make([]int, n)
	for i := range n {
		row := a.Data[i*c : (i+1)*c]
		for j, v := range row {
			if v > row[top[i]] {
				top[i] = j
			}
		}
	}
	return top
}

// Correct counts the rows of logits whose argmax is the label.
func Correct(logits *npy.Array, labels []int) int {
	n := 0
	for i, k := range Argmax(logits) {
		if k == labels[i] {
			n++
		}
	}
	return n
}

// LogitsDiff compares two N×C logit arrays of the same images.
type LogitsDiff struct {
	Images int `json:"images"`
	// AgreeTop1 counts the images whose argmax is the same in both.
	AgreeTop1 int `json:"agree_top1"`
	// Correlation is Pearson's r over all N·C logits.
	Correlation float64 `json:"correlation"`
	// MaxAbs is the largest |a−b|, and MaxAbsRel that over the largest |b|.
	MaxAbs    float64 `json:"max_abs"`
	MaxAbsRel float64 `json:"max_abs_rel"`
	// RMS is the root mean square of a−b over the RMS of b.
	RMSRel float64 `json:"rms_rel"`
}

// Compare measures how far logits a are from b (e.g. our int8 from
// PyTorch's int8, or int8 from fp32).
func Compare(a, b *npy.Array) (LogitsDiff, error) {
	if len(a.Shape) != 2 || len(b.Shape) != 2 || a.Shape[0] != b.Shape[0] || a.Shape[1] != b.Shape[1] {
		return LogitsDiff{}, fmt.Errorf("logits of shapes %v and %v: want two equal N×classes", a.Shape, b.Shape)
	}
	if len(a.Data) == 0 {
		return LogitsDiff{}, errors.New("no logits to compare")
	}
	d := LogitsDiff{Images: a.Shape[0]}
	ta, tb := Argmax(a), Argmax(b)
	for i := range ta {
		if ta[i] == tb[i] {
			d.AgreeTop1++
		}
	}
	n := float64(len(a.Data))
	var ma, mb float64
	for i := range a.Data {
		ma += float64(a.Data[i])
		mb += float64(b.Data[i])
	}
	ma, mb = ma/n, mb/n
	var sab, saa, sbb, sdd, s2b, maxB float64
	for i := range a.Data {
		x, y := float64(a.Data[i]), float64(b.Data[i])
		sab += (x - ma) * (y - mb)
		saa += (x - ma) * (x - ma)
		sbb += (y - mb) * (y - mb)
		sdd += (x - y) * (x - y)
		s2b += y * y
		d.MaxAbs = math.Max(d.MaxAbs, math.Abs(x-y))
		maxB = math.Max(maxB, math.Abs(y))
	}
	if saa > 0 && sbb > 0 {
		d.Correlation = sab / math.Sqrt(saa*sbb)
	}
	if maxB > 0 {
		d.MaxAbsRel = d.MaxAbs / maxB
	}
	if s2b > 0 {
		d.RMSRel = math.Sqrt(sdd / s2b)
	}
	return d, nil
}
