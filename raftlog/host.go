package raftlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"
	dbconfig "github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/logger"
	"github.com/lni/dragonboat/v4/plugin/tan"
	"github.com/lni/dragonboat/v4/raftio"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/weir-broker/weir/raftlog/internal/segment"
)

// Config configures a Host. The zero value of every field but NodeID,
// DataDir and RaftAddr has a useful default.
type Config struct {
	NodeID   uint64 // this node's id, ≥ 1
	DataDir  string // all state: Raft log (LogDB), segments, checkpoints
	RaftAddr string // host:port Raft listens on and peers dial
	HTTPAddr string // host:port of this node's gateway, advertised to peers
	// Peers are the initial members of a new cluster (node id → Raft
	// address), the same map on every initial node. Empty: a single node
	// cluster of this node alone.
	Peers map[uint64]string

	RTTMillisecond uint64 // default 10
	HeartbeatRTT   uint64 // default 5 (×RTT)
	ElectionRTT    uint64 // default 100 (×RTT = 1 s); single-replica shards use 10
	SegmentBytes   int64  // segment file size; default 64 MiB
	// SnapshotBytes: after this many bytes applied to a partition, a
	// (cheap, metadata-only) snapshot is requested so the Raft log can be
	// compacted; default 64 MiB.
	SnapshotBytes int64
	// ProposalTimeout bounds one proposal when the caller's context has no
	// deadline; default 10 s.
	ProposalTimeout time.Duration
	// TransportFactory replaces Dragonboat's TCP transport (tests inject
	// faults through it). Nil: TCP.
	TransportFactory dbconfig.TransportFactory
	Logger           *slog.Logger
}

