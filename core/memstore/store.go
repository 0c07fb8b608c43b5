package memstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/weir-broker/weir/core"
)

// Config configures a Store. The zero value is usable.
type Config struct {
	// Nodes is what NodeCount reports, and the largest replication factor a
	// topic may have; default 1.
	Nodes int
	// NodeID is the node PartitionInfo names as every partition's leader
	// (while the partition leads; see Partition.SetLeader) and first
	// replica; default 1.
	NodeID uint64
	// SegmentBytes: a partition rolls to a new segment before a write once
	// the active one holds this many bytes (counted as raftlog counts its
	// segment files: a 32-byte header, 37 bytes of frame header per batch,
	// and the batch's payload); default 1 MiB.
	SegmentBytes int64
	// MaxEntryBytes bounds one append or transaction (raftlog's Raft entry
	// limit); larger ones fail with core.ErrTooLarge. Default 64 MiB.
	MaxEntryBytes int
	// Now stamps topics' CreatedAt; default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Nodes <= 0 {
		c.Nodes = 1
	}
	if c.NodeID == 0 {
		c.NodeID = 1
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = 1 << 20
	}
	if c.MaxEntryBytes <= 0 {
		c.MaxEntryBytes = 64 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Store is an in-memory core.Store. It is safe for concurrent use.
//
// Lock order: Store.mu before Partition.mu (DeleteTopic marks partitions
// gone); a Partition never takes Store.mu while holding its own.
type Store struct {
	cfg Config

	mu      sync.Mutex // guards the fields below
	topics  map[string]*topic
	groups  map[string]map[string]map[int]int64 // group → topic → partition → offset
	catalog map[string]map[string][]byte        // table → key → compact JSON
	changed chan struct{}                       // closed at the next metadata change
	faults  faults
}

type topic struct {
	info  core.TopicInfo
	parts []*Partition
}

var _ core.Store = (*Store)(nil)

// New returns an empty store.
func New(cfg Config) *Store {
	cfg.setDefaults()
	return &Store{
		cfg:     cfg,
		topics:  map[string]*topic{},
		groups:  map[string]map[string]map[int]int64{},
		catalog: map[string]map[string][]byte{},
		changed: make(chan struct{}),
	}
}

// notify wakes CatalogChanged waiters. The caller holds s.mu.
func (s *Store) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// metaWrite runs a metadata write the way the metadata shard applies one:
// a fault may fail it (before or after f), and every applied write, even
// one whose condition failed, wakes CatalogChanged.
func (s *Store) metaWrite(ctx context.Context, op Op, f func() error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %v", core.ErrUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.guard(op, f, s.notify)
}

// Inject arms a fault for the store's own writes: OpCatalog (CatalogPut,
// CatalogDelete), OpCommit (CommitOffsets), OpTopic (CreateTopic,
// AddPartitions, DeleteTopic) and OpSync (CatalogSync). Ops 0 means all of them.
func (s *Store) Inject(f Fault) {
	if f.Ops == 0 {
		f.Ops = OpCatalog | OpCommit | OpTopic | OpSync
	}
	s.mu.Lock()
	s.faults.add(f)
	s.mu.Unlock()
}

// CreateTopic implements core.Store. Errors: core.ErrTopicExists,
// core.ErrBadRequest (no partitions, a replication factor below 1 or above
// Config.Nodes).
func (s *Store) CreateTopic(ctx context.Context, cfg core.TopicConfig) (core.TopicInfo, error) {
	if cfg.Partitions < 1 || cfg.ReplicationFactor < 1 {
		return core.TopicInfo{}, core.Invalidf("a topic needs at least one partition and one replica, not %d and %d", cfg.Partitions, cfg.ReplicationFactor)
	}
	var info core.TopicInfo
	err := s.metaWrite(ctx, OpTopic, func() error {
		if _, ok := s.topics[cfg.Name]; ok {
			return fmt.Errorf("%w: topic %q already exists", core.ErrTopicExists, cfg.Name)
		}
		if cfg.ReplicationFactor > s.cfg.Nodes {
			return core.Invalidf("replication factor %d exceeds the %d active nodes", cfg.ReplicationFactor, s.cfg.Nodes)
		}
		t := &topic{info: core.TopicInfo{TopicConfig: cfg, CreatedAt: s.cfg.Now().UnixMilli()}}
		for i := 0; i < cfg.Partitions; i++ {
			t.parts = append(t.parts, newPartition(s, cfg.Name, i))
		}
		s.topics[cfg.Name] = t
		info = t.info
		return nil
	})
	return info, err
}

// AddPartitions implements core.Store.
func (s *Store) AddPartitions(ctx context.Context, name string, count int) (core.TopicInfo, error) {
	var info core.TopicInfo
	err := s.metaWrite(ctx, OpTopic, func() error {
		t, ok := s.topics[name]
		if !ok {
			return fmt.Errorf("%w: topic %q does not exist", core.ErrTopicNotFound, name)
		}
		if count <= len(t.parts) {
			return core.Invalidf("topic %q has %d partitions: a topic's partitions can only grow", name, len(t.parts))
		}
		for i := len(t.parts); i < count; i++ {
			t.parts = append(t.parts, newPartition(s, name, i))
		}
		t.info.Partitions = count
		info = t.info
		return nil
	})
	return info, err
}

// DeleteTopic implements core.Store: the topic's group offsets go with it,
// and writes through handles on its partitions fail with
// core.ErrTopicNotFound.
func (s *Store) DeleteTopic(ctx context.Context, name string) error {
	return s.metaWrite(ctx, OpTopic, func() error {
		t, ok := s.topics[name]
		if !ok {
			return fmt.Errorf("%w: topic %q does not exist", core.ErrTopicNotFound, name)
		}
		delete(s.topics, name)
		for _, g := range s.groups {
			delete(g, name)
		}
		for _, p := range t.parts {
			p.markGone()
		}
		return nil
	})
}

// Topic implements core.Store.
func (s *Store) Topic(name string) (core.TopicInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.topics[name]
	if !ok {
		return core.TopicInfo{}, fmt.Errorf("%w: topic %q does not exist", core.ErrTopicNotFound, name)
	}
	return t.info, nil
}

// Topics implements core.Store: sorted by name.
func (s *Store) Topics() []core.TopicInfo {
	s.mu.Lock()
	out := make([]core.TopicInfo, 0, len(s.topics))
	for _, t := range s.topics {
		out = append(out, t.info)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Log returns the concrete partition, for fault injection and inspection.
// Errors as Partition.
func (s *Store) Log(topic string, partition int) (*Partition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.topics[topic]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: topic %q does not exist", core.ErrTopicNotFound, topic)
	case partition < 0 || partition >= len(t.parts):
		return nil, fmt.Errorf("%w: topic %q has no partition %d", core.ErrPartitionNotFound, topic, partition)
	}
	return t.parts[partition], nil
}

// Partition implements core.Store.
func (s *Store) Partition(topic string, partition int) (core.PartitionLog, error) {
	p, err := s.Log(topic, partition)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// PartitionInfo implements core.Store: the leader is Config.NodeID while
// the partition leads (0 otherwise), the replicas nodes 1..replication
// factor.
func (s *Store) PartitionInfo(topic string, partition int) (core.PartitionInfo, error) {
	p, err := s.Log(topic, partition)
	if err != nil {
		return core.PartitionInfo{}, err
	}
	t, err := s.Topic(topic)
	if err != nil {
		return core.PartitionInfo{}, err
	}
	pi := core.PartitionInfo{Partition: partition, LogStart: p.LogStart(), HighWatermark: p.HighWatermark()}
	if p.IsLeader() {
		pi.Leader = s.cfg.NodeID
	}
	pi.Replicas = append(pi.Replicas, s.cfg.NodeID)
	for n := uint64(1); len(pi.Replicas) < t.ReplicationFactor; n++ {
		if n != s.cfg.NodeID {
			pi.Replicas = append(pi.Replicas, n)
		}
	}
	return pi, nil
}

// CommitOffsets implements core.Store: all or nothing, core.ErrTopicNotFound
// when a topic does not exist (partitions are not checked: the broker does).
func (s *Store) CommitOffsets(ctx context.Context, group string, offsets []core.GroupOffset) error {
	return s.metaWrite(ctx, OpCommit, func() error {
		for _, o := range offsets {
			if _, ok := s.topics[o.Topic]; !ok {
				return fmt.Errorf("%w: topic %q does not exist", core.ErrTopicNotFound, o.Topic)
			}
		}
		g := s.groups[group]
		if g == nil {
			g = map[string]map[int]int64{}
			s.groups[group] = g
		}
		for _, o := range offsets {
			if g[o.Topic] == nil {
				g[o.Topic] = map[int]int64{}
			}
			g[o.Topic][o.Partition] = o.Offset
		}
		return nil
	})
}

// GroupOffsets implements core.Store: sorted by topic and partition.
func (s *Store) GroupOffsets(group string) []core.GroupOffset {
	s.mu.Lock()
	var out []core.GroupOffset
	for topic, ps := range s.groups[group] {
		for p, off := range ps {
			out = append(out, core.GroupOffset{Topic: topic, Partition: p, Offset: off})
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// Ready implements core.Store: always.
func (s *Store) Ready() bool { return true }

// NodeCount implements core.Store: Config.Nodes.
func (s *Store) NodeCount() int { return s.cfg.Nodes }

// CatalogPut implements core.Catalog. Values (and IfEqual) must be JSON;
// they are stored compacted, so IfEqual ignores insignificant whitespace.
func (s *Store) CatalogPut(ctx context.Context, table, key string, value []byte, cond core.CatalogCond) (bool, error) {
	v, err := compactJSON(value)
	if err != nil {
		return false, err
	}
	var eq []byte
	if cond.IfEqual != nil {
		if eq, err = compactJSON(cond.IfEqual); err != nil {
			return false, err
		}
	}
	ok := false
	err = s.metaWrite(ctx, OpCatalog, func() error {
		cur, exists := s.catalog[table][key]
		if exists && cond.IfAbsent || eq != nil && (!exists || !bytes.Equal(cur, eq)) {
			return nil
		}
		if s.catalog[table] == nil {
			s.catalog[table] = map[string][]byte{}
		}
		s.catalog[table][key] = v
		ok = true
		return nil
	})
	return ok, err
}

// CatalogDelete implements core.Catalog: false when the key is absent or
// holds something else than cond.IfEqual.
func (s *Store) CatalogDelete(ctx context.Context, table, key string, cond core.CatalogCond) (bool, error) {
	var eq []byte
	if cond.IfEqual != nil {
		var err error
		if eq, err = compactJSON(cond.IfEqual); err != nil {
			return false, err
		}
	}
	ok := false
	err := s.metaWrite(ctx, OpCatalog, func() error {
		cur, exists := s.catalog[table][key]
		if !exists || eq != nil && !bytes.Equal(cur, eq) {
			return nil
		}
		delete(s.catalog[table], key)
		ok = true
		return nil
	})
	return ok, err
}

// CatalogGet implements core.Catalog: a copy of the stored value.
func (s *Store) CatalogGet(table, key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.catalog[table][key]
	return bytes.Clone(v), ok
}

// CatalogList implements core.Catalog: never nil.
func (s *Store) CatalogList(table string) map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.catalog[table]))
	for k, v := range s.catalog[table] {
		out[k] = bytes.Clone(v)
	}
	return out
}

// CatalogChanged implements core.Catalog: closed at the next metadata write
// (topics, offsets, catalog; also one whose condition failed).
func (s *Store) CatalogChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// CatalogSync implements core.Catalog: this store is always current, so it
// returns at once, unless ctx ended or an OpSync fault is armed
// (core.ErrUnavailable).
func (s *Store) CatalogSync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %v", core.ErrUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.faults.take(OpSync); f != nil {
		return f.err()
	}
	return nil
}

func compactJSON(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, core.Invalidf("catalog values must be JSON: %v", err)
	}
	return buf.Bytes(), nil
}
