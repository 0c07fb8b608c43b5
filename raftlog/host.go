package raftlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	dbconfig "github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/logger"
	"github.com/lni/dragonboat/v4/plugin/tan"
	"github.com/lni/dragonboat/v4/raftio"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/raftlog/internal/segment"
)

// Config configures a Host. The zero value of every field but NodeID,
// DataDir and RaftAddr has a useful default.
type Config struct {
	NodeID   uint64 // this node's id, ≥ 1; never reused after a node is removed
	DataDir  string // all state: Raft log (LogDB), segments, checkpoints
	RaftAddr string // host:port Raft listens on and peers dial; fixed for the data dir's life
	HTTPAddr string // host:port of this node's gateway, advertised to peers
	// KafkaAddr is the advertised host:port of this node's Kafka listener
	// ("" when off), published in the node's metadata like HTTPAddr.
	KafkaAddr string
	// Peers are the initial members of a new cluster (node id → Raft
	// address), the same map on every initial node. Empty: a single node
	// cluster of this node alone (unless Join).
	Peers map[uint64]string
	// Join says this node is not an initial member: a running cluster
	// admitted it (Cluster.Join on one of its nodes) and it starts its
	// metadata replica as a non-voting member that catches up.
	Join bool
	// MetaVoters is how many nodes vote in the metadata shard: 3 (default)
	// or 5. The lowest ids among Peers start as voters; further nodes hold
	// non-voting copies and are promoted when a voter leaves.
	MetaVoters int
	// Forwarder reaches other nodes (internal/peer's HTTP client). Nil: no
	// forwarding, partitions not hosted here are unavailable.
	Forwarder core.Forwarder

	// RTTMillisecond is the Raft clock tick in ms (default 10). Every
	// replica is stepped once per tick, idle or not: with many partitions
	// a longer tick costs less CPU (docs/cluster.md, "Many partitions").
	// HeartbeatRTT and ElectionRTT count ticks; unset, they keep a
	// heartbeat of 50 ms and an election timeout of 1 s whatever the tick
	// (at least 1 and 3 ticks). Single-replica shards elect after 100 ms
	// (at least 3 ticks).
	RTTMillisecond uint64
	HeartbeatRTT   uint64
	ElectionRTT    uint64
	// Quiesce lets a partition of several replicas that has been idle for
	// twenty election timeouts stop ticking and heartbeating until traffic
	// reaches it (Dragonboat's quiesce mode; quiesce.go). For nodes with
	// many partitions, most of them idle. The metadata shard never
	// quiesces.
	Quiesce      bool
	SegmentBytes int64 // segment file size; default 64 MiB
	// SnapshotBytes: after this many bytes applied to a partition, a
	// (cheap, metadata-only) snapshot is requested so the Raft log can be
	// compacted; default 64 MiB.
	SnapshotBytes int64
	// ProposalTimeout bounds one proposal when the caller's context has no
	// deadline; default 10 s.
	ProposalTimeout time.Duration
	// AttemptTimeout bounds one forwarded attempt of a write that is safe to
	// repeat (an idempotent produce, a trim) before it is tried again at
	// the partition's current leader; default 3 s.
	AttemptTimeout time.Duration
	// LogDB is the Raft log store: "tan" (default: one log file per replica,
	// fastest, but each file preallocates 64 MiB of disk) or "pebble"
	// (16 shared Pebble instances: for thousands of replicas per node).
	// Fixed for the life of a data dir.
	LogDB string
	// FollowerWrites is what a node holding a follower replica of a
	// partition does with a write: "forward" (default) sends it over HTTP
	// to the leader's node (internal/peer); "propose" proposes it to the
	// local replica and Dragonboat hands it to the leader inside Raft (no
	// HTTP hop; the answer comes when the local replica applies the entry).
	// "propose" measured slower and less predictable for batched R3
	// produce (docs/benchmarks.md), so it is opt-in. A node without a
	// replica always forwards. docs/RATIONALE.md, "Writes at a follower".
	FollowerWrites string
	// TransportFactory replaces Dragonboat's TCP transport (tests inject
	// faults through it). Nil: TCP.
	TransportFactory dbconfig.TransportFactory
	// FS is the filesystem every file of the node goes through:
	// Dragonboat's (NodeHost directory, LogDB, snapshots) and Weir's
	// (segments, checkpoints, roles.json). Nil: the operating system's.
	// Tests inject vfs.NewStrictMem() to lose every un-fsynced write at
	// once (powerloss_test.go).
	FS     dbconfig.IFS
	Logger *slog.Logger
	// MutualTLS secures Raft traffic between nodes (docs/security.md):
	// every node presents CertFile/KeyFile and accepts only peers whose
	// certificate CAFile signed (Dragonboat's mutual TLS).
	MutualTLS                 bool
	CAFile, CertFile, KeyFile string
	// Tiered is tiered storage on object storage (tier.go); off when its
	// Store is nil.
	Tiered TieredConfig
}