func (c *Config) setDefaults() {
	if c.RTTMillisecond == 0 {
		c.RTTMillisecond = 10
	}
	if c.HeartbeatRTT == 0 {
		c.HeartbeatRTT = 5
	}
	if c.ElectionRTT == 0 {
		c.ElectionRTT = 100
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
	if c.Logger == nil {
		c.Logger = slog.Default()
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
	}
	if len(c.Peers) > 0 {
		if a, ok := c.Peers[c.NodeID]; !ok {
			return fmt.Errorf("raftlog: peers do not list this node %d", c.NodeID)
		} else if a != c.RaftAddr {
			return fmt.Errorf("raftlog: peers give node %d the address %s, but it listens on %s", c.NodeID, a, c.RaftAddr)
		}
	}
	return nil
}

// Host is this process's Dragonboat NodeHost with the metadata shard and the
// partition shards placed on this node. It implements core.Store.
type Host struct {
	cfg  Config
	log  *slog.Logger
	nh   *dragonboat.NodeHost
	meta *metaSM

	mu    sync.Mutex                // guards parts and stopping
	parts map[uint64]*partitionSM   // running partition shards by shard id
	lead  map[uint64]*leaderState   // leader per shard, from the event listener
	snaps map[uint64]*snapshotState // bytes applied since the last snapshot request

	reconcileC chan struct{}
	stopC      chan struct{}
	wg         sync.WaitGroup
}

type leaderState struct {
	leader uint64 // replica id
	term   uint64
}

type snapshotState struct {
	bytes   int64
	pending bool
}

// New starts the NodeHost, the metadata shard and every partition shard the
// metadata places here.
func New(cfg Config) (*Host, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, name := range []string{"raft", "rsm", "transport", "dragonboat", "logdb", "raftpb", "config", "tan", "registry", "grpc"} {
		logger.GetLogger(name).SetLevel(logger.ERROR)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	h := &Host{
		cfg:        cfg,
		log:        cfg.Logger,
		parts:      map[uint64]*partitionSM{},
		lead:       map[uint64]*leaderState{},
		snaps:      map[uint64]*snapshotState{},
		reconcileC: make(chan struct{}, 1),
		stopC:      make(chan struct{}),
	}
	nhc := dbconfig.NodeHostConfig{
		NodeHostDir:       filepath.Join(cfg.DataDir, "raft"),
		RTTMillisecond:    cfg.RTTMillisecond,
		RaftAddress:       cfg.RaftAddr,
		RaftEventListener: h,
		Expert: dbconfig.ExpertConfig{
			LogDBFactory:     tan.Factory,
			LogDB:            dbconfig.GetTinyMemLogDBConfig(),
			TransportFactory: cfg.TransportFactory,
		},
	}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		return nil, fmt.Errorf("start raft node host: %w", err)
	}
	h.nh = nh
	h.meta = newMetaSM(h.kick)

	members := map[uint64]dragonboat.Target{}
	if len(cfg.Peers) == 0 {
		members[cfg.NodeID] = cfg.RaftAddr
	} else {
		for id, addr := range cfg.Peers {
			members[id] = addr
		}
	}
	mcfg := h.shardConfig(metaShardID, cfg.NodeID, len(members))
	mcfg.SnapshotEntries = 1000
	mcfg.CompactionOverhead = 500
	err = nh.StartReplica(members, false, func(uint64, uint64) sm.IStateMachine { return h.meta }, mcfg)
	if err != nil {
		nh.Close()
		return nil, fmt.Errorf("start metadata shard: %w", err)
	}
	h.wg.Add(2)
	go h.reconcileLoop()
	go h.registerLoop()
	return h, nil
}

// shardConfig is the Raft configuration of one replica.
func (h *Host) shardConfig(shardID, replicaID uint64, voters int) dbconfig.Config {
	election, heartbeat := h.cfg.ElectionRTT, h.cfg.HeartbeatRTT
	if voters == 1 {
		election, heartbeat = 10, 1 // nobody to disagree with: elect fast
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
	h.nh.Close()
	return nil
}

// LeaderUpdated implements raftio.IRaftEventListener.
func (h *Host) LeaderUpdated(info raftio.LeaderInfo) {
	h.mu.Lock()
	h.lead[info.ShardID] = &leaderState{leader: info.LeaderID, term: info.Term}
	h.mu.Unlock()
	h.kick()
}

func (h *Host) kick() {
	select {
	case h.reconcileC <- struct{}{}:
	default:
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
		if cur != nil && cur.RaftAddr == h.cfg.RaftAddr && cur.HTTPAddr == h.cfg.HTTPAddr {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := h.proposeMeta(ctx, &metaCmd{Op: "register_node", Node: &NodeInfo{ID: h.cfg.NodeID, RaftAddr: h.cfg.RaftAddr, HTTPAddr: h.cfg.HTTPAddr}})
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
// and stops those it no longer does.
func (h *Host) reconcileLoop() {
	defer h.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		h.reconcile()
		select {
		case <-h.stopC:
			return
		case <-h.reconcileC:
		case <-tick.C:
		}
	}
}

type desiredShard struct {
	replicaID uint64
	members   map[uint64]dragonboat.Target
}

func (h *Host) reconcile() {
	want := map[uint64]desiredShard{}
	h.meta.read(func(st *metaState) {
		for _, t := range st.Topics {
			for _, p := range t.Partitions {
				var mine uint64
				members := map[uint64]dragonboat.Target{}
				complete := true
				for rid, nid := range p.Replicas {
					n := st.Nodes[nid]
					if n == nil {
						complete = false
						continue
					}
					members[rid] = n.RaftAddr
					if nid == h.cfg.NodeID {
						mine = rid
					}
				}
				if mine != 0 && complete {
					want[p.ShardID] = desiredShard{replicaID: mine, members: members}
				}
			}
		}
	})
	h.mu.Lock()
	var start []uint64
	var stop []uint64
	for id := range want {
		if _, ok := h.parts[id]; !ok {
			start = append(start, id)
		}
	}
	for id := range h.parts {
		if _, ok := want[id]; !ok {
			stop = append(stop, id)
		}
	}
	h.mu.Unlock()
	for _, id := range start {
		d := want[id]
		if err := h.startPartition(id, d); err != nil {
			h.log.Error("start partition shard", "shard", id, "err", err)
		}
	}
	for _, id := range stop {
		h.stopPartition(id)
	}
}

func (h *Host) partitionDir(shardID uint64) string {
	return filepath.Join(h.cfg.DataDir, "partitions", fmt.Sprintf("%d", shardID))
}

func (h *Host) startPartition(shardID uint64, d desiredShard) error {
	psm := newPartitionSM(shardID, h.partitionDir(shardID), segment.Config{SegmentBytes: h.cfg.SegmentBytes},
		func(n int64) { h.noteApplied(shardID, n) })
	h.mu.Lock()
	h.parts[shardID] = psm
	h.mu.Unlock()
	cfg := h.shardConfig(shardID, d.replicaID, len(d.members))
	err := h.nh.StartOnDiskReplica(d.members, false, func(_, rid uint64) sm.IOnDiskStateMachine { psm.replicaID = rid; return psm }, cfg)
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
	delete(h.lead, shardID)
	delete(h.snaps, shardID)
	h.mu.Unlock()
	if err := h.nh.StopShard(shardID); err != nil && !errors.Is(err, dragonboat.ErrShardNotFound) {
		h.log.Warn("stop partition shard", "shard", shardID, "err", err)
	}
	// The replica is gone from the metadata for good: drop its Raft state
	// and its segments. RemoveData fails until the shard has unloaded.
	var rid uint64
	if psm != nil {
		rid = psm.replicaID
	}
	deadline := time.Now().Add(10 * time.Second)
	for rid != 0 && time.Now().Before(deadline) {
		if err := h.nh.RemoveData(shardID, rid); err == nil || !errors.Is(err, dragonboat.ErrShardNotStopped) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if psm != nil {
		psm.Close()
	}
	os.RemoveAll(h.partitionDir(shardID))
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
