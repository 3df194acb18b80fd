package ort

import (
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// spin keeps one goroutine on a CPU until stop is set.
func spin(stop *atomic.Bool) {
	for x := 0; !stop.Load(); x++ {
		runtime.KeepAlive(x)
	}
}

func TestWaitIdleWaitsForASpinToEnd(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	var stop atomic.Bool
	go spin(&stop)
	time.AfterFunc(150*time.Millisecond, func() { stop.Store(true) })
	start := time.Now()
	require.NoError(t, WaitIdle(os.Getpid(), 10*time.Second))
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "returned while a goroutine still spun")
}

func TestWaitIdleFailsOnABusyProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	var stop atomic.Bool
	defer stop.Store(true)
	go spin(&stop)
	require.ErrorContains(t, WaitIdle(os.Getpid(), 200*time.Millisecond), "still busy")
}

// A spinning thread that waits for a core (a shared machine) can add
// nothing to its schedstat for a window, then a whole window's worth at
// once: one quiet window is not idleness; idleWindows in a row are. The
// demand here is scripted, window by window, so the test does not depend
// on the machine's load.
func TestWaitIdleNeedsQuietWindowsInARow(t *testing.T) {
	busy, quiet := idleWindow, time.Duration(0)
	for _, c := range []struct {
		name    string
		windows []time.Duration // demand added in each window
		want    int             // windows waited before returning (0: fails)
	}{
		{"idle from the start", []time.Duration{quiet, quiet, quiet}, 3},
		{"a spinner starved for one window", []time.Duration{busy, quiet, busy, quiet, quiet, busy, quiet, quiet, quiet}, 9},
		{"busy to the end", []time.Duration{busy, quiet, quiet, busy, quiet, quiet, busy, quiet, quiet, busy, quiet, quiet}, 0},
	} {
		var total time.Duration
		n := 0
		demand := func() (time.Duration, error) {
			if n > 0 {
				total += c.windows[n-1]
			}
			return total, nil
		}
		sleep := func(time.Duration) {
			n++
			require.LessOrEqual(t, n, len(c.windows), "%s: waited past the script", c.name)
		}
		err := waitIdle(demand, sleep, time.Duration(len(c.windows)-1)*idleWindow, "the script")
		if c.want == 0 {
			require.ErrorContains(t, err, "still busy", c.name)
			continue
		}
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, n, "%s: windows waited", c.name)
	}
}

func TestCPUDemandOfAnEndedProcessIsAnError(t *testing.T) {
	_, err := cpuDemand(1 << 30)
	require.Error(t, err)
}
