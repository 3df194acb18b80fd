package ort

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// WaitIdle returns once the runner process has been idle — asked for at most
// a tenth of a CPU — for idleWindows windows in a row, or fails after max. ONNX Runtime's
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

// idleWindows is how many windows in a row must be quiet. One is not
// enough on a shared machine: a spinning thread that waits for a core
// longer than a window adds its wait only once it runs again, so a single
// window can look idle while the process is not.
const idleWindows = 3

// WaitIdle polls the CPU demand of process pid's threads (the time they
// ran plus the time they waited for a core) every idleWindow until
// idleWindows windows in a row each add less than a tenth of a window, and
// fails after max. Where /proc/PID/task/*/schedstat cannot be read (not
// Linux), it sleeps max.
func WaitIdle(pid int, max time.Duration) error {
	if _, err := cpuDemand(pid); err != nil {
		time.Sleep(max)
		return nil
	}
	return waitIdle(func() (time.Duration, error) { return cpuDemand(pid) }, time.Sleep, max, fmt.Sprintf("process %d", pid))
}

// waitIdle is WaitIdle's loop over demand (a running total), sleeping
// with sleep; it gives up once max has passed or its windows add up to
// more than max.
func waitIdle(demand func() (time.Duration, error), sleep func(time.Duration), max time.Duration, what string) error {
	start := time.Now()
	last, err := demand()
	if err != nil {
		return err
	}
	quiet, waited := 0, time.Duration(0)
	for {
		sleep(idleWindow)
		waited += idleWindow
		now, err := demand()
		if err != nil {
			return err
		}
		if now-last < idleWindow/10 {
			quiet++
		} else {
			quiet = 0
		}
		if quiet == idleWindows {
			return nil
		}
		if waited > max || time.Since(start) > max {
			return fmt.Errorf("%s still busy after %v (%v of CPU in the last %v)", what, max, now-last, idleWindow)
		}
		last = now
	}
}

// cpuDemand sums, over pid's threads, the time each ran and the time it
// waited on a run queue: the first two fields of each
// /proc/PID/task/TID/schedstat (nanoseconds).
func cpuDemand(pid int) (time.Duration, error) {
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
		fields := strings.Fields(string(b))
		if len(fields) < 2 {
			return 0, fmt.Errorf("%s: %q: want at least 2 fields", f, b)
		}
		for _, field := range fields[:2] {
			ns, err := strconv.ParseInt(field, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %q: %v", f, b, err)
			}
			sum += time.Duration(ns)
		}
	}
	return sum, nil
}
