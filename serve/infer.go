package serve

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// The tensors of the protocol as this server names them.
const (
	InputName  = "input"  // FP32 [N,3,H,W], normalised; or BYTES [N], image files
	OutputName = "logits" // FP32 [N,classes]; BYTES [N,K] with the classification parameter
)

// badRequest is an error in the request itself: HTTP 400, gRPC
// INVALID_ARGUMENT.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func bad(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// inferInput is the decoded input tensor.
type inferInput struct {
	name, datatype string
	shape          []int64
	fp32           []float32 // FP32
	bytes          [][]byte  // BYTES
}

// outputRequest is one requested output.
type outputRequest struct {
	name     string
	classify int  // the classification extension's K, 0 for plain logits
	binary   bool // REST: send the data in the binary extension
}

// inferResult is the model's answer: logits, and the outputs to send.
type inferResult struct {
	n       int
	classes int
	logits  []float32
	outputs []outputTensor
}

type outputTensor struct {
	name, datatype string
	shape          []int64
	fp32           []float32
	bytes          [][]byte
	binary         bool
}

// infer validates one request's input against the model, runs it, and
// builds the requested outputs.
func (s *Server) infer(ctx context.Context, modelName string, inputs []inferInput, outputs []outputRequest) (*inferResult, error) {
	md, err := s.model(modelName)
	if err != nil {
		return nil, err
	}
	spec := md.spec
	if len(inputs) != 1 {
		return nil, bad("%d input tensors; %s takes one, %q", len(inputs), spec.Name, InputName)
	}
	in := inputs[0]
	if in.name != InputName {
		return nil, bad("inputs[0].name is %q; %s's input is %q", in.name, spec.Name, InputName)
	}
	var data []float32
	var n int
	switch in.datatype {
	case "FP32":
		if len(in.shape) != 4 || in.shape[1] != 3 || in.shape[2] != int64(spec.InputH) || in.shape[3] != int64(spec.InputW) || in.shape[0] < 1 {
			return nil, bad("inputs[0].shape is %v; %s takes FP32 [N,3,%d,%d] (N ≥ 1) or BYTES [N] image files", in.shape, spec.Name, spec.InputH, spec.InputW)
		}
		n = int(in.shape[0])
		if n > md.opt.MaxBatch {
			return nil, bad("inputs[0].shape: %d images; this server takes at most %d per request", n, md.opt.MaxBatch)
		}
		if len(in.fp32) != n*md.inLen {
			return nil, bad("inputs[0].data holds %d values; shape %v needs %d", len(in.fp32), in.shape, n*md.inLen)
		}
		for i, v := range in.fp32 {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, bad("inputs[0].data[%d] is %v; inputs must be finite", i, v)
			}
		}
		data = in.fp32
	case "BYTES":
		if spec.Images == nil {
			return nil, bad("inputs[0].datatype BYTES: %s takes FP32 [N,3,%d,%d] tensors only (no image preprocessing for it)", spec.Name, spec.InputH, spec.InputW)
		}
		if len(in.shape) != 1 || in.shape[0] < 1 || int(in.shape[0]) != len(in.bytes) {
			return nil, bad("inputs[0].shape is %v with %d elements; BYTES takes [N], one image file per element", in.shape, len(in.bytes))
		}
		n = len(in.bytes)
		if n > md.opt.MaxBatch {
			return nil, bad("inputs[0].shape: %d images; this server takes at most %d per request", n, md.opt.MaxBatch)
		}
		data = make([]float32, 0, n*md.inLen)
		for i, b := range in.bytes {
			if len(b) > MaxImageBytes {
				return nil, bad("inputs[0].data[%d]: %d bytes, more than the %d an image may have", i, len(b), MaxImageBytes)
			}
			t, err := spec.Images(b)
			if err != nil {
				return nil, bad("inputs[0].data[%d]: %v", i, err)
			}
			data = append(data, t...)
		}
	default:
		return nil, bad("inputs[0].datatype is %q; %s takes FP32 or BYTES", in.datatype, spec.Name)
	}
	if len(outputs) == 0 {
		outputs = []outputRequest{{name: OutputName}}
	}
	for i, o := range outputs {
		if o.name != OutputName {
			return nil, bad("outputs[%d].name is %q; %s's output is %q", i, o.name, spec.Name, OutputName)
		}
		if o.classify < 0 || o.classify > spec.Classes {
			return nil, bad("outputs[%d].parameters.classification is %d; want 1 to %d", i, o.classify, spec.Classes)
		}
	}
	logits, err := md.infer(ctx, data, n)
	if err != nil {
		return nil, err
	}
	r := &inferResult{n: n, classes: spec.Classes, logits: logits}
	for _, o := range outputs {
		if o.classify == 0 {
			r.outputs = append(r.outputs, outputTensor{name: o.name, datatype: "FP32", shape: []int64{int64(n), int64(spec.Classes)}, fp32: logits, binary: o.binary})
			continue
		}
		var strs [][]byte
		for i := 0; i < n; i++ {
			strs = append(strs, classify(logits[i*spec.Classes:(i+1)*spec.Classes], o.classify, spec.Labels)...)
		}
		r.outputs = append(r.outputs, outputTensor{name: o.name, datatype: "BYTES", shape: []int64{int64(n), int64(o.classify)}, bytes: strs, binary: o.binary})
	}
	return r, nil
}

// classify is Triton's classification extension: the k largest outputs as
// "score:index:label" strings, best first (score the output value, here
// the logit; label the class name, or the index without labels).
func classify(logits []float32, k int, labels []string) [][]byte {
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	out := make([][]byte, k)
	for r, i := range idx[:k] {
		label := strconv.Itoa(i)
		if labels != nil {
			label = labels[i]
		}
		out[r] = []byte(strconv.FormatFloat(float64(logits[i]), 'g', -1, 32) + ":" + strconv.Itoa(i) + ":" + label)
	}
	return out
}
