package gateway

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// lingerPair returns a lingering server side and its client over loopback TCP.
func lingerPair(t *testing.T, l *lingerListener) (*lingerConn, net.Conn) {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := l.Accept(); ch <- res{c, err} }()
	cl, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	cl.SetDeadline(time.Now().Add(20 * time.Second))
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.c.(*lingerConn), cl
}

func newTestListener(t *testing.T) *lingerListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return newLingerListener(ln)
}

// waitDrains fails the test when the drains do not end in time.
func waitDrains(t *testing.T, l *lingerListener) {
	t.Helper()
	done := make(chan struct{})
	go func() { l.wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("drains did not end")
	}
}

func TestLingerCloseAnswersThenDrains(t *testing.T) {
	l := newTestListener(t)
	sc, cl := lingerPair(t, l)
	sc.Write([]byte("answer"))
	sc.linger.Store(true)
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	// The client reads the answer, then EOF (not a reset) ...
	b, err := io.ReadAll(cl)
	if err != nil || string(b) != "answer" {
		t.Fatalf("read %q, %v; want the answer then EOF", b, err)
	}
	// ... and may go on sending what the server never wanted.
	body := bytes.Repeat([]byte("x"), 1<<20)
	if _, err := cl.Write(body); err != nil {
		t.Fatalf("write after the answer: %v", err)
	}
	cl.Close()
	waitDrains(t, l)
	if got := l.drained.Load(); got != int64(len(body)) {
		t.Fatalf("drained %d bytes, want %d", got, len(body))
	}
}

func TestLingerIsBounded(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		l := newTestListener(t)
		l.maxBytes = 64 << 10
		sc, cl := lingerPair(t, l)
		sc.linger.Store(true)
		sc.Close()
		go cl.Write(make([]byte, 4<<20)) // fails once the server closed
		waitDrains(t, l)
		if got := l.drained.Load(); got < l.maxBytes || got >= l.maxBytes+lingerBufBytes {
			t.Fatalf("drained %d bytes, want %d (and less than one more buffer)", got, l.maxBytes)
		}
	})
	t.Run("time", func(t *testing.T) {
		l := newTestListener(t)
		l.timeout = 50 * time.Millisecond
		sc, _ := lingerPair(t, l)
		sc.linger.Store(true)
		sc.Close() // the client neither sends nor closes: the deadline ends the drain
		waitDrains(t, l)
	})
	t.Run("count", func(t *testing.T) {
		l := newTestListener(t)
		l.slots = make(chan struct{}) // no slot: marked connections close at once
		sc, cl := lingerPair(t, l)
		sc.linger.Store(true)
		sc.Close()
		cl.Read(make([]byte, 1)) // EOF: closed, no drain left running
		waitDrains(t, l)
		if l.drained.Load() != 0 {
			t.Fatal("drained without a slot")
		}
	})
	t.Run("after wait", func(t *testing.T) {
		l := newTestListener(t)
		sc, cl := lingerPair(t, l)
		l.wait()
		sc.linger.Store(true)
		sc.Close() // Serve has returned: closes at once
		cl.Read(make([]byte, 1))
		waitDrains(t, l)
	})
}

// The hooks add no allocation to an ordinary request (auth off), and a
// plain close does not linger.
func TestHeaderHooksDoNotAllocate(t *testing.T) {
	s := &Server{cfg: Config{MaxBodyBytes: 1 << 20}}
	g := newHeaderGate(s)
	var h fasthttp.RequestHeader
	h.SetMethod("POST")
	h.SetRequestURI("/v1/topics/t/records")
	h.SetContentLength(100)
	var ctx fasthttp.RequestCtx
	next := g.handler(func(*fasthttp.RequestCtx) {})
	if n := testing.AllocsPerRun(100, func() {
		g.received(&h)
		next(&ctx)
	}); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

// A Content-Length past the limit drops "Expect: 100-continue", so fasthttp
// answers 413 without inviting the body.
func TestOversizedExpectContinueIsNotInvited(t *testing.T) {
	s := &Server{cfg: Config{MaxBodyBytes: 1 << 20}}
	g := newHeaderGate(s)
	var h fasthttp.RequestHeader
	h.SetMethod("POST")
	h.SetRequestURI("/v1/topics/t/records")
	h.Set("Expect", "100-continue")
	h.SetContentLength(2 << 20)
	g.received(&h)
	if len(h.Peek("Expect")) != 0 {
		t.Fatal("Expect kept on an oversized request")
	}
	h.Set("Expect", "100-continue")
	h.SetContentLength(1 << 10)
	g.received(&h)
	if string(h.Peek("Expect")) != "100-continue" {
		t.Fatal("Expect dropped within the limit")
	}
}

func TestPublicRouteAndPathOf(t *testing.T) {
	s := &Server{}
	for _, tc := range []struct {
		method, uri string
		public      bool
	}{
		{"GET", "/healthz", true},
		{"GET", "/ui/app.js?x=1", true},
		{"HEAD", "/sdk/weir.js", true},
		{"GET", "http://host:8080/demo", true},
		{"POST", "/healthz", false},
		{"GET", "/ui/../v1/topics", false},
		{"GET", "/v1/topics", false},
		{"GET", "/uix", false},
	} {
		if got := s.publicRoute([]byte(tc.method), pathOf([]byte(tc.uri))); got != tc.public {
			t.Errorf("%s %s: public %v, want %v", tc.method, tc.uri, got, tc.public)
		}
	}
}
