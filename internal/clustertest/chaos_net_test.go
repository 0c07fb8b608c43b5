//go:build chaos && linux

package clustertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weir-broker/weir/internal/netfault"
)

// Network partitions between `weir serve` processes.
//
// A node cannot be pointed at a proxy by address: its Raft address is both
// what Dragonboat binds (NodeHostConfig.RaftAddress, no separate listen
// address) and what it registers in the metadata, from which every
// partition's Raft membership is built; its HTTP address is its bound
// listener's, also registered; and --peers must give a node its own
// --raft-addr. So the harness changes the network instead of the addresses:
// every node runs in a network namespace of its own (a loopback of its own),
// and inside node i's namespace a netfault.Proxy listens on each other node
// j's Raft and HTTP addresses and forwards to them in j's namespace. Node i
// dials j's real address and reaches the proxy of the directed link i→j,
// which can cut, drop or delay it. In the test's own namespace a proxy on
// each node's HTTP address forwards the clients' requests.
//
// Namespaces need CAP_SYS_ADMIN (root, or `unshare -r`); without it the run
// has no partitions and says so.

// nsOps switches OS threads between network namespaces. A goroutine locked
// to a thread enters a namespace, does its work (a listener or socket made
// there stays there; a child process started there is born there), and
// returns to the root namespace, or lets the thread die if it cannot.
type nsOps struct{ root *os.File }

func newNSOps() (*nsOps, error) {
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	return &nsOps{root: f}, nil
}

