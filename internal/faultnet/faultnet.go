// Package faultnet is a fault-injecting Raft transport for tests: it wraps
// Dragonboat's in-process channel transport (plugin/chan) and drops the
// messages between nodes a test has cut apart, in both directions. Plug it
// in through raftlog.Config.TransportFactory; every NodeHost of the test
// must use the same Net, in one process.
//
//	n := faultnet.New()
//	cfg.Raft.TransportFactory = n.Factory()
//	...
//	n.Isolate(leaderRaftAddr) // the leader can neither send nor receive
//	n.Heal()
package faultnet

import (
	"context"
	"errors"
	"sync"

	"github.com/lni/dragonboat/v4/config"
	transport "github.com/lni/dragonboat/v4/plugin/chan"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// ErrCut is returned for a snapshot chunk sent across a cut.
var ErrCut = errors.New("faultnet: link is cut")

// Net holds the cuts between Raft addresses and counts the messages sent
// across it by type. Safe for concurrent use.
type Net struct {
	mu       sync.RWMutex
	isolated map[string]bool
	sent     map[pb.MessageType]int // messages delivered, by type
}

// New returns a network with no cuts.
func New() *Net { return &Net{isolated: map[string]bool{}, sent: map[pb.MessageType]int{}} }

// Sent is how many messages of type t crossed the network uncut so far
// (e.g. pb.Quiesce: a leader told its followers its group went quiet).
func (n *Net) Sent(t pb.MessageType) int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.sent[t]
}

func (n *Net) count(b pb.MessageBatch) {
	n.mu.Lock()
	for _, m := range b.Requests {
		n.sent[m.Type]++
	}
	n.mu.Unlock()
}

// Isolate cuts addr off from every other address.
func (n *Net) Isolate(addr string) {
	n.mu.Lock()
	n.isolated[addr] = true
	n.mu.Unlock()
}

// Heal removes every cut.
func (n *Net) Heal() {
	n.mu.Lock()
	n.isolated = map[string]bool{}
	n.mu.Unlock()
}

func (n *Net) cut(from, to string) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return from != to && (n.isolated[from] || n.isolated[to])
}

// Factory returns the TransportFactory for raftlog.Config.
func (n *Net) Factory() config.TransportFactory { return &factory{n: n} }

type factory struct{ n *Net }

func (f *factory) Create(cfg config.NodeHostConfig, h raftio.MessageHandler, ch raftio.ChunkHandler) raftio.ITransport {
	self := cfg.RaftAddress
	in := func(b pb.MessageBatch) {
		if f.n.cut(b.SourceAddress, self) {
			return
		}
		h(b)
	}
	return &trans{ITransport: transport.NewChanTransport(cfg, in, ch), n: f.n, self: self}
}

func (f *factory) Validate(string) bool { return true }

type trans struct {
	raftio.ITransport
	n    *Net
	self string
}

func (t *trans) GetConnection(ctx context.Context, target string) (raftio.IConnection, error) {
	c, err := t.ITransport.GetConnection(ctx, target)
	if err != nil {
		return nil, err
	}
	return &conn{IConnection: c, t: t, target: target}, nil
}

func (t *trans) GetSnapshotConnection(ctx context.Context, target string) (raftio.ISnapshotConnection, error) {
	c, err := t.ITransport.GetSnapshotConnection(ctx, target)
	if err != nil {
		return nil, err
	}
	return &snapConn{ISnapshotConnection: c, t: t, target: target}, nil
}

type conn struct {
	raftio.IConnection
	t      *trans
	target string
}

func (c *conn) SendMessageBatch(b pb.MessageBatch) error {
	if c.t.n.cut(c.t.self, c.target) {
		return nil // dropped on the wire
	}
	c.t.n.count(b)
	return c.IConnection.SendMessageBatch(b)
}

type snapConn struct {
	raftio.ISnapshotConnection
	t      *trans
	target string
}

func (c *snapConn) SendChunk(ch pb.Chunk) error {
	if c.t.n.cut(c.t.self, c.target) {
		return ErrCut
	}
	return c.ISnapshotConnection.SendChunk(ch)
}
