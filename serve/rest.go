package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Handler serves the protocol's REST endpoints:
//
//	GET  /v2/health/live, /v2/health/ready, /v2
//	GET  /v2/models/{name}[/versions/{version}][/ready]
//	POST /v2/models/{name}[/versions/{version}]/infer
//
// with JSON tensors and the binary tensor data extension
// (Inference-Header-Content-Length; inputs with a binary_data_size
// parameter; outputs asking binary_data).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})
	mux.HandleFunc("GET /v2", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.serverMetadata())
	})
	for _, prefix := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		mux.HandleFunc("GET "+prefix, func(w http.ResponseWriter, r *http.Request) {
			md, err := s.modelVersion(r.PathValue("name"), r.PathValue("version"))
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, md.metadata())
		})
		mux.HandleFunc("GET "+prefix+"/ready", func(w http.ResponseWriter, r *http.Request) {
			md, err := s.modelVersion(r.PathValue("name"), r.PathValue("version"))
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"name": md.spec.Name, "ready": true})
		})
		mux.HandleFunc("POST "+prefix+"/infer", s.handleInfer)
	}
	return mux
}

func (s *Server) modelVersion(name, version string) (*model, error) {
	md, err := s.model(name)
	if err != nil {
		return nil, err
	}
	if version != "" && version != Version {
		return nil, &notFoundError{name + " version " + version}
	}
	return md, nil
}

// serverMetadata is GET /v2's answer.
func (s *Server) serverMetadata() map[string]any {
	return map[string]any{"name": "resnetgen", "version": Version, "extensions": []string{"classification", "binary_tensor_data"}}
}

type tensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

type modelMetadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions"`
	Platform string           `json:"platform"`
	Inputs   []tensorMetadata `json:"inputs"`
	Outputs  []tensorMetadata `json:"outputs"`
}

// metadata is GET /v2/models/{name}'s answer: FP32 [-1,3,H,W] in (or BYTES
// [-1] image files), FP32 [-1,classes] out.
func (md *model) metadata() modelMetadata {
	s := md.spec
	in := []tensorMetadata{{InputName, "FP32", []int64{-1, 3, int64(s.InputH), int64(s.InputW)}}}
	if s.Images != nil {
		in = append(in, tensorMetadata{InputName, "BYTES", []int64{-1}})
	}
	return modelMetadata{Name: s.Name, Versions: []string{Version}, Platform: "resnetgen_" + s.Arch,
		Inputs: in, Outputs: []tensorMetadata{{OutputName, "FP32", []int64{-1, int64(s.Classes)}}}}
}

// The JSON of an inference request and response.
type restInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

type restOutputRequest struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

type restRequest struct {
	ID         string              `json:"id,omitempty"`
	Parameters map[string]any      `json:"parameters,omitempty"`
	Inputs     []restInput         `json:"inputs"`
	Outputs    []restOutputRequest `json:"outputs,omitempty"`
}

type restOutput struct {
	Name       string         `json:"name"`
	Shape      []int64        `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data,omitempty"`
}

type restResponse struct {
	ModelName    string       `json:"model_name"`
	ModelVersion string       `json:"model_version"`
	ID           string       `json:"id,omitempty"`
	Outputs      []restOutput `json:"outputs"`
}

// HeaderLength is the binary tensor data extension's header: the length
// of the JSON part of a body that continues with binary tensor data.
const HeaderLength = "Inference-Header-Content-Length"

func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	res, id, err := s.restInfer(w, r)
	s.observe(name, "rest", start, err)
	if err != nil {
		writeError(w, err)
		return
	}
	s.writeInferResponse(w, name, id, res)
}

