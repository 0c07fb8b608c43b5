package raftlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/weir-broker/weir/core"
)

// metaShardID is the Raft shard that holds the cluster metadata.
const metaShardID uint64 = 1

// firstPartitionShard is the first shard id given to a partition; ids are
// never reused, so a deleted topic's shards never come back.
const firstPartitionShard uint64 = 100

// Node states in the metadata.
const (
	nodeActive   = ""         // takes new replicas
	nodeDraining = "draining" // being removed: its replicas move away
	nodeRemoved  = "removed"  // gone for good; its id is never reused
)

// Metadata shard roles of a node (NodeInfo.MetaRole).
const (
	roleVoter     = "voter"
	roleNonVoting = "non_voting"
)

// NodeInfo is one node of the cluster as the metadata knows it.
type NodeInfo struct {
	ID       uint64 `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// KafkaAddr is the host:port Kafka clients reach the node on ("" when
	// its Kafka listener is off); Kafka Metadata names it (gateway/kafka).
	KafkaAddr string `json:"kafka_addr,omitempty"`
	State     string `json:"state,omitempty"`     // nodeActive, nodeDraining, nodeRemoved
	MetaRole  string `json:"meta_role,omitempty"` // as last reported by the controller
}

// PartitionMeta is the placement of one partition: its Raft shard and the
// replicas (replica id → node id). Replica ids are never reused in a shard.
//
// Replicas is the target set of voters. Members and Learners are what the
// shard's Raft membership holds, as its leader last reported; they differ
// from Replicas while the partition moves (a new replica joins as a
// non-voting learner, is promoted once caught up, then the replica it
// replaces is deleted). Initial is the membership the shard was created with
// (every initial replica bootstraps with exactly this map).
type PartitionMeta struct {
	ShardID   uint64            `json:"shard_id"`
	Replicas  map[uint64]uint64 `json:"replicas"`
	Initial   map[uint64]uint64 `json:"initial,omitempty"`
	Members   map[uint64]uint64 `json:"members,omitempty"`
	Learners  map[uint64]uint64 `json:"learners,omitempty"`
	CaughtUp  []uint64          `json:"caught_up,omitempty"` // learners whose node reported them caught up
	Preferred uint64            `json:"preferred,omitempty"` // preferred leader node
}

// initial is the bootstrap membership (metadata written before moves
// existed has none: Replicas never changed there).
func (p *PartitionMeta) initial() map[uint64]uint64 {
	if p.Initial == nil {
		return p.Replicas
	}
	return p.Initial
}

// members is the voting membership Raft has, as last reported.
func (p *PartitionMeta) members() map[uint64]uint64 {
	if p.Members == nil {
		return p.Replicas
	}
	return p.Members
}

// moving reports a pending membership change.
func (p *PartitionMeta) moving() bool {
	return len(p.Learners) > 0 || !sameKeys(p.Replicas, p.members())
}

// nodeOf returns the node a replica id lives on (in any role).
func (p *PartitionMeta) nodeOf(rid uint64) (uint64, bool) {
	for _, m := range []map[uint64]uint64{p.Replicas, p.members(), p.Learners, p.initial()} {
		if n, ok := m[rid]; ok {
			return n, true
		}
	}
	return 0, false
}

// hasNode reports whether node holds a replica of the partition in any role
// but the bootstrap one.
func (p *PartitionMeta) hasNode(node uint64) bool {
	for _, m := range []map[uint64]uint64{p.Replicas, p.members(), p.Learners} {
		for _, n := range m {
			if n == node {
				return true
			}
		}
	}
	return false
}

func (p *PartitionMeta) caughtUp(rid uint64) bool {
	for _, r := range p.CaughtUp {
		if r == rid {
			return true
		}
	}
	return false
}

func sameKeys(a, b map[uint64]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func cloneMap(m map[uint64]uint64) map[uint64]uint64 {
	if m == nil {
		return nil
	}
	out := make(map[uint64]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TopicMeta is one topic in the metadata.
type TopicMeta struct {
	Config     core.TopicConfig `json:"config"`
	CreatedAt  int64            `json:"created_at"`
	Partitions []PartitionMeta  `json:"partitions"`
}

// metaState is the whole metadata; the state machine keeps it in memory and
// snapshots it as JSON.
type metaState struct {
	Nodes         map[uint64]*NodeInfo                  `json:"nodes"`
	Topics        map[string]*TopicMeta                 `json:"topics"`
	NextShardID   uint64                                `json:"next_shard_id"`
	NextReplicaID uint64                                `json:"next_replica_id"`
	Placements    uint64                                `json:"placements"` // topics placed so far, spreads leaders
	Groups        map[string]map[string]map[int]int64   `json:"groups"`     // group → topic → partition → offset
	Extra         map[string]map[string]json.RawMessage `json:"extra,omitempty"`
}

func newMetaState() *metaState {
	return &metaState{
		Nodes:         map[uint64]*NodeInfo{},
		Topics:        map[string]*TopicMeta{},
		NextShardID:   firstPartitionShard,
		NextReplicaID: 1000,
		Groups:        map[string]map[string]map[int]int64{},
		Extra:         map[string]map[string]json.RawMessage{},
	}
}

// metaCmd is one metadata command, JSON encoded in a Raft entry.
type metaCmd struct {
	Op      string             `json:"op"`
	Time    int64              `json:"time,omitempty"`
	Node    *NodeInfo          `json:"node,omitempty"`
	Topic   *core.TopicConfig  `json:"topic,omitempty"`
	Name    string             `json:"name,omitempty"`
	Group   string             `json:"group,omitempty"`
	Offsets []core.GroupOffset `json:"offsets,omitempty"`
	// Count is add_partitions' new partition count of topic Name.
	Count int `json:"count,omitempty"`
	// Put/Delete of an opaque record in a named table (modules, pipelines,
	// subscriptions' definitions, principals...).
	Table string          `json:"table,omitempty"`
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	// IfAbsent makes a put fail with metaExists when the key is present.
	IfAbsent bool `json:"if_absent,omitempty"`
	// IfEqual makes a put or delete fail with metaExists unless the key
	// holds exactly this (compact JSON).
	IfEqual json.RawMessage `json:"if_equal,omitempty"`
	// Cluster operations.
	NodeID   uint64            `json:"node_id,omitempty"`
	Shard    uint64            `json:"shard,omitempty"`
	Replica  uint64            `json:"replica,omitempty"`
	Members  map[uint64]uint64 `json:"members,omitempty"`
	Learners map[uint64]uint64 `json:"learners,omitempty"`
	Roles    map[uint64]string `json:"roles,omitempty"`
}

// Result codes of metadata commands (statemachine.Result.Value).
const (
	metaOK uint64 = iota
	metaExists
	metaNotFound
	metaInvalid
)

// metaSM is the metadata state machine.
type metaSM struct {
	mu      sync.RWMutex // guards st
	st      *metaState
	applied uint64
	onApply func()

	notifyMu sync.Mutex
	notifyCh chan struct{}
}

// changed returns a channel closed at the next applied change.
func (m *metaSM) changed() <-chan struct{} {
	m.notifyMu.Lock()
	defer m.notifyMu.Unlock()
	return m.notifyCh
}

func (m *metaSM) notify() {
	m.notifyMu.Lock()
	close(m.notifyCh)
	m.notifyCh = make(chan struct{})
	m.notifyMu.Unlock()
	if m.onApply != nil {
		m.onApply()
	}
}

var _ sm.IStateMachine = (*metaSM)(nil)

func newMetaSM(onApply func()) *metaSM {
	return &metaSM{st: newMetaState(), onApply: onApply, notifyCh: make(chan struct{})}
}

func (m *metaSM) Update(e sm.Entry) (sm.Result, error) {
	var c metaCmd
	if err := json.Unmarshal(e.Cmd, &c); err != nil {
		return sm.Result{Value: metaInvalid, Data: []byte(err.Error())}, nil
	}
	m.mu.Lock()
	res := m.apply(&c)
	m.applied = e.Index
	m.mu.Unlock()
	m.notify()
	return res, nil
}

// apply applies one metadata command: a switch over the command kinds,
// each applied by a method of the state.
func (m *metaSM) apply(c *metaCmd) sm.Result {
	st := m.st
	switch c.Op {
	case "register_node":
		return st.registerNode(c.Node)
	case "join_node", "remove_node", "node_removed", "meta_roles", "partition_members", "caught_up", "rebalance":
		return st.applyCluster(c)
	case "create_topic":
		return st.createTopic(c.Topic, c.Time)
	case "add_partitions":
		return st.addPartitions(c.Name, c.Count)
	case "delete_topic":
		return st.deleteTopic(c.Name)
	case "commit_offsets":
		return st.commitOffsets(c.Group, c.Offsets)
	case "put":
		return st.putRecord(c)
	case "delete":
		return st.deleteRecord(c)
	default:
		return sm.Result{Value: metaInvalid, Data: []byte("unknown op " + c.Op)}
	}
}

// registerNode records node (a node's own registration at start), keeping
// the state and meta role of the member it already is. A removed node's id
// is refused.
func (st *metaState) registerNode(node *NodeInfo) sm.Result {
	if node == nil || node.ID == 0 {
		return sm.Result{Value: metaInvalid}
	}
	n := *node
	if cur := st.Nodes[n.ID]; cur != nil {
		if cur.State == nodeRemoved {
			return sm.Result{Value: metaInvalid, Data: []byte(fmt.Sprintf("node %d was removed from the cluster; node ids are never reused", n.ID))}
		}
		n.State, n.MetaRole = cur.State, cur.MetaRole
	} else {
		n.State, n.MetaRole = nodeActive, ""
	}
	st.Nodes[n.ID] = &n
	return sm.Result{Value: metaOK}
}

// createTopic adds the topic, created at now, placing the replicas
// of its partitions on the active nodes.
func (st *metaState) createTopic(topic *core.TopicConfig, now int64) sm.Result {
	if topic == nil {
		return sm.Result{Value: metaInvalid}
	}
	if _, ok := st.Topics[topic.Name]; ok {
		return sm.Result{Value: metaExists}
	}
	nodes := st.activeNodes()
	if len(nodes) == 0 {
		return sm.Result{Value: metaInvalid, Data: []byte("no nodes registered")}
	}
	cfg := *topic
	if cfg.Partitions > 0 && cfg.ReplicationFactor < 1 {
		// Placing it would panic on every replica (and again at every
		// replay); Host.CreateTopic refuses it before proposing.
		return sm.Result{Value: metaInvalid, Data: []byte(fmt.Sprintf("replication factor %d: a partition needs a replica", cfg.ReplicationFactor))}
	}
	if cfg.ReplicationFactor > len(nodes) {
		return sm.Result{Value: metaInvalid, Data: []byte(fmt.Sprintf("replication factor %d exceeds the %d active nodes", cfg.ReplicationFactor, len(nodes)))}
	}
	t := &TopicMeta{Config: cfg, CreatedAt: now}
	st.placePartitions(t, cfg.Partitions)
	st.Topics[cfg.Name] = t
	return sm.Result{Value: metaOK}
}

// placePartitions appends count partitions to t, each with a new shard
// and t's replication factor of replicas on the active nodes.
func (st *metaState) placePartitions(t *TopicMeta, count int) {
	pl := st.newPlacer()
	for i := 0; i < count; i++ {
		pm := PartitionMeta{ShardID: st.NextShardID, Replicas: map[uint64]uint64{}}
		st.NextShardID++
		chosen, preferred := pl.place(t.Config.ReplicationFactor, st.Placements+uint64(i))
		for _, n := range chosen {
			pm.Replicas[st.NextReplicaID] = n
			st.NextReplicaID++
		}
		pm.Initial, pm.Members, pm.Preferred = cloneMap(pm.Replicas), cloneMap(pm.Replicas), preferred
		t.Partitions = append(t.Partitions, pm)
	}
	st.Placements += uint64(count)
}

// addPartitions grows topic name to count partitions. The topic's
// replication factor must still fit the active nodes (a node may have
// been removed since the topic was created).
func (st *metaState) addPartitions(name string, count int) sm.Result {
	t := st.Topics[name]
	if t == nil {
		return sm.Result{Value: metaNotFound}
	}
	if count <= len(t.Partitions) {
		return sm.Result{Value: metaInvalid, Data: []byte(fmt.Sprintf("topic %q has %d partitions: a topic's partitions can only grow", name, len(t.Partitions)))}
	}
	if nodes := len(st.activeNodes()); t.Config.ReplicationFactor > nodes {
		return sm.Result{Value: metaInvalid, Data: []byte(fmt.Sprintf("the topic's replication factor %d exceeds the %d active nodes", t.Config.ReplicationFactor, nodes))}
	}
	st.placePartitions(t, count-len(t.Partitions))
	t.Config.Partitions = len(t.Partitions)
	return sm.Result{Value: metaOK}
}

// deleteTopic removes the topic name and every group's offsets on it.
func (st *metaState) deleteTopic(name string) sm.Result {
	if _, ok := st.Topics[name]; !ok {
		return sm.Result{Value: metaNotFound}
	}
	delete(st.Topics, name)
	for _, g := range st.Groups {
		delete(g, name)
	}
	return sm.Result{Value: metaOK}
}

// commitOffsets records group's offsets, all or (on a topic that does not
// exist) none.
func (st *metaState) commitOffsets(group string, offsets []core.GroupOffset) sm.Result {
	g := st.Groups[group]
	if g == nil {
		g = map[string]map[int]int64{}
		st.Groups[group] = g
	}
	for _, o := range offsets {
		if _, ok := st.Topics[o.Topic]; !ok {
			return sm.Result{Value: metaNotFound, Data: []byte(o.Topic)}
		}
	}
	for _, o := range offsets {
		tp := g[o.Topic]
		if tp == nil {
			tp = map[int]int64{}
			g[o.Topic] = tp
		}
		tp[o.Partition] = o.Offset
	}
	return sm.Result{Value: metaOK}
}

// putRecord writes an opaque record in a named table, under the command's
// conditions (IfAbsent, IfEqual).
func (st *metaState) putRecord(c *metaCmd) sm.Result {
	tbl := st.Extra[c.Table]
	if tbl == nil {
		tbl = map[string]json.RawMessage{}
		st.Extra[c.Table] = tbl
	}
	cur, ok := tbl[c.Key]
	if ok && c.IfAbsent {
		return sm.Result{Value: metaExists}
	}
	if c.IfEqual != nil && (!ok || !bytes.Equal(cur, c.IfEqual)) {
		return sm.Result{Value: metaExists}
	}
	tbl[c.Key] = c.Value
	return sm.Result{Value: metaOK}
}

// deleteRecord deletes an opaque record from a named table, under the
// command's IfEqual condition.
func (st *metaState) deleteRecord(c *metaCmd) sm.Result {
	tbl := st.Extra[c.Table]
	cur, ok := tbl[c.Key]
	if !ok {
		return sm.Result{Value: metaNotFound}
	}
	if c.IfEqual != nil && !bytes.Equal(cur, c.IfEqual) {
		return sm.Result{Value: metaExists}
	}
	delete(tbl, c.Key)
	return sm.Result{Value: metaOK}
}

// read runs f with the state under the read lock; f must not keep references.
func (m *metaSM) read(f func(st *metaState)) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	f(m.st)
}

func (m *metaSM) Lookup(q interface{}) (interface{}, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.applied, nil
}

func (m *metaSM) SaveSnapshot(w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	m.mu.RLock()
	b, err := json.Marshal(m.st)
	m.mu.RUnlock()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (m *metaSM) RecoverFromSnapshot(r io.Reader, _ []sm.SnapshotFile, _ <-chan struct{}) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	st := newMetaState()
	if err := json.Unmarshal(b, st); err != nil {
		return err
	}
	if st.Extra == nil {
		st.Extra = map[string]map[string]json.RawMessage{}
	}
	m.mu.Lock()
	m.st = st
	m.mu.Unlock()
	m.notify()
	return nil
}

func (m *metaSM) Close() error { return nil }