// FollowerWrites values.
const (
	FollowerPropose = "propose"
	FollowerForward = "forward"
)

func (c *Config) setDefaults() {
	if c.FollowerWrites == "" {
		c.FollowerWrites = FollowerForward
	}
	if c.RTTMillisecond == 0 {
		c.RTTMillisecond = 10
	}
	if c.HeartbeatRTT == 0 {
		c.HeartbeatRTT = max(1, 50/c.RTTMillisecond)
	}
	if c.ElectionRTT == 0 {
		c.ElectionRTT = max(3, 1000/c.RTTMillisecond, 2*c.HeartbeatRTT+1)
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 64 << 20
	}
	if c.SnapshotBytes == 0 {
		c.SnapshotBytes = 64 << 20
	}
	if c.ProposalTimeout == 0 {
		c.ProposalTimeout = 10 * time.Second
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = 3 * time.Second
	}
	if c.MetaVoters == 0 {
		c.MetaVoters = 3
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Tiered.Store != nil {
		c.Tiered.setDefaults()
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == 0:
		return errors.New("raftlog: node id must be ≥ 1")
	case c.DataDir == "":
		return errors.New("raftlog: data dir is required")
	case c.RaftAddr == "":
		return errors.New("raftlog: raft address is required")
	case c.MetaVoters != 3 && c.MetaVoters != 5:
		return errors.New("raftlog: the metadata shard has 3 or 5 voters")
	case c.LogDB != "" && c.LogDB != "tan" && c.LogDB != "pebble":
		return fmt.Errorf("raftlog: LogDB %q is neither tan nor pebble", c.LogDB)
	case c.RTTMillisecond > 1000:
		return fmt.Errorf("raftlog: Raft tick of %d ms is above 1 s", c.RTTMillisecond)
	case c.FollowerWrites != "" && c.FollowerWrites != FollowerPropose && c.FollowerWrites != FollowerForward:
		return fmt.Errorf("raftlog: FollowerWrites %q is neither %s nor %s", c.FollowerWrites, FollowerPropose, FollowerForward)
	}
	if err := c.Tiered.validate(); err != nil {
		return err
	}
	if len(c.Peers) > 0 {
		if a, ok := c.Peers[c.NodeID]; !ok && !c.Join {
			return fmt.Errorf("raftlog: peers do not list this node %d", c.NodeID)
		} else if ok && a != c.RaftAddr {
			return fmt.Errorf("raftlog: peers give node %d the address %s, but it listens on %s", c.NodeID, a, c.RaftAddr)
		}
	}
	return nil
}

// initialMetaVoters is the bootstrap membership of the metadata shard: the
// lowest MetaVoters ids among the peers (this node alone without peers).
func (c *Config) initialMetaVoters() map[uint64]dragonboat.Target {
	if len(c.Peers) == 0 {
		return map[uint64]dragonboat.Target{c.NodeID: c.RaftAddr}
	}
	ids := make([]uint64, 0, len(c.Peers))
	for id := range c.Peers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := map[uint64]dragonboat.Target{}
	for _, id := range ids[:min(len(ids), c.MetaVoters)] {
		out[id] = c.Peers[id]
	}
	return out
}

// Host is this process's Dragonboat NodeHost with the metadata shard and the
// partition shards placed on this node. It implements core.Store and
// core.Cluster.
//
// Lock order: metaSM.mu (taken by meta.read) may be held while taking h.mu;
// never call meta.read while holding h.mu.
type Host struct {
	cfg   Config
	fs    segment.FS // cfg.FS for Weir's own files (fs.go)
	log   *slog.Logger
	nh    *dragonboat.NodeHost
	meta  *metaSM
	roles *roleFile

	mu       sync.Mutex                // guards the maps below
	parts    map[uint64]*partitionSM   // running partition shards by shard id
	waker    waker                     // wake requests in flight (quiesce.go)
	lead     map[uint64]*leaderState   // leader per shard, from the event listener
	snaps    map[uint64]*snapshotState // bytes applied since the last snapshot request
	busy     map[uint64]bool           // shards with a membership task in flight
	hints    map[uint64]uint64         // shard → leader node learned from other nodes
	seen     map[uint64]time.Time      // node → last answer to a ping
	moved    map[uint64]time.Time      // shard → last leader transfer request
	views    map[uint64]*nodeView      // node → cached NodeStatus
	rinfo    map[uint64]remoteInfo     // shard → HWM of a partition not hosted here
	unloaded map[uint64]chan struct{}  // shard → closed when Dragonboat unloads it

	tier      *tierState // tiered storage (tier.go); nil when off
	tierCache *tierCache // segments read back from object storage; nil when off

	metaSynced      atomic.Bool  // a linearizable read of the metadata succeeded since start
	connFailed      atomic.Int64 // Raft connections to other nodes that failed (dial or TLS handshake)
	forwardedWrites atomic.Int64 // write attempts sent to another node over the Forwarder

	reconcileC chan struct{}
	stopC      chan struct{}
	wg         sync.WaitGroup
}

type leaderState struct {
	leader  uint64 // replica id
	term    uint64
	since   time.Time
	changed chan struct{} // closed at the next leader change
}

type snapshotState struct {
	bytes   int64
	pending bool
}

// QuietDragonboat sets the levels of Dragonboat's loggers to errors only.
// Dragonboat's loggers are process-wide, so New leaves them alone: a
// program calls this once at start (cmd/weir does) if it wants Dragonboat's
// informational lines off.
func QuietDragonboat() {
	for _, name := range []string{"raft", "rsm", "transport", "dragonboat", "logdb", "raftpb", "config", "tan", "registry", "grpc"} {
		logger.GetLogger(name).SetLevel(logger.ERROR)
	}
}

// New starts the NodeHost, the metadata shard and every partition shard the
// metadata places here.
func New(cfg Config) (*Host, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	fs := newFS(cfg.FS)
	if err := fs.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	if err := segment.SyncDir(fs, filepath.Dir(cfg.DataDir)); err != nil {
		return nil, err
	}
	roles, err := loadRoles(fs, filepath.Join(cfg.DataDir, "roles.json"))
	if err != nil {
		return nil, err
	}
	h := newHost(cfg, fs, roles)
	if cfg.Tiered.Store != nil {
		h.tier = &tierState{parts: map[uint64]*tierPart{}, prefixes: map[uint64]string{}, slots: make(chan struct{}, cfg.Tiered.MaxUploads)}
		h.tierCache, err = newTierCache(cfg.Tiered.Store, fs, filepath.Join(cfg.DataDir, "tiered-cache"), cfg.Tiered.CacheBytes, cfg.Tiered.RequestTimeout, h.stopC)
		if err != nil {
			return nil, fmt.Errorf("tiered storage cache: %w", err)
		}
	}
	nh, err := dragonboat.NewNodeHost(h.nodeHostConfig())
	if err != nil {
		return nil, fmt.Errorf("start raft node host: %w", err)
	}
	h.nh = nh
	h.meta = newMetaSM(h.kick)
	if err := h.startMetaShard(); err != nil {
		nh.Close()
		return nil, fmt.Errorf("start metadata shard: %w", err)
	}
	h.wg.Add(4)
	go h.syncMetaLoop()
	go h.reconcileLoop()
	go h.registerLoop()
	go h.probeLoop()
	if h.tier != nil {
		h.wg.Add(1)
		go h.tierLoop()
	}
	return h, nil
}

// newHost is a Host over fs with nothing started.
func newHost(cfg Config, fs segment.FS, roles *roleFile) *Host {
	return &Host{
		cfg:        cfg,
		fs:         fs,
		log:        cfg.Logger,
		roles:      roles,
		parts:      map[uint64]*partitionSM{},
		lead:       map[uint64]*leaderState{},
		snaps:      map[uint64]*snapshotState{},
		busy:       map[uint64]bool{},
		hints:      map[uint64]uint64{},
		seen:       map[uint64]time.Time{},
		moved:      map[uint64]time.Time{},
		views:      map[uint64]*nodeView{},
		rinfo:      map[uint64]remoteInfo{},
		unloaded:   map[uint64]chan struct{}{},
		reconcileC: make(chan struct{}, 1),
		stopC:      make(chan struct{}),
	}
}

// nodeHostConfig is the Dragonboat NodeHost configuration of h.
func (h *Host) nodeHostConfig() dbconfig.NodeHostConfig {
	cfg := h.cfg
	nhc := dbconfig.NodeHostConfig{
		NodeHostDir:         filepath.Join(cfg.DataDir, "raft"),
		RTTMillisecond:      cfg.RTTMillisecond,
		RaftAddress:         cfg.RaftAddr,
		RaftEventListener:   h,
		SystemEventListener: sysEvents{h},
		MutualTLS:           cfg.MutualTLS,
		CAFile:              cfg.CAFile,
		CertFile:            cfg.CertFile,
		KeyFile:             cfg.KeyFile,
		Expert: dbconfig.ExpertConfig{
			LogDBFactory:     skipEmptyFactory{tan.Factory}, // logdb.go
			LogDB:            dbconfig.GetTinyMemLogDBConfig(),
			TransportFactory: cfg.TransportFactory,
			FS:               cfg.FS, // nil: the OS
		},
	}
	if cfg.LogDB == "pebble" {
		nhc.Expert.LogDBFactory = nil // Dragonboat's default: sharded Pebble
	}
	return nhc
}

// startMetaShard starts this node's replica of the metadata shard: as a
// voter of a new cluster, as it was on a restart, or as a learner when
// joining.
func (h *Host) startMetaShard() error {
	cfg, nh := h.cfg, h.nh
	voters := cfg.initialMetaVoters()
	_, initialVoter := voters[cfg.NodeID]
	single := len(cfg.Peers) == 0 && !cfg.Join
	n := len(voters)
	if !single {
		n = 3 // multi-node timing even while only one voter exists
	}
	mcfg := h.shardConfig(metaShardID, cfg.NodeID, n)
	mcfg.SnapshotEntries = 1000
	mcfg.CompactionOverhead = 500
	create := func(uint64, uint64) sm.IStateMachine { return h.meta }
	switch {
	case nh.HasNodeInfo(metaShardID, cfg.NodeID):
		// A restart: Dragonboat has the membership; IsNonVoting must match
		// the role the replica last had (roles.json).
		mcfg.IsNonVoting = h.roles.nonVoting(metaShardID)
		return nh.StartReplica(nil, false, create, mcfg)
	case initialVoter && !cfg.Join:
		return nh.StartReplica(voters, false, create, mcfg)
	default:
		// A joining node (or an initial peer beyond the voters): the
		// controller adds it as a non-voting member; it catches up.
		if err := h.roles.set(metaShardID, true); err != nil {
			return err
		}
		mcfg.IsNonVoting = true
		return nh.StartReplica(nil, true, create, mcfg)
	}
}

// shardConfig is the Raft configuration of one replica.
func (h *Host) shardConfig(shardID, replicaID uint64, voters int) dbconfig.Config {
	election, heartbeat := h.cfg.ElectionRTT, h.cfg.HeartbeatRTT
	if voters == 1 { // nobody to disagree with: elect fast
		election, heartbeat = max(3, 100/h.cfg.RTTMillisecond), 1
	}
	return dbconfig.Config{
		ShardID:             shardID,
		ReplicaID:           replicaID,
		CheckQuorum:         true,
		PreVote:             true,
		ElectionRTT:         election,
		HeartbeatRTT:        heartbeat,
		SnapshotEntries:     8192,
		CompactionOverhead:  1024,
		OrderedConfigChange: true,
		MaxInMemLogSize:     64 << 20,
	}
}

// NodeID is this node's id.
func (h *Host) NodeID() uint64 { return h.cfg.NodeID }

// Close stops every shard and the NodeHost.
func (h *Host) Close() error {
	h.mu.Lock()
	select {
	case <-h.stopC:
		h.mu.Unlock()
		return nil
	default:
	}
	close(h.stopC)
	h.mu.Unlock()
	h.wg.Wait()
	if h.tierCache != nil {
		h.tierCache.close()
	}
	h.nh.Close()
	return nil
}

// LeaderUpdated implements raftio.IRaftEventListener.
func (h *Host) LeaderUpdated(info raftio.LeaderInfo) {
	h.mu.Lock()
	old := h.lead[info.ShardID]
	if old == nil || old.leader != info.LeaderID || old.term != info.Term {
		if old != nil {
			close(old.changed)
		}
		h.lead[info.ShardID] = &leaderState{leader: info.LeaderID, term: info.Term, since: time.Now(), changed: make(chan struct{})}
	}
	h.mu.Unlock()
	h.kick()
}

// leaderChanged returns a channel closed at the next leader change of shard.
func (h *Host) leaderChanged(shard uint64) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ls := h.lead[shard]
	if ls == nil {
		ls = &leaderState{since: time.Now(), changed: make(chan struct{})}
		h.lead[shard] = ls
	}
	return ls.changed
}

