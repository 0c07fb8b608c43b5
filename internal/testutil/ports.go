package testutil

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// Ports for servers that cannot bind port 0.
//
// An HTTP listener started in process binds 127.0.0.1:0 and reports its
// address (server.Server.Addr); that is always the first choice. A Raft
// address cannot be chosen that way: Dragonboat binds it itself, and it is
// part of the node's identity for the life of its data directory (a node
// restarts on the same address). The same holds for the HTTP address of a
// `weir serve` child process, which tests must know before it starts.
//
// The old way — bind :0, close, hand out the port — is racy: the port comes
// from the kernel's ephemeral range, and until the server binds it, any
// outgoing connection or any other test's :0 listener on the machine may get
// it ("address already in use", or a node dialling the wrong process).
//
// FreePort therefore hands out ports from outside the ephemeral range
// (net.ipv4.ip_local_port_range), which the kernel never assigns on its
// own, in blocks of portBlock reserved per test process: a process owns a
// block while it holds an exclusive flock on a file named for the block in
// $TMPDIR/weir-test-ports. The lock goes with the process, even on kill -9,
// so blocks are never leaked. Each port is handed out once per process and
// checked with a bind first (a foreign program may still sit on it). Two
// test processes never get the same port, and nothing else takes it.
const (
	portBlock = 64
	portLow   = 20000 // below Linux's default ephemeral range (32768–60999)
)

var ports struct {
	mu        sync.Mutex
	next, end int // next port to try in the current block, end of the block
	nextBlock int // next block start to try to claim
	lo, hi    int // the range blocks come from
	locks     []*os.File
	inited    bool
	exhausted bool
}

// portRange picks the range reserved ports come from: below the ephemeral
// range if there is room, else above it.
func portRange() (lo, hi int) {
	elo, ehi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var a, z int
		if n, _ := fmt.Sscan(string(b), &a, &z); n == 2 {
			elo, ehi = a, z
		}
	}
	switch {
	case elo-portLow >= 16*portBlock:
		return portLow, elo
	case 65535-ehi >= 16*portBlock:
		return ehi + 1, 65536
	default: // no room outside: blocks still keep test processes apart
		return portLow, 65536
	}
}

// claimBlock takes the next free block; ports.mu is held.
func claimBlock() error {
	if !ports.inited {
		ports.lo, ports.hi = portRange()
		n := (ports.hi - ports.lo) / portBlock
		ports.nextBlock = ports.lo + (os.Getpid()%n)*portBlock // spread processes out
		ports.inited = true
	}
	dir := filepath.Join(os.TempDir(), "weir-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	n := (ports.hi - ports.lo) / portBlock
	for i := 0; i < n; i++ {
		start := ports.nextBlock
		ports.nextBlock += portBlock
		if ports.nextBlock+portBlock > ports.hi {
			ports.nextBlock = ports.lo
		}
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.lock", start)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue // another test process owns it
		}
		ports.locks = append(ports.locks, f) // held until the process exits
		ports.next, ports.end = start, start+portBlock
		return nil
	}
	return fmt.Errorf("testutil: every block of %d ports in %d–%d is held by another test process", portBlock, ports.lo, ports.hi-1)
}

// FreePort returns a TCP port on 127.0.0.1 reserved for this test process
// (see above): free now, outside the kernel's ephemeral range, never given
// to another test process nor twice in this one. Safe for concurrent use.
func FreePort(t testing.TB) int {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	for tries := 0; tries < 1<<14; tries++ {
		if ports.next >= ports.end {
			if err := claimBlock(); err != nil {
				t.Fatal(err)
			}
		}
		p := ports.next
		ports.next++
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // a foreign program holds it
		}
		ln.Close()
		return p
	}
	t.Fatal("testutil: no free reserved port")
	return 0
}

// FreeAddr returns "127.0.0.1:PORT" with a port from FreePort. For a
// listener the test starts itself, bind "127.0.0.1:0" instead.
func FreeAddr(t testing.TB) string {
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}
