package serve_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/resnetgen/resnetgen/serve"
)

// echo is a network of 2×2 inputs and 3 classes whose logits are sums of
// its input, so that a wrong split of a batch shows in the answer.
type echo struct{}

func (echo) ForwardBatch(in, out []float32) error {
	for i := range len(out) / 3 {
		var s float32
		for _, v := range in[i*12 : (i+1)*12] {
			s += v
		}
		out[3*i], out[3*i+1], out[3*i+2] = s, -s, 1
	}
	return nil
}

func (echo) Close() {}

// FuzzInfer: whatever the body and the binary extension's header length,
// an infer request gets 200, 400 or 413 with a JSON answer (or the binary
// extension's), never a panic; a 200 answers every image of the request.
func FuzzInfer(f *testing.F) {
	srv, err := serve.New([]serve.Spec{{Name: "m", Arch: "test", InputH: 2, InputW: 2, Classes: 3,
		Labels: []string{"a", "b", "c"},
		New:    func(int) (serve.Network, error) { return echo{}, nil },
		Images: func(b []byte) ([]float32, error) {
			if len(b) == 0 || b[0] != 'I' {
				return nil, errors.New("not an image")
			}
			return make([]float32, 12), nil
		}}}, serve.Options{MaxBatch: 4, MaxBody: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.Close)
	h := srv.Handler()

	seed := func(body string, header int) { f.Add([]byte(body), header) }
	// The specification's examples, adapted to this model.
	seed(`{"id":"42","inputs":[{"name":"input","shape":[1,3,2,2],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,10,11,12]}],"outputs":[{"name":"logits"}]}`, -1)
	seed(`{"inputs":[{"name":"input","shape":[2,3,2,2],"datatype":"FP32","data":[[1,2,3,4,5,6,7,8,9,10,11,12],[0,0,0,0,0,0,0,0,0,0,0,1]]}],"outputs":[{"name":"logits","parameters":{"classification":2}}]}`, -1)
	seed(`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","data":["SW1n"]}]}`, -1)
	seed(`{"inputs":[{"name":"input","shape":[1,3,2,2],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,10,11,"x"]}]}`, -1)
	seed(`{"inputs":[{"name":"input","shape":[1,3,2,2],"datatype":"FP64","data":[1]}]}`, -1)
	seed(`{"inputs":[]}`, -1)
	seed(`{`, -1)
	head := `{"inputs":[{"name":"input","shape":[1,3,2,2],"datatype":"FP32","parameters":{"binary_data_size":48}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}`
	raw := make([]byte, 48)
	for i := range 12 {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(i)))
	}
	seed(head+string(raw), len(head))
	bytesHead := `{"inputs":[{"name":"input","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":11}}],"outputs":[{"name":"logits","parameters":{"classification":3,"binary_data":true}}]}`
	seed(bytesHead+"\x01\x00\x00\x00I\x02\x00\x00\x00IJ", len(bytesHead))
	seed(bytesHead+"\xff\xff\xff\x7fI", len(bytesHead))

	f.Fuzz(func(t *testing.T, body []byte, header int) {
		req := httptest.NewRequest(http.MethodPost, "/v2/models/m/infer", bytes.NewReader(body))
		if header >= 0 {
			req.Header.Set(serve.HeaderLength, strconv.Itoa(header))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		answer := rec.Body.Bytes()
		if n, err := strconv.Atoi(rec.Header().Get(serve.HeaderLength)); err == nil {
			if n < 0 || n > len(answer) {
				t.Fatalf("answer header length %d of a %d-byte body", n, len(answer))
			}
			answer = answer[:n]
		}
		var r struct {
			Outputs []struct {
				Shape []int64
			}
			Error string
		}
		if err := json.Unmarshal(answer, &r); err != nil {
			t.Fatalf("status %d with an answer that is not JSON: %v: %q", rec.Code, err, answer)
		}
		switch rec.Code {
		case http.StatusOK:
			if len(r.Outputs) == 0 || len(r.Outputs[0].Shape) != 2 || r.Outputs[0].Shape[0] < 1 || r.Outputs[0].Shape[0] > 4 {
				t.Fatalf("200 with outputs %+v", r.Outputs)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if r.Error == "" {
				t.Fatalf("%d without an error message: %q", rec.Code, answer)
			}
		default:
			t.Fatalf("status %d: %q", rec.Code, answer)
		}
	})
}
