package ort

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// WaitIdle returns once the runner process has been idle — used at most a
// tenth of a CPU — for idleWindow, or fails after max. ONNX Runtime's
// intra-op workers keep spinning after a run (its default allow_spinning,
// which the runner keeps so ORT runs as its users run it): on a machine
// with as many cores as threads, inferences timed right after an ORT round
// shared their cores with that spin. On a 2-core Zen 5, ResNet-18 on two
// threads took 10–30 ms in the first one to five runs after ORT's round
// against 5.3–5.6 ms in the rest.
func (s *Session) WaitIdle(max time.Duration) error {
	return WaitIdle(s.cmd.Process.Pid, max)
}

// The kernel adds a running thread's time to schedstat at its scheduler
// ticks (every 4 ms at HZ=250), so a window must span several.
const idleWindow = 20 * time.Millisecond

// WaitIdle polls the CPU time of process pid's threads every idleWindow
// until one window adds less than a tenth of it, and fails after max. Where
// /proc/PID/task/*/schedstat cannot be read (not Linux), it sleeps max.
func WaitIdle(pid int, max time.Duration) error {
	start := time.Now()
	last, err := cpuTime(pid)
	if err != nil {
		time.Sleep(max)
		return nil
	}
	for {
		time.Sleep(idleWindow)
		now, err := cpuTime(pid)
		if err != nil {
			return err
		}
		if now-last < idleWindow/10 {
			return nil
		}
		if time.Since(start) > max {
			return fmt.Errorf("process %d still busy after %v (%v of CPU in the last %v)", pid, max, now-last, idleWindow)
		}
		last = now
	}
}

// cpuTime sums the time pid's threads have run, from the first field of
// each /proc/PID/task/TID/schedstat (nanoseconds on a CPU).
func cpuTime(pid int) (time.Duration, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("no schedstat for process %d", pid)
	}
	var sum time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended between Glob and ReadFile
		}
		field, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		ns, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %v", f, b, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}