func (s *Server) restInfer(w http.ResponseWriter, r *http.Request) (*inferResult, string, error) {
	if _, err := s.modelVersion(r.PathValue("name"), r.PathValue("version")); err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.opt.MaxBody)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, "", &tooLarge{tooBig.Limit}
		}
		return nil, "", bad("reading the body: %v", err)
	}
	header, rest := body, []byte(nil)
	if h := r.Header.Get(HeaderLength); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 0 || n > len(body) {
			return nil, "", bad("%s: %q for a body of %d bytes", HeaderLength, h, len(body))
		}
		header, rest = body[:n], body[n:]
	}
	var req restRequest
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, "", bad("the request is not an inference request in JSON: %v", err)
	}
	binaryOut := false
	if v, ok := req.Parameters["binary_data_output"]; ok {
		if b, isBool := v.(bool); !isBool {
			return nil, "", bad("parameters.binary_data_output is %v; want true or false", v)
		} else {
			binaryOut = b
		}
	}
	var inputs []inferInput
	for i, in := range req.Inputs {
		x := inferInput{name: in.Name, datatype: in.Datatype, shape: in.Shape}
		if err := checkShape(in.Shape, i); err != nil {
			return nil, "", err
		}
		var raw []byte
		if v, ok := in.Parameters["binary_data_size"]; ok {
			size, isNum := v.(float64)
			if !isNum || size < 0 || size != math.Trunc(size) || int(size) > len(rest) {
				return nil, "", bad("inputs[%d].parameters.binary_data_size is %v with %d binary bytes left in the body", i, v, len(rest))
			}
			if len(in.Data) > 0 {
				return nil, "", bad("inputs[%d] has both data and binary_data_size", i)
			}
			raw, rest = rest[:int(size)], rest[int(size):]
		}
		switch in.Datatype {
		case "FP32":
			if raw != nil {
				if x.fp32, err = decodeFP32(raw, fmt.Sprintf("inputs[%d]'s binary data", i)); err != nil {
					return nil, "", err
				}
			} else if x.fp32, err = parseFloats(in.Data, i); err != nil {
				return nil, "", err
			}
		case "BYTES":
			if raw != nil {
				if x.bytes, err = splitBytes(raw, i); err != nil {
					return nil, "", err
				}
			} else if x.bytes, err = parseBase64s(in.Data, i); err != nil {
				return nil, "", err
			}
		default:
			return nil, "", bad("inputs[%d].datatype is %q; want FP32 or BYTES", i, in.Datatype)
		}
		inputs = append(inputs, x)
	}
	if len(rest) > 0 {
		return nil, "", bad("%d bytes of binary data that no input claims (binary_data_size)", len(rest))
	}
	var outputs []outputRequest
	for i, o := range req.Outputs {
		or := outputRequest{name: o.Name, binary: binaryOut}
		for k, v := range o.Parameters {
			switch k {
			case "classification":
				f, ok := v.(float64)
				if !ok || f != math.Trunc(f) {
					return nil, "", bad("outputs[%d].parameters.classification is %v; want an integer", i, v)
				}
				or.classify = int(f)
				if or.classify == 0 {
					return nil, "", bad("outputs[%d].parameters.classification is 0; want 1 or more", i)
				}
			case "binary_data":
				b, ok := v.(bool)
				if !ok {
					return nil, "", bad("outputs[%d].parameters.binary_data is %v; want true or false", i, v)
				}
				or.binary = b
			default:
				return nil, "", bad("outputs[%d].parameters.%s is not a parameter this server knows", i, k)
			}
		}
		outputs = append(outputs, or)
	}
	if len(outputs) == 0 {
		// No output named: all of them (the one), binary if asked for.
		outputs = []outputRequest{{name: OutputName, binary: binaryOut}}
	}
	res, err := s.infer(r.Context(), r.PathValue("name"), inputs, outputs)
	return res, req.ID, err
}

func checkShape(shape []int64, i int) error {
	for _, d := range shape {
		if d < 0 || d > 1<<30 {
			return bad("inputs[%d].shape %v: dimensions must be between 0 and 2^30", i, shape)
		}
	}
	return nil
}

// parseFloats reads a JSON array of numbers, nested to any depth (the
// protocol allows row-major nesting or a flat array).
func parseFloats(raw json.RawMessage, input int) ([]float32, error) {
	var out []float32
	depth := 0
	i := 0
	for i < len(raw) {
		c := raw[i]
		switch {
		case c == '[':
			depth++
			i++
		case c == ']':
			depth--
			i++
		case c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r':
			i++
		default:
			j := i
			for j < len(raw) && raw[j] != ',' && raw[j] != ']' && raw[j] != ' ' && raw[j] != '\n' && raw[j] != '\t' && raw[j] != '\r' {
				j++
			}
			v, err := strconv.ParseFloat(string(raw[i:j]), 32)
			if errors.Is(err, strconv.ErrRange) && depth >= 1 {
				return nil, bad("inputs[%d].data[%d]: %s is beyond FP32's range; inputs must be finite", input, len(out), raw[i:j])
			}
			if err != nil || depth < 1 {
				return nil, bad("inputs[%d].data[%d]: %q is not a number (FP32 data is a JSON array of numbers)", input, len(out), raw[i:j])
			}
			out = append(out, float32(v))
			i = j
		}
		if depth < 0 {
			return nil, bad("inputs[%d].data: unbalanced brackets", input)
		}
	}
	if depth != 0 {
		return nil, bad("inputs[%d].data: unbalanced brackets", input)
	}
	return out, nil
}