// sysEvents receives Dragonboat's system events.
type sysEvents struct{ h *Host }

func (e sysEvents) NodeUnloaded(info raftio.NodeInfo) {
	e.h.mu.Lock()
	if c := e.h.unloaded[info.ShardID]; c != nil {
		close(c)
		delete(e.h.unloaded, info.ShardID)
	}
	e.h.mu.Unlock()
}
func (e sysEvents) MembershipChanged(raftio.NodeInfo)         { e.h.kick() }
func (sysEvents) NodeHostShuttingDown()                       {}
func (sysEvents) NodeDeleted(raftio.NodeInfo)                 {}
func (sysEvents) NodeReady(raftio.NodeInfo)                   {}
func (sysEvents) ConnectionEstablished(raftio.ConnectionInfo) {}
func (e sysEvents) ConnectionFailed(raftio.ConnectionInfo)    { e.h.connFailed.Add(1) }
func (sysEvents) SendSnapshotStarted(raftio.SnapshotInfo)     {}
func (sysEvents) SendSnapshotCompleted(raftio.SnapshotInfo)   {}
func (sysEvents) SendSnapshotAborted(raftio.SnapshotInfo)     {}
func (sysEvents) SnapshotReceived(raftio.SnapshotInfo)        {}
func (sysEvents) SnapshotRecovered(raftio.SnapshotInfo)       {}
func (sysEvents) SnapshotCreated(raftio.SnapshotInfo)         {}
func (sysEvents) SnapshotCompacted(raftio.SnapshotInfo)       {}
func (sysEvents) LogCompacted(raftio.EntryInfo)               {}
func (sysEvents) LogDBCompacted(raftio.EntryInfo)             {}

