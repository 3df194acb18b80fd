package torchq

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/resnetgen/resnetgen/bench/ort"
	"github.com/resnetgen/resnetgen/resnet/npy"
)

// Precision selects which of a Session's two networks runs.
type Precision string

const (
	Int8 Precision = "int8" // PyTorch's quantized network (oneDNN int8)
	FP32 Precision = "fp32" // the float32 network it was quantized from
)

// Ready is what a Session's Python process reports once its networks are
// built, quantized and warm.
type Ready struct {
	Arch    string `json:"ready"`
	Torch   string `json:"torch"`
	Threads int    `json:"threads"` // torch.get_num_threads()
	Height  int    `json:"height"`
	Width   int    `json:"width"`
	// ISA is the instruction set oneDNN says it dispatches to (its verbose
	// log's "isa:" line), e.g. "Intel AVX-512 with Intel DL Boost" when held
	// to VNNI.
	ISA string `json:"isa"`
	// Int8Conv are the oneDNN implementations that ran the int8
	// convolutions of one inference (e.g. "jit_int8:avx512_core_vnni",
	// "brgconv_1x1:avx512_core_vnni"); Int8ConvCount how many convolutions
	// they ran.
	Int8Conv      []string `json:"int8_conv"`
	Int8ConvCount int      `json:"int8_conv_count"`
	// FP32 says how the float32 network runs: "mkldnn" (every convolution in
	// oneDNN, torch.utils.mkldnn) or "eager" (where that fails).
	FP32 string `json:"fp32"`
}

// Session is a quantized network and its float32 original in one Python
// process, answering timing requests.
type Session struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	errs  strings.Builder
	dir   string
	ready Ready
}

// Start quantizes net (calibrated on calib, float32 N×3×H×W) in a Python
// process with torch.set_num_threads(threads) and returns once both
// networks ran warm on a batch-1 input of calib's H×W, the deterministic
// input bench/ort's runner feeds ONNX Runtime. To alternate with our
// runs, as bench.Versus does with ORT:
//
//	s, err := torchq.Start(torchq.Net{Arch: "resnet50"}, "calib.npy", threads, torchq.Options{ISA: torchq.VNNI})
//	for range rounds {
//		ort.WaitIdle(os.Getpid(), time.Second) // our workers parked
//		theirs, err := s.Run(torchq.Int8, runs)
//		s.WaitIdle(time.Second) // OpenMP's workers stopped spinning
//		… time ours …
//	}
func Start(net Net, calib string, threads int, o Options) (*Session, error) {
	if threads < 1 {
		return nil, fmt.Errorf("torchq: %d threads", threads)
	}
	dir, err := os.MkdirTemp("", "torchq")
	if err != nil {
		return nil, err
	}
	s := &Session{dir: dir}
	for _, p := range []*string{&calib, &net.Weights} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				os.RemoveAll(dir)
				return nil, err
			}
		}
	}
	s.cmd, err = o.command(dir, "serve", "--arch", net.Arch, "--weights", net.Weights, "--calib", calib, "--threads", fmt.Sprint(threads))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.cmd.Stderr = &s.errs
	if s.in, err = s.cmd.StdinPipe(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.out = bufio.NewScanner(stdout)
	s.out.Buffer(make([]byte, 1<<20), 16<<20)
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	o.logf("torchq: %s int8 (oneDNN%s) on %d thread(s), calibrated on %s\n", net.Arch, isaNote(o.ISA), threads, filepath.Base(calib))
	if err := s.read(&s.ready); err != nil {
		s.Close()
		return nil, fmt.Errorf("torchq.py serve %s: %w", net.Arch, err)
	}
	return s, nil
}

func isaNote(isa string) string {
	if isa == "" {
		return ""
	}
	return ", ONEDNN_MAX_CPU_ISA=" + isa
}

// Ready is what the process reported when it became ready.
func (s *Session) Ready() Ready { return s.ready }

func (s *Session) read(v any) error {
	if !s.out.Scan() {
		err := fmt.Errorf("the Python process ended (%v)", s.out.Err())
		return explain(err, s.errs.String())
	}
	var e struct{ Error string }
	if err := json.Unmarshal(s.out.Bytes(), &e); err == nil && e.Error != "" {
		return fmt.Errorf("torchq: %s", e.Error)
	}
	return json.Unmarshal(s.out.Bytes(), v)
}