// in runs fn on a locked thread inside ns (nil: a new namespace, whose
// handle fn can open at /proc/thread-self/ns/net).
func (o *nsOps) in(ns *os.File, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked on failure: the thread dies with the goroutine
		var err error
		if ns == nil {
			err = unix.Unshare(unix.CLONE_NEWNET)
		} else {
			err = unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET)
		}
		if err == nil {
			err = fn()
		}
		if unix.Setns(int(o.root.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// newNS makes a network namespace with its loopback up.
func (o *nsOps) newNS() (*os.File, error) {
	var f *os.File
	err := o.in(nil, func() error {
		var err error
		if f, err = os.Open("/proc/thread-self/ns/net"); err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
	})
	if err != nil && f != nil {
		f.Close()
	}
	return f, err
}

// link is one directed link: from node (0: the test's clients) to node to,
// on its Raft, HTTP or Kafka port.
type link struct {
	from, to int
	port     string // "raft", "http" or "kafka" (from the clients only)
}

func (l link) String() string { return fmt.Sprintf("%d→%d/%s", l.from, l.to, l.port) }

// chaosNet is the cluster's processes in their namespaces, wired by proxies.
type chaosNet struct {
	t       *testing.T
	c       *cluster
	ops     *nsOps
	ns      []*os.File // ns[i-1] is node i's
	proxies map[link]*netfault.Proxy
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// raftAddr is node's --raft-addr.
func (c *cluster) raftAddr(node int) string {
	if a := c.flag(node, "--raft-addr"); a != "" {
		return a
	}
	c.t.Fatalf("node %d has no --raft-addr", node)
	return ""
}

// flag is the value node was started with for flag (the last one given),
// "" if none.
func (c *cluster) flag(node int, flag string) string {
	args, v := c.procs[node-1].Args, ""
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			v = args[i+1]
		}
	}
	return v
}

// isolateCluster moves the running cluster c into one namespace per node:
// it kills every node, sets up the namespaces and proxies, and starts the
// nodes again, each in its namespace, on the same data and addresses.
func isolateCluster(t *testing.T, c *cluster) (*chaosNet, error) {
	ops, err := newNSOps()
	if err != nil {
		return nil, err
	}
	n := &chaosNet{t: t, c: c, ops: ops, proxies: map[link]*netfault.Proxy{}}
	t.Cleanup(n.close)
	for range c.procs {
		f, err := ops.newNS()
		if err != nil {
			return nil, fmt.Errorf("network namespace: %w", err)
		}
		n.ns = append(n.ns, f)
	}
	for _, p := range c.procs {
		p.Kill() // frees the HTTP addresses in the root namespace for the client proxies
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	addr := func(node int, port string) string {
		switch port {
		case "raft":
			return c.raftAddr(node)
		case "kafka":
			return c.flag(node, "--kafka-addr")
		}
		return c.procs[node-1].HTTPAddr
	}
	for to := 1; to <= len(c.procs); to++ {
		for from := 0; from <= len(c.procs); from++ {
			for _, port := range []string{"raft", "http", "kafka"} {
				// Nodes reach each other's Raft and HTTP ports; the
				// clients reach HTTP and (where it listens) Kafka.
				if from == to || from == 0 && port == "raft" || port == "kafka" && (from != 0 || addr(to, port) == "") {
					continue
				}
				if err := n.addProxy(ctx, link{from, to, port}, addr(to, port)); err != nil {
					return nil, err
				}
			}
		}
	}
	for i, p := range c.procs {
		if err := ops.in(n.ns[i], func() error { p.Restarted(); return nil }); err != nil {
			return nil, err
		}
	}
	for _, p := range c.procs {
		p.WaitReady(90 * time.Second)
	}
	return n, nil
}

// addProxy listens on addr in l.from's namespace and forwards to addr in
// l.to's.
func (n *chaosNet) addProxy(ctx context.Context, l link, addr string) error {
	var from *os.File
	if l.from > 0 {
		from = n.ns[l.from-1]
	}
	var ln net.Listener
	listen := func() (err error) { ln, err = net.Listen("tcp", addr); return err }
	var err error
	if from == nil {
		err = listen()
	} else {
		err = n.ops.in(from, listen)
	}
	if err != nil {
		return fmt.Errorf("proxy %v: %w", l, err)
	}
	to := n.ns[l.to-1]
	p, err := netfault.New(netfault.Config{Listener: ln, Target: addr,
		Dial: func(ctx context.Context, addr string) (c net.Conn, err error) {
			err = n.ops.in(to, func() error {
				d := net.Dialer{Timeout: 5 * time.Second}
				c, err = d.DialContext(ctx, "tcp", addr)
				return err
			})
			return c, err
		}})
	if err != nil {
		ln.Close()
		return err
	}
	n.proxies[l] = p
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := p.Run(ctx); err != nil {
			n.t.Errorf("proxy %v: %v", l, err)
		}
	}()
	return nil
}

// restart starts a killed node again in its namespace (without waiting).
func (n *chaosNet) restart(node int) {
	n.t.Helper()
	if err := n.ops.in(n.ns[node-1], func() error { n.c.procs[node-1].Restarted(); return nil }); err != nil {
		n.t.Fatalf("restart node %d in its namespace: %v", node, err)
	}
}

// links returns the node-to-node links that touch node: out of it
// (outgoing) and into it (incoming).
func (n *chaosNet) links(node int, outgoing, incoming bool) []*netfault.Proxy {
	var out []*netfault.Proxy
	for l, p := range n.proxies {
		if l.from == 0 {
			continue
		}
		if outgoing && l.from == node || incoming && l.to == node {
			out = append(out, p)
		}
	}
	return out
}

// heal ends every fault on every link.
func (n *chaosNet) heal() {
	for _, p := range n.proxies {
		p.Heal()
	}
}

func (n *chaosNet) close() {
	if n.cancel != nil {
		n.cancel()
	}
	for _, p := range n.proxies {
		p.Close()
	}
	n.wg.Wait()
	for _, f := range n.ns {
		f.Close()
	}
	n.ops.root.Close()
}

// restarter starts a killed node again: in its namespace when the cluster
// has them.
func restarter(n *chaosNet, c *cluster) func(node int) {
	if n == nil {
		return func(node int) { c.procs[node-1].Restarted() }
	}
	return n.restart
}

// dial connects to addr from node's namespace (a node's test-fault control
// listener is there, on its own loopback).
func (n *chaosNet) dial(node int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = n.ops.in(n.ns[node-1], func() error {
			d := net.Dialer{Timeout: 5 * time.Second}
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}