var _ raftio.ISystemEventListener = sysEvents{}

// RaftConnectionFailures counts Raft connections from this node to another
// that failed since start: a dial refused, or a TLS handshake failed (a
// peer's certificate of another CA). A count that keeps growing points at
// a node down or misconfigured.
func (h *Host) RaftConnectionFailures() int64 { return h.connFailed.Load() }

// ForwardedWrites counts write attempts (appends, state transactions,
// trims) this node sent to another node through the Forwarder since start.
func (h *Host) ForwardedWrites() int64 { return h.forwardedWrites.Load() }

func (h *Host) kick() {
	select {
	case h.reconcileC <- struct{}{}:
	default:
	}
}

func (h *Host) stopping() bool {
	select {
	case <-h.stopC:
		return true
	default:
		return false
	}
}

// syncMetaLoop waits until this node's metadata replica has applied
// everything the metadata leader had committed (a linearizable read
// succeeds): until then a missing topic may just not be replayed yet.
func (h *Host) syncMetaLoop() {
	defer h.wg.Done()
	for !h.stopping() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := h.nh.SyncRead(ctx, metaShardID, nil)
		cancel()
		if err == nil {
			h.metaSynced.Store(true)
			h.kick()
			return
		}
		select {
		case <-h.stopC:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// registerLoop puts this node's addresses into the metadata once a
// metadata leader exists, and again whenever they change.
func (h *Host) registerLoop() {
	defer h.wg.Done()
	for {
		var cur *NodeInfo
		h.meta.read(func(st *metaState) {
			if n := st.Nodes[h.cfg.NodeID]; n != nil {
				c := *n
				cur = &c
			}
		})
		if cur != nil && (cur.State == nodeRemoved || cur.RaftAddr == h.cfg.RaftAddr && cur.HTTPAddr == h.cfg.HTTPAddr && cur.KafkaAddr == h.cfg.KafkaAddr) {
			// Registered (or removed for good). Keep watching: an operator
			// may restart the node on a new HTTP address.
			select {
			case <-h.stopC:
				return
			case <-h.meta.changed():
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := h.proposeMeta(ctx, &metaCmd{Op: "register_node", Node: &NodeInfo{ID: h.cfg.NodeID, RaftAddr: h.cfg.RaftAddr, HTTPAddr: h.cfg.HTTPAddr, KafkaAddr: h.cfg.KafkaAddr}})
		cancel()
		if err != nil {
			select {
			case <-h.stopC:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// reconcileLoop starts the partition shards the metadata places on this node
// and stops those it no longer does; on the metadata leader it also runs the
// controller, and on every node the partition leaders' membership steps.
func (h *Host) reconcileLoop() {
	defer h.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		h.reconcile()
		h.control()
		select {
		case <-h.stopC:
			return
		case <-h.reconcileC:
		case <-tick.C:
		}
	}
}

// Replica start modes.
const (
	startInitial = iota // a bootstrap member: the identical initial map everywhere
	startJoin           // added later: joins as a non-voting learner
)

type desiredShard struct {
	replicaID uint64
	mode      int
	members   map[uint64]dragonboat.Target // for startInitial
	voters    int
}

func (h *Host) reconcile() {
	if !h.metaSynced.Load() {
		// A replaying metadata replica may still place a replica here that
		// a later entry removes: act on caught-up metadata only.
		return
	}
	self := h.cfg.NodeID
	want := map[uint64]desiredShard{}
	h.meta.read(func(st *metaState) {
		if n := st.Nodes[self]; n != nil && n.State == nodeRemoved {
			return // removed for good: host nothing
		}
		st.eachPartition(func(_ string, _ int, p *PartitionMeta) {
			var mine uint64
			for _, m := range []map[uint64]uint64{p.Replicas, p.members(), p.Learners} {
				for rid, nid := range m {
					if nid == self && rid > mine {
						mine = rid
					}
				}
			}
			if mine == 0 {
				return
			}
			d := desiredShard{replicaID: mine, voters: len(p.Replicas), mode: startJoin}
			_, inMembers := p.members()[mine]
			_, inLearners := p.Learners[mine]
			if _, ok := p.initial()[mine]; ok {
				d.mode = startInitial
				d.members = map[uint64]dragonboat.Target{}
				for rid, nid := range p.initial() {
					n := st.Nodes[nid]
					if n == nil {
						return // a member not registered yet: wait
					}
					d.members[rid] = n.RaftAddr
				}
			} else if !inMembers && !inLearners && !h.nh.HasNodeInfo(p.ShardID, mine) {
				return // the leader has not added it to the shard yet
			}
			want[p.ShardID] = d
		})
	})
	h.mu.Lock()
	var start, stop []uint64
	for id, d := range want {
		psm, ok := h.parts[id]
		if !ok {
			start = append(start, id)
		} else if psm.replicaID != 0 && psm.replicaID != d.replicaID {
			stop = append(stop, id) // an old replica of a shard placed back here
		}
	}
	for id := range h.parts {
		if _, ok := want[id]; !ok {
			stop = append(stop, id)
		}
	}
	h.mu.Unlock()
	for _, id := range stop {
		h.stopPartition(id)
	}
	for _, id := range start {
		if h.stopping() {
			return
		}
		if err := h.startPartition(id, want[id]); err != nil {
			h.log.Error("start partition shard", "shard", id, "err", err)
		}
	}
}

func (h *Host) partitionDir(shardID uint64) string {
	return filepath.Join(h.cfg.DataDir, "partitions", fmt.Sprintf("%d", shardID))
}

func (h *Host) startPartition(shardID uint64, d desiredShard) error {
	h.mu.Lock()
	wait := h.unloaded[shardID]
	h.mu.Unlock()
	if wait != nil {
		select { // a previous instance is still unloading (#210)
		case <-wait:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("shard %d did not unload", shardID)
		}
	}
	psm := newPartitionSM(shardID, h.partitionDir(shardID), segment.Config{SegmentBytes: h.segmentBytes(shardID), FS: h.fs},
		func(n int64) { h.noteApplied(shardID, n) })
	psm.replicaID = d.replicaID
	cfg := h.shardConfig(shardID, d.replicaID, d.voters)
	cfg.Quiesce = h.cfg.Quiesce && d.voters > 1
	members, join := d.members, false
	switch {
	case h.nh.HasNodeInfo(shardID, d.replicaID):
		members = nil // a restart: Dragonboat has the membership
		cfg.IsNonVoting = h.roles.nonVoting(shardID)
	case d.mode == startJoin:
		members, join = nil, true
		cfg.IsNonVoting = true
		if err := h.roles.set(shardID, true); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.parts[shardID] = psm
	h.mu.Unlock()
	err := h.nh.StartOnDiskReplica(members, join, func(_, _ uint64) sm.IOnDiskStateMachine { return psm }, cfg)
	if err != nil && !errors.Is(err, dragonboat.ErrShardAlreadyExist) {
		h.mu.Lock()
		delete(h.parts, shardID)
		h.mu.Unlock()
		return err
	}
	return nil
}

func (h *Host) stopPartition(shardID uint64) {
	h.mu.Lock()
	psm := h.parts[shardID]
	delete(h.parts, shardID)
	delete(h.snaps, shardID)
	unloaded := make(chan struct{})
	h.unloaded[shardID] = unloaded
	h.mu.Unlock()
	if err := h.nh.StopShard(shardID); err != nil {
		if !errors.Is(err, dragonboat.ErrShardNotFound) {
			h.log.Warn("stop partition shard", "shard", shardID, "err", err)
		}
		h.mu.Lock()
		if h.unloaded[shardID] == unloaded {
			delete(h.unloaded, shardID)
			close(unloaded)
		}
		h.mu.Unlock()
	}
	// The replica is gone from the metadata for good: drop its Raft state
	// and its segments. RemoveData fails until the shard has unloaded.
	var rid uint64
	if psm != nil {
		rid = psm.replicaID
	}
	select {
	case <-unloaded:
	case <-time.After(10 * time.Second):
	}
	deadline := time.Now().Add(10 * time.Second)
	stopped := rid == 0
	for rid != 0 && time.Now().Before(deadline) {
		err := h.nh.RemoveData(shardID, rid)
		if err == nil || !errors.Is(err, dragonboat.ErrShardNotStopped) {
			stopped = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !stopped {
		// The state machine may still be applying (and writing its
		// checkpoint): deleting its directory under it would crash the
		// node. Leave the files; a restart's reconcile drops them.
		h.log.Warn("partition shard did not stop; its files are kept", "shard", shardID)
		return
	}
	if psm != nil {
		psm.Close()
	}
	h.fs.RemoveAll(h.partitionDir(shardID))
	h.roles.clear(shardID)
	if !h.shardExists(shardID) {
		h.purgeTiered(shardID) // the topic was deleted: so is its remote data
	}
}

// noteApplied counts bytes applied to a partition and requests a snapshot
// (cheap for the on-disk state machine: Sync plus metadata) once enough
// accumulated, so that Dragonboat can compact the Raft log by size.
func (h *Host) noteApplied(shardID uint64, n int64) {
	if n == 0 {
		return
	}
	h.mu.Lock()
	s := h.snaps[shardID]
	if s == nil {
		s = &snapshotState{}
		h.snaps[shardID] = s
	}
	s.bytes += n
	fire := s.bytes >= h.cfg.SnapshotBytes && !s.pending
	if fire {
		s.pending = true
		s.bytes = 0
	}
	h.mu.Unlock()
	if !fire {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := h.nh.SyncRequestSnapshot(ctx, shardID, dragonboat.SnapshotOption{})
		if err != nil && !errors.Is(err, dragonboat.ErrRejected) {
			h.log.Debug("snapshot request", "shard", shardID, "err", err)
		}
		h.mu.Lock()
		if s := h.snaps[shardID]; s != nil {
			s.pending = false
		}
		h.mu.Unlock()
	}()
}
