package gateway

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Lingering close (issue 12, finding 8).
//
// When the gateway answers before it has read the whole request (413 from
// Content-Length, a chunked body past the limit, a 401 from the headers, a
// malformed request), the client may still be sending. Closing a socket
// with unread bytes, or with bytes still arriving, makes the kernel send a
// TCP reset, and a client that had not yet read the answer sees
// "connection reset by peer" instead of it. So such a connection closes
// lingeringly, as nginx and net/http do: shut down the writing side (the
// client reads the answer, then EOF), read and discard what the client
// still sends, up to lingerMaxBytes and lingerTimeout, then close.
//
// Only connections an error answer marks (lingerOnClose) linger: after a
// successful request fasthttp has read the whole body, and keep-alive
// requests pay nothing but one interface call per Read and Write.

const (
	// lingerTimeout bounds one lingering close, from the close to the end
	// of the drain.
	lingerTimeout = 2 * time.Second
	// lingerMaxBytes bounds what one lingering close reads and discards.
	lingerMaxBytes = 4 << 20
	// maxLingering bounds the connections draining at once; past it a
	// marked connection closes at once (and may reset).
	maxLingering = 256
	// lingerBufBytes is the discard buffer of one drain.
	lingerBufBytes = 8 << 10
)

// lingerListener wraps the gateway's listener (plain TCP or TLS): its
// connections close lingeringly when marked. It owns the drain
// goroutines; wait returns when they have all ended.
type lingerListener struct {
	net.Listener
	timeout  time.Duration
	maxBytes int64
	slots    chan struct{} // one per running drain

	mu     sync.Mutex // guards closed and the Add of wg
	closed bool       // set by wait: no new drains
	wg     sync.WaitGroup

	drained atomic.Int64 // bytes discarded by drains (tests read it)
}

func newLingerListener(ln net.Listener) *lingerListener {
	return &lingerListener{Listener: ln, timeout: lingerTimeout, maxBytes: lingerMaxBytes, slots: make(chan struct{}, maxLingering)}
}

// Accept wraps the next connection. A *tls.Conn keeps looking like one to
// fasthttp (ctx.IsTLS, ctx.TLSConnectionState).
func (l *lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*tls.Conn); ok {
		return &lingerTLSConn{lingerConn: lingerConn{Conn: c, l: l}, tc: tc}, nil
	}
	return &lingerConn{Conn: c, l: l}, nil
}

// wait stops new drains and waits for the running ones (each ends within
// its timeout). Serve calls it once fasthttp stopped serving.
func (l *lingerListener) wait() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.wg.Wait()
}

// lingerConn is a connection of lingerListener.
type lingerConn struct {
	net.Conn
	l       *lingerListener
	linger  atomic.Bool // set by lingerOnClose: close lingeringly
	closing atomic.Bool // Close ran
}

// lingerTLSConn is a lingerConn over TLS: fasthttp recognizes TLS by these
// two methods.
type lingerTLSConn struct {
	lingerConn
	tc *tls.Conn
}

func (c *lingerTLSConn) Handshake() error                     { return c.tc.Handshake() }
func (c *lingerTLSConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// ReadFrom keeps sendfile for file bodies on plain TCP.
func (c *lingerConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

type writerOnly struct{ io.Writer }

// lingerOnClose marks the connection of ctx to close lingeringly: call it
// when answering before the request was read in full (fasthttp closes the
// connection after an error answer).
func lingerOnClose(ctx *fasthttp.RequestCtx) {
	switch c := ctx.Conn().(type) {
	case *lingerConn:
		c.linger.Store(true)
	case *lingerTLSConn:
		c.linger.Store(true)
	}
}

// halfCloser is a connection whose writing side shuts down alone.
type halfCloser interface{ CloseWrite() error }

// Close closes at once, or, when marked, shuts down writing and drains in
// a goroutine of the listener, then closes. It never blocks.
func (c *lingerConn) Close() error {
	if c.closing.Swap(true) {
		return nil
	}
	if !c.linger.Load() {
		return c.Conn.Close()
	}
	raw := c.Conn
	var tc *tls.Conn
	if t, ok := raw.(*tls.Conn); ok {
		tc, raw = t, t.NetConn()
	}
	hc, ok := raw.(halfCloser)
	if !ok || !c.l.startDrain() {
		return c.Conn.Close()
	}
	go func() {
		defer c.l.endDrain()
		deadline := time.Now().Add(c.l.timeout)
		raw.SetDeadline(deadline)
		if tc != nil {
			tc.CloseWrite() // close_notify; the tls.Conn sets its own write deadline
		}
		if hc.CloseWrite() == nil {
			c.l.drained.Add(drain(raw, c.l.maxBytes))
		}
		c.Conn.Close() // the tls.Conn does not send close_notify twice
	}()
	return nil
}

// startDrain takes a drain slot; false when all are taken or the listener
// has stopped.
func (l *lingerListener) startDrain() bool {
	select {
	case l.slots <- struct{}{}:
	default:
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		<-l.slots
		return false
	}
	l.wg.Add(1)
	return true
}

func (l *lingerListener) endDrain() {
	<-l.slots
	l.wg.Done()
}

// drain reads and discards from r until EOF, an error (the deadline) or
// max bytes; it returns the bytes read.
func drain(r io.Reader, max int64) int64 {
	buf := make([]byte, lingerBufBytes)
	var n int64
	for n < max {
		k, err := r.Read(buf)
		n += int64(k)
		if err != nil {
			break
		}
	}
	return n
}
