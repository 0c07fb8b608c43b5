package raftlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/weir-broker/weir/core"
)

var _ core.Store = (*Host)(nil)

// CreateTopic places the topic's partitions and waits until every partition
// hosted on this node has a leader, so that a produce right after succeeds,
// and then until the leaders are on the partitions' preferred nodes
// (leadPreferred).
func (h *Host) CreateTopic(ctx context.Context, cfg core.TopicConfig) (core.TopicInfo, error) {
	if cfg.Partitions < 1 || cfg.ReplicationFactor < 1 {
		return core.TopicInfo{}, core.Invalidf("a topic needs at least one partition and one replica, not %d and %d", cfg.Partitions, cfg.ReplicationFactor)
	}
	if cfg.Tiered && h.cfg.Tiered.Store == nil {
		return core.TopicInfo{}, core.Invalidf("tiered storage is not configured on node %d (start the nodes with --tiered-storage-endpoint and --tiered-storage-bucket)", h.cfg.NodeID)
	}
	if cfg.SegmentBytes == 0 {
		cfg.SegmentBytes = h.cfg.SegmentBytes
	}
	res, err := h.proposeMeta(ctx, &metaCmd{Op: "create_topic", Time: time.Now().UnixMilli(), Topic: &cfg})
	if err != nil {
		return core.TopicInfo{}, err
	}
	switch res.Value {
	case metaExists:
		return core.TopicInfo{}, fmt.Errorf("%w: topic %q already exists", core.ErrTopicExists, cfg.Name)
	case metaInvalid:
		return core.TopicInfo{}, core.Invalidf("%s", res.Data)
	}
	if err := h.waitPartitionsReady(ctx, cfg.Name); err != nil {
		return core.TopicInfo{}, err
	}
	h.leadPreferred(ctx, cfg.Name, 0)
	return h.Topic(cfg.Name)
}

// preferredWait bounds how long a topic create or growth waits for its new
// partitions' leaders to move to their preferred nodes.
const preferredWait = 5 * time.Second