// Run times n batch-1 inferences of the int8 or the float32 network and
// returns each one's seconds.
func (s *Session) Run(p Precision, n int) ([]float64, error) {
	if p != Int8 && p != FP32 {
		return nil, fmt.Errorf("torchq: precision %q: want %q or %q", p, Int8, FP32)
	}
	if _, err := fmt.Fprintf(s.in, `{"run": %d, "precision": %q}`+"\n", n, p); err != nil {
		return nil, err
	}
	var r struct {
		Seconds []float64
		Batch   int
	}
	if err := s.read(&r); err != nil {
		return nil, err
	}
	if len(r.Seconds) != n {
		return nil, fmt.Errorf("torchq ran %d of %d inferences", len(r.Seconds), n)
	}
	if r.Batch != 1 {
		return nil, fmt.Errorf("torchq timed batches of %d images, not 1", r.Batch)
	}
	return r.Seconds, nil
}

// Logits runs the session's int8 network and the eager float32 network it
// was quantized from on the images of in (.npy, float32 N×3×H×W) and
// returns their N×classes logits (written beside in, as in's name with
// _torch_int8.npy and _torch_fp32.npy).
func (s *Session) Logits(in string) (int8, fp32 *npy.Array, err error) {
	if in, err = filepath.Abs(in); err != nil {
		return nil, nil, err
	}
	prefix := strings.TrimSuffix(in, ".npy") + "_torch"
	if _, err := fmt.Fprintf(s.in, `{"logits": %q, "out": %q}`+"\n", in, prefix); err != nil {
		return nil, nil, err
	}
	var r struct{ Images int }
	if err := s.read(&r); err != nil {
		return nil, nil, err
	}
	if int8, err = npy.ReadFile(prefix + "_int8.npy"); err != nil {
		return nil, nil, err
	}
	if fp32, err = npy.ReadFile(prefix + "_fp32.npy"); err != nil {
		return nil, nil, err
	}
	if len(int8.Shape) != 2 || int8.Shape[0] != r.Images || fmt.Sprint(int8.Shape) != fmt.Sprint(fp32.Shape) {
		return nil, nil, fmt.Errorf("torchq logits of %s: shapes %v and %v for %d images", in, int8.Shape, fp32.Shape, r.Images)
	}
	return int8, fp32, nil
}

// WaitIdle returns once the Python process has been idle (OpenMP's workers
// spin for a while after a parallel region, as ORT's do), or fails after
// max; see ort.WaitIdle.
func (s *Session) WaitIdle(max time.Duration) error {
	return ort.WaitIdle(s.cmd.Process.Pid, max)
}

// Pid is the Python process's id (e.g. for ort.WaitIdle from another side).
func (s *Session) Pid() int { return s.cmd.Process.Pid }

// Close ends the Python process.
func (s *Session) Close() error {
	defer os.RemoveAll(s.dir)
	s.in.Close()
	return s.cmd.Wait()
}

// LatencyResult is PyTorch's int8 and fp32 batch-1 latency on one network
// and thread count; the JSON keys are a contract.
type LatencyResult struct {
	Arch    string  `json:"arch"`
	Threads int     `json:"threads"`
	ISA     string  `json:"isa_cap"` // ONEDNN_MAX_CPU_ISA ("" for none)
	Int8Ms  float64 `json:"int8_ms"` // median over rounds of each round's median
	FP32Ms  float64 `json:"fp32_ms"`
	Rounds  int     `json:"rounds"`
	Runs    int     `json:"runs"` // per round and precision
	Ready   Ready   `json:"torch"`
}

// Latency starts a Session and alternates int8 and fp32 in rounds of runs
// inferences each, each round after the process went idle.
func Latency(net Net, calib string, threads, rounds, runs int, o Options) (LatencyResult, error) {
	if rounds < 1 || runs < 1 {
		return LatencyResult{}, fmt.Errorf("torchq: %d rounds of %d runs", rounds, runs)
	}
	s, err := Start(net, calib, threads, o)
	if err != nil {
		return LatencyResult{}, err
	}
	defer s.Close()
	var q, f []float64
	for r := range rounds {
		for _, p := range []Precision{Int8, FP32} {
			if err := s.WaitIdle(time.Second); err != nil {
				o.logf("warning: %v\n", err)
			}
			t, err := s.Run(p, runs)
			if err != nil {
				return LatencyResult{}, err
			}
			if p == Int8 {
				q = append(q, median(t))
			} else {
				f = append(f, median(t))
			}
		}
		o.logf("%s %d thread(s) round %d: int8 %.2f ms, fp32 %.2f ms\n", net.Arch, threads, r+1, q[r]*1e3, f[r]*1e3)
	}
	return LatencyResult{Arch: net.Arch, Threads: threads, ISA: o.ISA, Int8Ms: median(q) * 1e3, FP32Ms: median(f) * 1e3,
		Rounds: rounds, Runs: runs, Ready: s.Ready()}, nil
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
