package netfault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Direction names one or both directions of a link's data.
type Direction uint8

const (
	// Up is the data from the connecting side to the target.
	Up Direction = 1 << iota
	// Down is the data from the target back to the connecting side.
	Down
	// Both is Up and Down.
	Both = Up | Down
)

func (d Direction) String() string {
	switch d {
	case Up:
		return "up"
	case Down:
		return "down"
	case Both:
		return "both"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// ErrClosed is returned by Run on a proxy that was already closed.
var ErrClosed = errors.New("netfault: proxy closed")

// Config describes one proxied link.
type Config struct {
	// Listener accepts the connections to forward. Required; the proxy owns
	// it from New on and closes it in Close.
	Listener net.Listener
	// Target is the address connections are forwarded to. Required.
	Target string
	// Dial opens the connection to Target. Default: a net.Dialer on "tcp".
	// Tests that place processes in network namespaces dial from inside the
	// target's namespace here.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// ChunkSize is the most bytes read at once per direction. Default 32 KiB.
	ChunkSize int
}

// Validate reports a config New cannot use.
func (c Config) Validate() error {
	switch {
	case c.Listener == nil:
		return errors.New("netfault: Config.Listener is required")
	case c.Target == "":
		return errors.New("netfault: Config.Target is required")
	case c.ChunkSize < 0:
		return errors.New("netfault: Config.ChunkSize is negative")
	}
	return nil
}

// Stats counts what the proxy did since New.
type Stats struct {
	Accepted int   // connections accepted
	Refused  int   // connections accepted and closed at once (Cut)
	Open     int   // connection pairs open now
	Passed   Bytes // bytes forwarded
	Dropped  Bytes // bytes discarded (Drop, or a Cut in flight)
}

// Bytes is a count per direction.
type Bytes struct{ Up, Down int64 }

func (b *Bytes) add(d Direction, n int) {
	if d == Up {
		b.Up += int64(n)
	} else {
		b.Down += int64(n)
	}
}

// Proxy forwards the connections of one listener to one target, with
// faults. Create it with New.
type Proxy struct {
	cfg  Config
	stop chan struct{} // closed by Close
	wg   sync.WaitGroup

	// mu guards the fault state, the set of open connections, the run and
	// close flags, and the stats. Never held across I/O.
	mu      sync.Mutex
	cut     bool
	drop    Direction
	delay   [2]time.Duration // indexed by dirIndex
	conns   map[*pair]struct{}
	running bool
	closed  bool
	stats   Stats
}

// pair is one accepted connection and its connection to the target.
type pair struct {
	client net.Conn
	lost   Direction // directions that dropped bytes: closed on Heal (guarded by Proxy.mu)

	mu     sync.Mutex // guards server and closed
	server net.Conn   // nil until the dial to the target returns
	closed bool
}

func (c *pair) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	s := c.server
	c.mu.Unlock()
	c.client.Close()
	if s != nil {
		s.Close()
	}
}

// attach sets the target side of the pair. When the pair was closed while
// the dial was under way (a cut, Close), it closes s and reports false: a
// connection attached after close would never be closed.
func (c *pair) attach(s net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		s.Close()
		return false
	}
	c.server = s
	return true
}

func dirIndex(d Direction) int {
	if d == Down {
		return 1
	}
	return 0
}

// New returns a proxy for cfg, with no fault. It starts nothing: Run serves.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = 32 << 10
	}
	return &Proxy{cfg: cfg, stop: make(chan struct{}), conns: map[*pair]struct{}{}}, nil
}

// Addr is the listener's address.
func (p *Proxy) Addr() net.Addr { return p.cfg.Listener.Addr() }

// Run accepts and forwards connections until ctx ends or Close is called,
// then closes the listener and every connection and returns nil (ErrClosed
// if the proxy was closed before Run; an accept error otherwise). Call it
// once.
func (p *Proxy) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if p.running {
		p.mu.Unlock()
		return errors.New("netfault: Run called twice")
	}
	p.running = true
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-p.stop:
		}
		p.cfg.Listener.Close()
	}()
	defer p.closeConns()
	for {
		c, err := p.cfg.Listener.Accept()
		if err != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-p.stop:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("netfault: accept: %w", err)
		}
		p.mu.Lock()
		p.stats.Accepted++
		if p.cut || p.closed {
			p.stats.Refused++
			p.mu.Unlock()
			c.Close()
			continue
		}
		cp := &pair{client: c}
		p.conns[cp] = struct{}{}
		p.stats.Open++
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(ctx, cp)
	}
}

