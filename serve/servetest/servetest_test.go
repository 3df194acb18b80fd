package servetest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// fatal records what a test would have failed with, and ends the
// goroutine as t.Fatalf does.
type fatal struct {
	testing.TB
	msg string
}

func (f *fatal) Helper() {}

func (f *fatal) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls body with a recording TB on a goroutine of its own (Fatalf
// ends that goroutine) and returns what it failed with ("" if nothing).
func run(t *testing.T, body func(tb testing.TB)) string {
	f := &fatal{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(f)
	}()
	<-done
	return f.msg
}

// A wait that ends in time passes; one that does not fails after its
// bound, naming what it waited for and showing where every goroutine
// stood, the stuck one included.
func TestWithinFailsWithEveryStack(t *testing.T) {
	assert.Empty(t, run(t, func(tb testing.TB) { Within(tb, time.Minute, "a quick wait", func() {}) }))
	stuck := make(chan struct{})
	defer close(stuck)
	start := time.Now()
	msg := run(t, func(tb testing.TB) { Within(tb, 50*time.Millisecond, "the stuck wait", func() { <-stuck }) })
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Contains(t, msg, "the stuck wait: not done after 50ms")
	assert.Contains(t, msg, "servetest.TestWithinFailsWithEveryStack", "the stuck goroutine's stack")
}

// A client's own timeout is told from a refused connection.
func TestIsTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	_, err := (&http.Client{Timeout: 50 * time.Millisecond}).Get(srv.URL)
	require.Error(t, err)
	assert.True(t, IsTimeout(err), "%v", err)
	_, err = Client(nil).Get("http://127.0.0.1:1")
	require.Error(t, err)
	assert.False(t, IsTimeout(err), "%v", err)
	assert.False(t, IsTimeout(nil))
	assert.Equal(t, Timeout, Client(nil).Timeout)
}

// A call without a deadline gets one; an earlier one is kept.
func TestDeadline(t *testing.T) {
	var got time.Time
	var ok bool
	invoker := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		got, ok = ctx.Deadline()
		return nil
	}
	require.NoError(t, deadline(context.Background(), "/m", nil, nil, nil, invoker))
	require.True(t, ok, "a call without a deadline")
	assert.WithinDuration(t, time.Now().Add(Timeout), got, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	want, _ := ctx.Deadline()
	require.NoError(t, deadline(ctx, "/m", nil, nil, nil, invoker))
	assert.Equal(t, want, got, "an earlier deadline is kept")
}