// parseBase64s reads a JSON array of strings, each an image file in
// standard base64 (raw file bytes are not JSON strings; the binary tensor
// data extension carries them as they are).
func parseBase64s(raw json.RawMessage, input int) ([][]byte, error) {
	var strs []string
	if err := json.Unmarshal(raw, &strs); err != nil {
		return nil, bad("inputs[%d].data: BYTES data in JSON is an array of base64 strings (or use the binary tensor data extension): %v", input, err)
	}
	out := make([][]byte, len(strs))
	for i, s := range strs {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, bad("inputs[%d].data[%d] is not base64 (%v); BYTES elements in JSON are base64-encoded files", input, i, err)
		}
		out[i] = b
	}
	return out, nil
}

// splitBytes reads a BYTES tensor in the binary extension's layout: each
// element a 4-byte little-endian length and its bytes.
func splitBytes(raw []byte, input int) ([][]byte, error) {
	var out [][]byte
	for len(raw) > 0 {
		if len(raw) < 4 {
			return nil, bad("inputs[%d]: binary BYTES data ends inside an element's length", input)
		}
		n := binary.LittleEndian.Uint32(raw)
		if uint64(n) > uint64(len(raw)-4) {
			return nil, bad("inputs[%d]: element %d says %d bytes, %d are left", input, len(out), n, len(raw)-4)
		}
		out = append(out, raw[4:4+n])
		raw = raw[4+n:]
	}
	return out, nil
}

// decodeFP32 reads little-endian FP32 values, the layout of the binary
// extension and of gRPC's raw contents; what names the field for errors.
func decodeFP32(raw []byte, what string) ([]float32, error) {
	if len(raw)%4 != 0 {
		return nil, bad("%s: %d bytes are not whole FP32 values", what, len(raw))
	}
	x := make([]float32, len(raw)/4)
	for j := range x {
		x[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
	}
	return x, nil
}

// encodeFP32 is decodeFP32's inverse.
func encodeFP32(x []float32) []byte {
	raw := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return raw
}

// joinBytes is splitBytes' inverse.
func joinBytes(elems [][]byte) []byte {
	var b []byte
	for _, e := range elems {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

func (s *Server) writeInferResponse(w http.ResponseWriter, name, id string, res *inferResult) {
	resp := restResponse{ModelName: name, ModelVersion: Version, ID: id}
	var bin []byte
	for _, o := range res.outputs {
		ro := restOutput{Name: o.name, Shape: o.shape, Datatype: o.datatype}
		var raw []byte
		switch {
		case o.datatype == "FP32" && o.binary:
			raw = encodeFP32(o.fp32)
		case o.datatype == "FP32":
			ro.Data = o.fp32
		case o.binary:
			raw = joinBytes(o.bytes)
		default:
			strs := make([]string, len(o.bytes))
			for i, b := range o.bytes {
				strs[i] = string(b)
			}
			ro.Data = strs
		}
		if raw != nil {
			ro.Parameters = map[string]any{"binary_data_size": len(raw)}
			bin = append(bin, raw...)
		}
		resp.Outputs = append(resp.Outputs, ro)
	}
	js, err := json.Marshal(resp)
	if err != nil {
		writeError(w, err)
		return
	}
	if bin == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(js)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(HeaderLength, strconv.Itoa(len(js)))
	w.WriteHeader(http.StatusOK)
	w.Write(js)
	w.Write(bin)
}

type tooLarge struct{ limit int64 }

func (e *tooLarge) Error() string {
	return fmt.Sprintf("the request body is larger than the %d bytes this server takes", e.limit)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeError answers an error as the protocol does: {"error": "…"} with 400
// for a bad request, 404 for an unknown model, 413 for a body too large,
// 503 when the queue is full or the server is stopping, 500 otherwise.
func writeError(w http.ResponseWriter, err error) {
	var b *badRequest
	var nf *notFoundError
	var tl *tooLarge
	code := http.StatusInternalServerError
	switch {
	case errors.As(err, &b):
		code = http.StatusBadRequest
	case errors.As(err, &nf):
		code = http.StatusNotFound
	case errors.As(err, &tl):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrOverloaded), errors.Is(err, ErrClosed):
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
