package server

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
	"go.uber.org/goleak"
)

// TestNodeCloseLeavesNoGoroutine runs a node through every kind of
// long-running work it starts — produce, a long-poll fetch left waiting, a
// WebSocket subscription left open, a consumer group member, a queue
// subscription with a lease out, a running Wasm pipeline — then closes it,
// and checks that Close waited for every goroutine the node started (issue
// 19: one lifecycle). goleak retries until the goroutines are gone (with
// backoff, for a few seconds); the goroutines alive before the node started (the test
// runner's) are ignored.
func TestNodeCloseLeavesNoGoroutine(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	s := startNode(t, t.TempDir())
	u := s.URL()
	createTopic(t, u, "src", 2)
	createTopic(t, u, "dst", 1)
	uploadModule(t, u, "pass", "examples/passthrough")
	createPipeline(t, u, map[string]any{"name": "p", "module": "pass", "inputs": []string{"src"}, "outputs": []string{"dst"}})
	produce(t, u, "src", map[string]any{"value": "a"}, map[string]any{"value": "b"})
	waitCaughtUp(t, u, "p")

	// A long-poll fetch at the end of the log, still waiting at Close.
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		if resp, err := http.Get(u + "/v1/topics/dst/partitions/0/records?offset=2&wait_ms=30000"); err == nil {
			resp.Body.Close()
		}
	}()
	// A WebSocket subscription with records delivered, left open.
	c := dialWS(t, u, "/v1/ws", nil)
	c.send(map[string]any{"op": "subscribe", "id": "w", "topic": "src", "partition": 0, "from": "earliest"})
	c.expect(0, "subscribed", "w")
	// A group member, and a queue subscription with a message leased.
	if r := tu.Do(t, "POST", u+"/v1/groups/g/members", map[string]any{"topics": []string{"src"}, "session_timeout_ms": 30000}); r.Status != 200 && r.Status != 201 {
		t.Fatalf("join: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", u+"/v1/topics/src/subscriptions", map[string]any{"name": "q"}); r.Status != 201 {
		t.Fatalf("subscription: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 20*time.Second, "a leased message", func() bool {
		var got struct {
			Messages []json.RawMessage `json:"messages"`
		}
		tu.Do(t, "POST", u+"/v1/topics/src/subscriptions/q/receive", map[string]any{"max_records": 1, "wait_ms": 0}).JSON(t, &got)
		return len(got.Messages) == 1
	})

	stop(t, s)
	// Close waited: not one goroutine of Weir's code is left the moment it
	// returns (the test's own goroutines aside). The check below then
	// also covers libraries' goroutines, allowing them to wind down.
	if left := weirGoroutines(); len(left) > 0 {
		t.Fatalf("Close returned with %d goroutines of Weir still running:\n%s", len(left), strings.Join(left, "\n\n"))
	}
	<-polled
	c.conn.Close()
	<-c.done
	goleak.VerifyNone(t, ignore,
		// fasthttp's clock for Date headers: one per process, started once.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// fasthttp's idle-worker cleaner sees the pool's stop only when it
		// wakes from its sleep (MaxIdleWorkerDuration, 10 s): it ends by
		// itself, after Close returned.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
}

// weirGoroutines returns the stacks of goroutines running Weir's product
// code (a frame of the module outside a _test.go file, none in one).
func weirGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "_test.go") || !strings.Contains(g, "github.com/weir-broker/weir/") {
			continue
		}
		out = append(out, g)
	}
	return out
}