// serve dials the target and pumps both directions until either ends.
func (p *Proxy) serve(ctx context.Context, cp *pair) {
	defer p.wg.Done()
	defer p.forget(cp)
	s, err := p.cfg.Dial(ctx, p.cfg.Target)
	if err != nil {
		cp.close()
		return
	}
	if !cp.attach(s) { // cut or closed while dialling
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pump(cp, Up, cp.client, s) }()
	go func() { defer wg.Done(); p.pump(cp, Down, s, cp.client) }()
	wg.Wait()
}

func (p *Proxy) forget(cp *pair) {
	cp.close()
	p.mu.Lock()
	if _, ok := p.conns[cp]; ok {
		delete(p.conns, cp)
		p.stats.Open--
	}
	p.mu.Unlock()
}

// chunk is bytes read at one time, to be written at due.
type chunk struct {
	b   []byte
	due time.Time
}

// pump copies src to dst in direction d: a reader applies the faults as it
// reads, a writer delivers each chunk when it is due. Either side ending
// closes the pair.
func (p *Proxy) pump(cp *pair, d Direction, src, dst net.Conn) {
	defer cp.close()
	q := make(chan chunk, 64)
	done := make(chan struct{})
	go func() { // writer
		defer close(done)
		defer cp.close()
		for c := range q {
			if wait := time.Until(c.due); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-p.stop:
					t.Stop()
					return
				}
			}
			if _, err := dst.Write(c.b); err != nil {
				return
			}
			p.mu.Lock()
			p.stats.Passed.add(d, len(c.b))
			p.mu.Unlock()
		}
	}()
	defer func() { close(q); <-done }()
	for {
		buf := make([]byte, p.cfg.ChunkSize)
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			// A direction that lost bytes never forwards again: its stream
			// has a hole.
			cut, drop, delay := p.cut, (p.drop|cp.lost)&d != 0, p.delay[dirIndex(d)]
			if cut || drop {
				cp.lost |= d
				p.stats.Dropped.add(d, n)
			}
			p.mu.Unlock()
			if cut {
				return
			}
			if !drop {
				select {
				case q <- chunk{b: buf[:n], due: time.Now().Add(delay)}:
				case <-done: // the writer failed
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// Cut resets every connection and refuses new ones (they are accepted and
// closed at once) until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := p.openLocked()
	p.mu.Unlock()
	for _, cp := range conns {
		cp.close()
	}
}

// Drop discards the bytes read in direction d from now until Heal; the
// connections stay open.
func (p *Proxy) Drop(d Direction) {
	p.mu.Lock()
	p.drop |= d
	p.mu.Unlock()
}

// Delay holds the bytes read in direction d from now for by before
// delivering them (0 stops delaying).
func (p *Proxy) Delay(d Direction, by time.Duration) {
	p.mu.Lock()
	if d&Up != 0 {
		p.delay[0] = by
	}
	if d&Down != 0 {
		p.delay[1] = by
	}
	p.mu.Unlock()
}

// Heal ends every fault: new connections are accepted, bytes flow at once.
// Connections that lost bytes to a Drop are closed.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut, p.drop, p.delay = false, 0, [2]time.Duration{}
	var lost []*pair
	for cp := range p.conns {
		if cp.lost != 0 {
			lost = append(lost, cp)
		}
	}
	p.mu.Unlock()
	for _, cp := range lost {
		cp.close()
	}
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

func (p *Proxy) openLocked() []*pair {
	out := make([]*pair, 0, len(p.conns))
	for cp := range p.conns {
		out = append(out, cp)
	}
	return out
}

func (p *Proxy) closeConns() {
	p.mu.Lock()
	conns := p.openLocked()
	p.mu.Unlock()
	for _, cp := range conns {
		cp.close()
	}
}

// Close stops Run, closes the listener and every connection, and waits for
// every goroutine of the proxy to end. It may be called more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	conns := p.openLocked()
	p.mu.Unlock()
	p.cfg.Listener.Close()
	for _, cp := range conns {
		cp.close()
	}
	p.wg.Wait()
	return nil
}
