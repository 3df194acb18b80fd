package enginetest

import (
	"bytes"
	"context"
	"fmt"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// Goroutines tells the goroutines a test started — itself, or through
// goroutines it started — from every other (an earlier test's still
// exiting, the runtime's, the testing package's): they inherit a profiler
// label from the test's goroutine. Counting them instead of comparing
// runtime.NumGoroutine with a baseline keeps a leak check exact whatever
// else the process runs.
type Goroutines struct{ label string }

var trackers atomic.Int64

// TrackGoroutines labels t's goroutine until t ends; goroutines it starts
// from now on are counted by Count. Call it from t's goroutine.
func TrackGoroutines(t testing.TB) *Goroutines {
	g := &Goroutines{label: fmt.Sprintf("%s#%d", t.Name(), trackers.Add(1))}
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("enginetest", g.label)))
	t.Cleanup(func() { pprof.SetGoroutineLabels(context.Background()) })
	return g
}

// Count returns how many of the tracked goroutines other than the caller
// have a frame whose function contains fn ("" for any), and their records
// of the goroutine profile (debug=1: "N @ …", "# labels: {…}", "#\tPC\tfunc…").
func (g *Goroutines) Count(t testing.TB, fn string) (int, string) {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, pprof.Lookup("goroutine").WriteTo(&b, 1))
	records := strings.Split(b.String(), "\n\n") // the first after a header line
	require.Greater(t, len(records), 1, "a goroutine profile: %q", b.String())
	n, matched := 0, ""
	for _, r := range records {
		if !strings.Contains(r, strconv.Quote("enginetest")+":"+strconv.Quote(g.label)) ||
			strings.Contains(r, "runtime/pprof.writeGoroutine") || // the caller, writing this profile
			!strings.Contains(r, fn) {
			continue
		}
		c := 0
		for _, line := range strings.Split(r, "\n") {
			if count, _, ok := strings.Cut(line, " @ "); ok {
				var err error
				c, err = strconv.Atoi(count)
				require.NoError(t, err, "a profile record: %q", r)
			}
		}
		require.Positive(t, c, "a profile record: %q", r)
		n += c
		matched += r + "\n\n"
	}
	return n, matched
}
