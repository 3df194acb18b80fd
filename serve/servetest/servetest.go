// Package servetest bounds what the tests of a server wait for, so that a
// server that hangs (a shutdown that never finishes, an answer that never
// comes) fails its test within minutes and says where every goroutine
// stood, instead of holding the test binary until go test's -timeout.
//
// Every HTTP request of a test goes through a Client, every gRPC call
// through a connection dialled with DialOptions (a deadline on calls that
// have none), and every wait for goroutines or processes through Wait or
// Within; Watchdog backs them up for a whole test.
package servetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// Timeout bounds one request or call of a test: far above what any
// answer takes here, even under the race detector on a shared machine.
const Timeout = time.Minute

// Client is an HTTP client whose requests give up after Timeout: connect,
// send, answer and body.
func Client(transport http.RoundTripper) *http.Client {
	return &http.Client{Transport: transport, Timeout: Timeout}
}

// DialOptions gives every unary call of a gRPC connection a deadline of
// Timeout unless it has an earlier one.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithUnaryInterceptor(deadline)}
}

func deadline(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, Timeout)
		defer cancel()
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// IsTimeout reports whether a request failed by the client's own timeout
// (the server did not answer in time), as opposed to a refused or closed
// connection: the one is a server's fault under test, the other an
// expected refusal while it stops.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Stacks returns every goroutine's stack.
func Stacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Within runs f and fails t, with every goroutine's stack, if f has not
// returned after d; f keeps running then (it cannot be stopped), and t
// stops waiting for it.
func Within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: not done after %v; every goroutine:\n%s", what, d, Stacks())
	}
}

// Wait waits for wg as Within waits for a function.
func Wait(t testing.TB, wg *sync.WaitGroup, d time.Duration, what string) {
	t.Helper()
	Within(t, d, what, wg.Wait)
}

// Watchdog ends the test binary if t is still running d from now, after
// writing every goroutine's stack to standard error: the backstop for a
// wait that nothing else bounds. (A test cannot be stopped from another
// goroutine; a panic there ends the process, which go test reports as the
// package's failure.)
func Watchdog(t testing.TB, d time.Duration) {
	name := t.Name()
	timer := time.AfterFunc(d, func() {
		fmt.Fprintf(os.Stderr, "%s: still running after %v; every goroutine:\n%s", name, d, Stacks())
		panic(fmt.Sprintf("servetest: %s still running after %v (its goroutines are printed above)", name, d))
	})
	t.Cleanup(func() { timer.Stop() })
}
