// Package ort runs ONNX Runtime (the onnxruntime-node package from npm, its
// CPU execution provider, MLAS) beside resnetgen, on the very ONNX files
// resnetgen loads, so that one benchmark run can alternate between the two.
//
// Setup installs what it needs into a cache directory (RESNET_ORT_DIR, or
// resnetgen/ort under os.UserCacheDir()): onnxruntime-node with
// ONNXRUNTIME_NODE_INSTALL=skip (its install script would download CUDA
// files; the CPU binaries ship inside the npm package), and ONNX exports of
// torchvision's ResNets written by Debian's python3-torchvision.
package ort

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Version is the onnxruntime-node release Setup installs.
const Version = "1.30.0"

//go:embed runner.js
var runnerJS []byte

//go:embed export.py
var exportPy []byte

// Dir returns the cache directory: RESNET_ORT_DIR, or resnetgen/ort under
// the user's cache directory.
func Dir() (string, error) {
	if d := os.Getenv("RESNET_ORT_DIR"); d != "" {
		return d, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "resnetgen", "ort"), nil
}

var setupMu sync.Mutex

// Setup makes sure dir holds onnxruntime-node and the runner, installing
// with npm when needed (progress goes to log).
func Setup(dir string, log io.Writer) error {
	setupMu.Lock()
	defer setupMu.Unlock()
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("ONNX Runtime runs under Node.js: node is not on PATH")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "runner.js"), runnerJS, 0o644); err != nil {
		return err
	}
	pkg := filepath.Join(dir, "node_modules", "onnxruntime-node", "package.json")
	if b, err := os.ReadFile(pkg); err == nil && strings.Contains(string(b), `"version": "`+Version+`"`) {
		return nil
	}
	fmt.Fprintf(log, "installing onnxruntime-node %s into %s\n", Version, dir)
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "onnxruntime-node@"+Version)
	cmd.Env = append(os.Environ(), "ONNXRUNTIME_NODE_INSTALL=skip")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm install onnxruntime-node@%s: %v\n%s", Version, err, out)
	}
	return nil
}

// Export makes sure dir holds ARCH.onnx for every arch (torchvision's
// ResNets, exported by torch; see export.py) and returns their paths. python
// is the interpreter with torchvision ("" for /usr/bin/python3).
func Export(dir, python string, archs []string, log io.Writer) (map[string]string, error) {
	if python == "" {
		python = "/usr/bin/python3"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	paths := map[string]string{}
	var missing []string
	for _, a := range archs {
		p := filepath.Join(dir, a+".onnx")
		paths[a] = p
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, a)
		}
	}
	if len(missing) == 0 {
		return paths, nil
	}
	script := filepath.Join(dir, "export.py")
	if err := os.WriteFile(script, exportPy, 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "exporting %s to ONNX with torch (%s)\n", strings.Join(missing, ", "), python)
	out, err := exec.Command(python, append([]string{script, dir}, missing...)...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("exporting %v with %s: %v\n%s (needs Debian's python3-torchvision)", missing, python, err, out)
	}
	return paths, nil
}

// Session is one ONNX Runtime inference session in a Node.js process.
type Session struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	errs strings.Builder
}

// Start loads model into ONNX Runtime with threads intra-op threads, for
// batches of batch h×w images.
func Start(dir, model string, threads, batch, h, w int) (*Session, error) {
	s := &Session{}
	s.cmd = exec.Command("node", filepath.Join(dir, "runner.js"), model, fmt.Sprint(threads), fmt.Sprint(batch), fmt.Sprint(h), fmt.Sprint(w))
	s.cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	s.cmd.Stderr = &s.errs
	var err error
	if s.in, err = s.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.out = bufio.NewScanner(stdout)
	s.out.Buffer(make([]byte, 1<<20), 16<<20)
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	var ready struct {
		Ready, Error string
	}
	if err := s.read(&ready); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Session) read(v any) error {
	if !s.out.Scan() {
		return fmt.Errorf("onnxruntime runner ended: %v %s", s.out.Err(), s.errs.String())
	}
	var e struct{ Error string }
	if err := json.Unmarshal(s.out.Bytes(), &e); err == nil && e.Error != "" {
		return fmt.Errorf("onnxruntime: %s", e.Error)
	}
	return json.Unmarshal(s.out.Bytes(), v)
}

func (s *Session) ask(cmd string, v any) error {
	if _, err := io.WriteString(s.in, cmd+"\n"); err != nil {
		return err
	}
	return s.read(v)
}

// Run runs n inferences and returns each one's seconds.
func (s *Session) Run(n int) ([]float64, error) {
	var r struct{ Seconds []float64 }
	if err := s.ask(fmt.Sprintf(`{"run": %d}`, n), &r); err != nil {
		return nil, err
	}
	if len(r.Seconds) != n {
		return nil, fmt.Errorf("onnxruntime ran %d of %d inferences", len(r.Seconds), n)
	}
	return r.Seconds, nil
}

// Logits runs one inference and returns the model's output: the logits of
// the batch, image after image.
func (s *Session) Logits() ([]float32, error) {
	var r struct{ Logits []float32 }
	if err := s.ask(`{"logits": 1}`, &r); err != nil {
		return nil, err
	}
	return r.Logits, nil
}

// Profile runs n inferences with ORT's profiler and returns the seconds a
// run spends in each graph node, by node name.
func (s *Session) Profile(n int) (map[string]float64, error) {
	var r struct{ Nodes map[string]float64 }
	if err := s.ask(fmt.Sprintf(`{"profile": %d}`, n), &r); err != nil {
		return nil, err
	}
	return r.Nodes, nil
}

// Pid is the Node.js process's id (e.g. for WaitIdle from another side).
func (s *Session) Pid() int { return s.cmd.Process.Pid }

// Close ends the Node.js process.
func (s *Session) Close() error {
	s.in.Close()
	return s.cmd.Wait()
}