// leadPreferred hands the leadership of topic's partitions from index
// from on to their preferred nodes and waits until they lead them, within
// ctx and preferredWait. A new shard elects whichever replica times out
// first, and the leader balancer (controller.go) would move it a few
// seconds later: right when the first producers are writing, each of whom
// would pay a NOT_LEADER round trip and a stall. Moved before the create
// answers, the leaders are where they stay. A partition this node does not
// host, or whose preferred node is down or not a voter, is left to the
// balancer; so is one still unmoved at the deadline (the create succeeded
// either way).
func (h *Host) leadPreferred(ctx context.Context, topic string, from int) {
	ctx, cancel := context.WithTimeout(ctx, preferredWait)
	defer cancel()
	asked := map[uint64]time.Time{} // shard → when its transfer was last requested
	for {
		var parts []PartitionMeta
		h.meta.read(func(st *metaState) {
			if t := st.Topics[topic]; t != nil && from < len(t.Partitions) {
				for _, p := range t.Partitions[from:] {
					cp := p
					cp.Members = cloneMap(p.members())
					parts = append(parts, cp)
				}
			}
		})
		pending := 0
		for i := range parts {
			pm := &parts[i]
			if pm.moving() || pm.Preferred == 0 || !h.alive(pm.Preferred) {
				continue
			}
			var prid uint64
			for r, nid := range pm.members() {
				if nid == pm.Preferred {
					prid = r
				}
			}
			lid, _, ok, err := h.nh.GetLeaderID(pm.ShardID)
			if prid == 0 || err != nil || (ok && lid == prid) {
				continue // not a voter there, not hosted here, or led by it
			}
			pending++
			// Asked again when a request went unanswered (a transfer can
			// be dropped: no leader yet, or one under way).
			if ok && time.Since(asked[pm.ShardID]) > 500*time.Millisecond && h.nh.RequestLeaderTransfer(pm.ShardID, prid) == nil {
				asked[pm.ShardID] = time.Now()
			}
		}
		if pending == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (h *Host) waitPartitionsReady(ctx context.Context, topic string) error {
	h.kick()
	for {
		ready := true
		h.meta.read(func(st *metaState) {
			t := st.Topics[topic]
			if t == nil {
				return
			}
			for _, p := range t.Partitions {
				_, _, ok, err := h.nh.GetLeaderID(p.ShardID)
				if err != nil || !ok {
					// Not hosted here (err) is fine only when no replica is ours.
					for _, nid := range p.Replicas {
						if nid == h.cfg.NodeID {
							ready = false
						}
					}
				}
			}
		})
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: partitions of %q have no leader yet", core.ErrUnavailable, topic)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// AddPartitions grows the topic to count partitions and, as CreateTopic
// does, waits until every partition hosted on this node has a leader, and
// moves the new partitions' leaders to their preferred nodes.
func (h *Host) AddPartitions(ctx context.Context, name string, count int) (core.TopicInfo, error) {
	before := count // the partitions to lead from their preferred nodes: the new ones
	if t, err := h.Topic(name); err == nil {
		before = t.Partitions
	}
	res, err := h.proposeMeta(ctx, &metaCmd{Op: "add_partitions", Name: name, Count: count})
	if err != nil {
		return core.TopicInfo{}, err
	}
	switch res.Value {
	case metaNotFound:
		return core.TopicInfo{}, fmt.Errorf("%w: topic %q does not exist", core.ErrTopicNotFound, name)
	case metaInvalid:
		return core.TopicInfo{}, core.Invalidf("%s", res.Data)
	}
	if err := h.waitPartitionsReady(ctx, name); err != nil {
		return core.TopicInfo{}, err
	}
	h.leadPreferred(ctx, name, before)
	return h.Topic(name)
}

// DeleteTopic removes the topic; every node stops and deletes its replicas.
func (h *Host) DeleteTopic(ctx context.Context, name string) error {
	res, err := h.proposeMeta(ctx, &metaCmd{Op: "delete_topic", Name: name})
	if err != nil {
		return err
	}
	if res.Value == metaNotFound {
		return fmt.Errorf("%w: topic %q does not exist", core.ErrTopicNotFound, name)
	}
	return nil
}

func (h *Host) topicInfo(t *TopicMeta) core.TopicInfo {
	return core.TopicInfo{TopicConfig: h.effectiveConfig(t.Config), CreatedAt: t.CreatedAt}
}

// effectiveConfig fills the tiered storage fields a topic left zero (or
// was created before they existed) with their effective values.
func (h *Host) effectiveConfig(c core.TopicConfig) core.TopicConfig {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = h.cfg.SegmentBytes
	}
	c.LocalRetentionMs, c.LocalRetentionBytes = core.EffectiveLocalRetention(c)
	return c
}

// segmentBytes is the segment size of a shard's topic (the node's default
// for a topic that has none, or a shard no longer in the metadata).
func (h *Host) segmentBytes(shard uint64) int64 {
	n := h.cfg.SegmentBytes
	h.meta.read(func(st *metaState) {
		st.eachPartition(func(topic string, _ int, p *PartitionMeta) {
			if p.ShardID == shard && st.Topics[topic].Config.SegmentBytes > 0 {
				n = st.Topics[topic].Config.SegmentBytes
			}
		})
	})
	return n
}

// Topic reads the local copy of the metadata.
func (h *Host) Topic(name string) (core.TopicInfo, error) {
	var ti core.TopicInfo
	var ok bool
	h.meta.read(func(st *metaState) {
		if t := st.Topics[name]; t != nil {
			ti, ok = h.topicInfo(t), true
		}
	})
	if !ok {
		return ti, h.notFound(name)
	}
	return ti, nil
}

// Topics lists topics sorted by name.
func (h *Host) Topics() []core.TopicInfo {
	var out []core.TopicInfo
	h.meta.read(func(st *metaState) {
		for _, t := range st.Topics {
			out = append(out, h.topicInfo(t))
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (h *Host) partitionMeta(topic string, partition int) (PartitionMeta, error) {
	pm, _, err := h.partitionAndTopic(topic, partition)
	return pm, err
}

// partitionAndTopic is partitionMeta with the topic's configuration.
func (h *Host) partitionAndTopic(topic string, partition int) (PartitionMeta, core.TopicConfig, error) {
	var pm PartitionMeta
	var cfg core.TopicConfig
	var terr error
	h.meta.read(func(st *metaState) {
		t := st.Topics[topic]
		switch {
		case t == nil:
			terr = h.notFound(topic)
		case partition < 0 || partition >= len(t.Partitions):
			terr = fmt.Errorf("%w: topic %q has no partition %d", core.ErrPartitionNotFound, topic, partition)
		default:
			pm, cfg = t.Partitions[partition], t.Config
		}
	})
	return pm, cfg, terr
}

// PartitionInfo reports placement, the leader's node id and the offsets
// (from the local replica, or from the nodes that host the partition).
func (h *Host) PartitionInfo(topic string, partition int) (core.PartitionInfo, error) {
	pm, err := h.partitionMeta(topic, partition)
	if err != nil {
		return core.PartitionInfo{}, err
	}
	pi := core.PartitionInfo{Partition: partition, Replicas: nodeList(pm.Replicas)}
	if psm := h.localSM(pm.ShardID); psm != nil {
		if lid, _, ok, err := h.nh.GetLeaderID(pm.ShardID); err == nil && ok {
			pi.Leader, _ = pm.nodeOf(lid)
		}
		pi.LogStart, pi.HighWatermark = psm.logStart.Load(), psm.hwm.Load()
		pi.LocalStart, pi.RemoteEnd = psm.localStart.Load(), psm.remoteEnd.Load()
		return pi, nil
	}
	h.remotePartitionInfo(&pm, &pi)
	return pi, nil
}

// CommitOffsets stores a group's positions in the metadata shard.
func (h *Host) CommitOffsets(ctx context.Context, group string, offsets []core.GroupOffset) error {
	res, err := h.proposeMeta(ctx, &metaCmd{Op: "commit_offsets", Group: group, Offsets: offsets})
	if err != nil {
		return err
	}
	if res.Value == metaNotFound {
		return fmt.Errorf("%w: topic %q does not exist", core.ErrTopicNotFound, res.Data)
	}
	return nil
}

// GroupOffsets reads a group's committed positions, sorted.
func (h *Host) GroupOffsets(group string) []core.GroupOffset {
	var out []core.GroupOffset
	h.meta.read(func(st *metaState) {
		for topic, ps := range st.Groups[group] {
			for p, off := range ps {
				out = append(out, core.GroupOffset{Topic: topic, Partition: p, Offset: off})
			}
		}
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// notFound is the error for a topic missing from this node's metadata: not
// found, unless the metadata replica has not caught up since it started
// (then the topic may well exist).
func (h *Host) notFound(topic string) error {
	if !h.metaSynced.Load() {
		return fmt.Errorf("%w: node %d is still catching up with the cluster's metadata", core.ErrUnavailable, h.cfg.NodeID)
	}
	return fmt.Errorf("%w: topic %q does not exist", core.ErrTopicNotFound, topic)
}

// Ready reports whether the metadata shard has a leader, this node's copy
// of the metadata has caught up since it started, and this node is
// registered (and not removed).
func (h *Host) Ready() bool {
	if !h.metaSynced.Load() {
		return false
	}
	_, _, ok, err := h.nh.GetLeaderID(metaShardID)
	if err != nil || !ok {
		return false
	}
	reg := false
	h.meta.read(func(st *metaState) {
		n := st.Nodes[h.cfg.NodeID]
		reg = n != nil && n.State != nodeRemoved && n.HTTPAddr == h.cfg.HTTPAddr
	})
	return reg
}

// NodeCount is the number of active nodes (new replicas go to them).
func (h *Host) NodeCount() int {
	n := 0
	h.meta.read(func(st *metaState) { n = len(st.activeNodes()) })
	return max(n, 1)
}

// Nodes lists the registered nodes.
func (h *Host) Nodes() []NodeInfo {
	var out []NodeInfo
	h.meta.read(func(st *metaState) {
		for _, n := range st.Nodes {
			out = append(out, *n)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// CatalogPut implements core.Catalog.
func (h *Host) CatalogPut(ctx context.Context, table, key string, value []byte, cond core.CatalogCond) (bool, error) {
	v, err := compactJSON(value)
	if err != nil {
		return false, err
	}
	c := &metaCmd{Op: "put", Table: table, Key: key, Value: v, IfAbsent: cond.IfAbsent}
	if cond.IfEqual != nil {
		if c.IfEqual, err = compactJSON(cond.IfEqual); err != nil {
			return false, err
		}
	}
	res, err := h.proposeMeta(ctx, c)
	if err != nil {
		return false, err
	}
	return res.Value == metaOK, nil
}

// CatalogDelete implements core.Catalog.
func (h *Host) CatalogDelete(ctx context.Context, table, key string, cond core.CatalogCond) (bool, error) {
	c := &metaCmd{Op: "delete", Table: table, Key: key}
	if cond.IfEqual != nil {
		var err error
		if c.IfEqual, err = compactJSON(cond.IfEqual); err != nil {
			return false, err
		}
	}
	res, err := h.proposeMeta(ctx, c)
	if err != nil {
		return false, err
	}
	return res.Value == metaOK, nil
}

// CatalogGet implements core.Catalog.
func (h *Host) CatalogGet(table, key string) ([]byte, bool) {
	var v []byte
	var ok bool
	h.meta.read(func(st *metaState) {
		var raw json.RawMessage
		if raw, ok = st.Extra[table][key]; ok {
			v = append([]byte(nil), raw...)
		}
	})
	return v, ok
}

// CatalogList implements core.Catalog.
func (h *Host) CatalogList(table string) map[string][]byte {
	out := map[string][]byte{}
	h.meta.read(func(st *metaState) {
		for k, v := range st.Extra[table] {
			out[k] = append([]byte(nil), v...)
		}
	})
	return out
}

// CatalogSync implements core.Catalog: a ReadIndex round of the metadata
// shard, which returns once the local replica has applied up to the
// leader's commit index (Dragonboat batches concurrent rounds).
func (h *Host) CatalogSync(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, remoteTimeout)
		defer cancel()
	}
	if _, err := h.nh.SyncRead(ctx, metaShardID, nil); err != nil {
		return fmt.Errorf("%w: this node cannot reach the metadata leader to read the latest group state: %v", core.ErrUnavailable, err)
	}
	return nil
}

// CatalogChanged implements core.Catalog.
func (h *Host) CatalogChanged() <-chan struct{} { return h.meta.changed() }

func compactJSON(b []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, core.Invalidf("catalog values must be JSON: %v", err)
	}
	return buf.Bytes(), nil
}
