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
	require.NoError(t, WaitIdle(os.Getpid(), 2*time.Second))
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "returned while a goroutine still spun")
}

func TestWaitIdleFailsOnABusyProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	var stop atomic.Bool
	defer stop.Store(true)
	go spin(&stop)
	require.ErrorContains(t, WaitIdle(os.Getpid(), 100*time.Millisecond), "still busy")
}

func TestCPUTimeOfAnEndedProcessIsAnError(t *testing.T) {
	_, err := cpuTime(1 << 30)
	require.Error(t, err)
}
