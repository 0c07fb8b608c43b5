package netfault_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/netfault"
)

// target is a server that records what each connection sent and hands its
// connections to the test.
type target struct {
	ln    net.Listener
	conns chan net.Conn
	mu    sync.Mutex
	got   bytes.Buffer
	wg    sync.WaitGroup
}

func newTarget(t *testing.T) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{ln: ln, conns: make(chan net.Conn, 16)}
	tg.wg.Add(1)
	go func() {
		defer tg.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.conns <- c
			tg.wg.Add(1)
			go func() {
				defer tg.wg.Done()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					tg.mu.Lock()
					tg.got.Write(buf[:n])
					tg.mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-tg.conns:
				c.Close()
				continue
			default:
			}
			break
		}
		tg.wg.Wait()
	})
	return tg
}

func (tg *target) received() string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.got.String()
}

// next is the target side of the next connection the proxy opens.
func (tg *target) next(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-tg.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy opened no connection to the target")
		return nil
	}
}

func startProxy(t *testing.T, targetAddr string) *netfault.Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := netfault.New(netfault.Config{Listener: ln, Target: targetAddr})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	t.Cleanup(func() {
		p.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, p *netfault.Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond with a deadline (a fence, not a sleep).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf)
}

// closedByPeer asserts that c ends (EOF or reset) without delivering data.
func closedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 16))
	var ne net.Error
	if n > 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("want the connection closed, got %d bytes, err %v", n, err)
	}
}

func TestForwardsBothWays(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	p := startProxy(t, tg.ln.Addr().String())
	c := dial(t, p)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	s := tg.next(t)
	eventually(t, "ping at the target", func() bool { return tg.received() == "ping" })
	s.Write([]byte("pong"))
	if got := readN(t, c, 4); got != "pong" {
		t.Fatalf("got %q", got)
	}
	// The writer counts bytes after its Write returns, which may be after
	// the client has read them: wait for the count (a fence).
	eventually(t, "4 bytes counted each way", func() bool {
		st := p.Stats()
		return st.Passed.Up == 4 && st.Passed.Down == 4
	})
	if st := p.Stats(); st.Passed.Up != 4 || st.Passed.Down != 4 || st.Accepted != 1 || st.Open != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCutResetsAndRefuses(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	p := startProxy(t, tg.ln.Addr().String())
	c := dial(t, p)
	c.Write([]byte("a"))
	tg.next(t)
	eventually(t, "a at the target", func() bool { return tg.received() == "a" })

	p.Cut()
	closedByPeer(t, c) // the open connection is reset
	closedByPeer(t, dial(t, p))
	eventually(t, "the refusal counted", func() bool { return p.Stats().Refused == 1 })

	p.Heal()
	c2 := dial(t, p)
	c2.Write([]byte("b"))
	s := tg.next(t)
	eventually(t, "b at the target", func() bool { return tg.received() == "ab" })
	s.Write([]byte("c"))
	if got := readN(t, c2, 1); got != "c" {
		t.Fatalf("got %q after heal", got)
	}
}

func TestDropIsABlackHole(t *testing.T) {
	for _, d := range []netfault.Direction{netfault.Up, netfault.Down} {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			tg := newTarget(t)
			p := startProxy(t, tg.ln.Addr().String())
			c := dial(t, p)
			c.Write([]byte("1"))
			s := tg.next(t)
			eventually(t, "1 at the target", func() bool { return tg.received() == "1" })

			p.Drop(d)
			if d == netfault.Up {
				c.Write([]byte("2")) // the writer sees success
				eventually(t, "2 dropped", func() bool { return p.Stats().Dropped.Up == 1 })
				s.Write([]byte("3")) // the other direction still flows
				if got := readN(t, c, 1); got != "3" {
					t.Fatalf("got %q", got)
				}
			} else {
				s.Write([]byte("2"))
				eventually(t, "2 dropped", func() bool { return p.Stats().Dropped.Down == 1 })
				c.Write([]byte("3"))
				eventually(t, "3 at the target", func() bool { return tg.received() == "13" })
			}

			p.Heal() // the connection has a hole: closed
			closedByPeer(t, c)
			if d == netfault.Up && tg.received() != "1" {
				t.Fatalf("the target got %q", tg.received())
			}
			c2 := dial(t, p) // new connections flow
			c2.Write([]byte("4"))
			tg.next(t)
			eventually(t, "4 at the target", func() bool { return bytes.HasSuffix([]byte(tg.received()), []byte("4")) })
		})
	}
}

func TestDelayHoldsBytes(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	p := startProxy(t, tg.ln.Addr().String())
	c := dial(t, p)
	c.Write([]byte("x"))
	s := tg.next(t)
	eventually(t, "x at the target", func() bool { return tg.received() == "x" })

	const by = 150 * time.Millisecond
	p.Delay(netfault.Down, by)
	sent := time.Now()
	s.Write([]byte("y"))
	if got := readN(t, c, 1); got != "y" {
		t.Fatalf("got %q", got)
	}
	if el := time.Since(sent); el < by {
		t.Fatalf("delivered after %v, want at least %v", el, by)
	}
	// Up was not delayed, and bytes keep their order.
	p.Delay(netfault.Up, by)
	sent = time.Now()
	c.Write([]byte("z"))
	c.Write([]byte("w"))
	eventually(t, "zw at the target", func() bool { return tg.received() == "xzw" })
	if el := time.Since(sent); el < by {
		t.Fatalf("delivered after %v, want at least %v", el, by)
	}
}

func TestCloseStopsRunAndConnections(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := netfault.New(netfault.Config{Listener: ln, Target: tg.ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	c := dial(t, p)
	tg.next(t)
	p.Close() // waits for every goroutine
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := p.Stats(); st.Open != 0 {
		t.Fatalf("%d connections open after Close", st.Open)
	}
	closedByPeer(t, c)
	if err := p.Run(context.Background()); !errors.Is(err, netfault.ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
}

func TestRunEndsWithContext(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := netfault.New(netfault.Config{Listener: ln, Target: tg.ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	c := dial(t, p)
	tg.next(t)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	closedByPeer(t, c)
	p.Close()
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for name, cfg := range map[string]netfault.Config{
		"no listener": {Target: "127.0.0.1:1"},
		"no target":   {Listener: ln},
		"bad chunk":   {Listener: ln, Target: "127.0.0.1:1", ChunkSize: -1},
	} {
		if _, err := netfault.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// Close while the dial to the target is under way: the connection the dial
// returns afterwards is closed, and Close returns (it waited forever when
// the pair attached a target connection after being closed).
func TestCloseDuringDial(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dialing, release := make(chan struct{}), make(chan struct{})
	p, err := netfault.New(netfault.Config{Listener: ln, Target: tg.ln.Addr().String(),
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			close(dialing)
			<-release
			var d net.Dialer
			return d.DialContext(context.Background(), "tcp", addr)
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	c := dial(t, p)
	<-dialing
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	closedByPeer(t, c) // fence: Close has closed the pair's client side
	close(release)     // the dial now returns a live connection
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return after a dial that finished during it")
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
