package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Consumer groups, stream model (Kafka style): the members of a group share
// the partitions of the topics they subscribe to. The group's state — its
// generation, its members with their last heartbeat, and the assignment —
// is one JSON document in the replicated catalog (table "groups"), changed
// only by compare-and-set. Any node can therefore serve any member, and
// any node can expire a member whose heartbeats stopped: the decision is a
// CAS on the document. Nodes never compare their clocks: each node measures
// how long a member's stored heartbeat has stayed unchanged on its own
// clock (silentFor), so a node whose clock is ahead or behind neither
// expires live members nor keeps dead ones.
//
// Every change of the member set bumps the generation and recomputes the
// assignment (sticky: a member keeps what it had up to its fair share). A
// member reads only the partitions assigned to it in the generation it
// last saw, and a commit carrying another generation is refused, so one
// generation never delivers a partition to two members.

// GroupsTable is the catalog table holding one document per group.
const GroupsTable = "groups"

// Reset policies: where a member starts on a partition the group has no
// committed offset for.
const (
	FromEarliest = "earliest"
	FromLatest   = "latest"
)

// GroupConfig configures a GroupCoordinator. Zero values take the defaults named.
type GroupConfig struct {
	// NodeID is recorded on the members this node serves (shown by describe).
	NodeID uint64
	// DefaultSessionTimeout applies when a member asks for none; default 10 s.
	DefaultSessionTimeout time.Duration
	// MinSessionTimeout and MaxSessionTimeout bound what members may ask;
	// defaults 500 ms and 5 min.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// CheckInterval is how often this node expires silent members, renews
	// the heartbeats of the members it keeps alive (WebSocket members) and
	// repairs assignments after topic changes; default 250 ms.
	CheckInterval time.Duration
	// MaxMembers per group; default 1000.
	MaxMembers int
	// Now is the clock; default time.Now. Stored times (joined, last
	// heartbeat) are shown to users; expiry never compares them with
	// another node's clock, only with this node's earlier readings.
	Now    func() time.Time
	Logger *slog.Logger
}

// Validate reports a negative duration or count (zero takes the default),
// or a MinSessionTimeout above MaxSessionTimeout when both are set.
// NewGroupCoordinator calls it and returns its error.
func (c *GroupConfig) Validate() error {
	if err := negative("GroupConfig",
		durField("DefaultSessionTimeout", c.DefaultSessionTimeout),
		durField("MinSessionTimeout", c.MinSessionTimeout),
		durField("MaxSessionTimeout", c.MaxSessionTimeout),
		durField("CheckInterval", c.CheckInterval),
		intField("MaxMembers", c.MaxMembers),
	); err != nil {
		return err
	}
	if c.MinSessionTimeout > 0 && c.MaxSessionTimeout > 0 && c.MinSessionTimeout > c.MaxSessionTimeout {
		return fmt.Errorf("core: GroupConfig.MinSessionTimeout (%s) is above MaxSessionTimeout (%s)", c.MinSessionTimeout, c.MaxSessionTimeout)
	}
	return nil
}

func (c *GroupConfig) setDefaults() {
	if c.DefaultSessionTimeout <= 0 {
		c.DefaultSessionTimeout = 10 * time.Second
	}
	if c.MinSessionTimeout <= 0 {
		c.MinSessionTimeout = 500 * time.Millisecond
	}
	if c.MaxSessionTimeout <= 0 {
		c.MaxSessionTimeout = 5 * time.Minute
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = 250 * time.Millisecond
	}
	if c.MaxMembers <= 0 {
		c.MaxMembers = 1000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// TopicPartitions names partitions of one topic.
type TopicPartitions struct {
	Topic      string `json:"topic"`
	Partitions []int  `json:"partitions"`
}

// GroupMember is one member as the group document stores it.
type GroupMember struct {
	ID               string            `json:"id"`
	ClientID         string            `json:"client_id,omitempty"`
	Node             uint64            `json:"node"`
	Kind             string            `json:"kind"`                // "ws" or "http"
	Principal        string            `json:"principal,omitempty"` // who joined ("" with security off)
	Topics           []string          `json:"topics"`
	From             string            `json:"from"` // reset policy: earliest or latest
	SessionTimeoutMs int64             `json:"session_timeout_ms"`
	JoinedMs         int64             `json:"joined_ms"`
	HeartbeatMs      int64             `json:"heartbeat_ms"`
	Assignment       []TopicPartitions `json:"assignment"`
}

// Owns reports whether the member is assigned topic/partition.
func (m *GroupMember) Owns(topic string, partition int) bool {
	for _, tp := range m.Assignment {
		if tp.Topic == topic {
			return slices.Contains(tp.Partitions, partition)
		}
	}
	return false
}

// Group is a consumer group's document: its generation and its members
// (sorted by ID), each with its assignment.
type Group struct {
	Name       string        `json:"-"`
	Generation int64         `json:"generation"`
	Members    []GroupMember `json:"members"`
	UpdatedMs  int64         `json:"updated_ms"`
}

func (g *Group) member(id string) *GroupMember {
	for i := range g.Members {
		if g.Members[i].ID == id {
			return &g.Members[i]
		}
	}
	return nil
}

// Membership is what a member knows of its group: its id, the current
// generation and its partitions in it.
type Membership struct {
	Group          string
	MemberID       string
	Generation     int64
	Assignment     []TopicPartitions
	From           string
	SessionTimeout time.Duration
	// Principal is who joined the member; only it may act as the member.
	Principal string
}

func membershipOf(g *Group, m *GroupMember) Membership {
	return Membership{
		Group: g.Name, MemberID: m.ID, Generation: g.Generation,
		Assignment: cloneAssignment(m.Assignment), From: m.From,
		SessionTimeout: time.Duration(m.SessionTimeoutMs) * time.Millisecond,
		Principal:      m.Principal,
	}
}

// Owns reports whether the membership includes topic/partition.
func (m *Membership) Owns(topic string, partition int) bool {
	gm := GroupMember{Assignment: m.Assignment}
	return gm.Owns(topic, partition)
}

// GroupJoin asks to add a member to a group.
type GroupJoin struct {
	ClientID       string        // optional; prefixes the member id
	Kind           string        // "ws" or "http"
	Topics         []string      // the topics the member consumes (≥ 1)
	SessionTimeout time.Duration // 0: the default
	From           string        // reset policy; "" means latest
	// Principal is who joins (the gateway binds member calls to it).
	Principal string
}

// GroupCoordinator runs consumer group membership on the catalog. It is
// safe for concurrent use; Run must be running for members to expire and
// for KeepAlive to renew heartbeats.
type GroupCoordinator struct {
	cfg    GroupConfig
	broker *Broker
	store  Store

	mu    sync.Mutex                // guards local and beats
	local map[string]map[string]int // group → member → keep-alive count
	beats map[beatKey]beatSeen      // what this node saw of each member's heartbeat
}

type beatKey struct{ group, member string }

// beatSeen is a member's stored heartbeat value and when, on this node's
// clock, this node first saw it.
type beatSeen struct {
	value int64
	since time.Time
}

// NewGroupCoordinator returns a coordinator over the broker's store, or
// cfg.Validate's error.
func NewGroupCoordinator(b *Broker, cfg GroupConfig) (*GroupCoordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &GroupCoordinator{cfg: cfg, broker: b, store: b.Store(), local: map[string]map[string]int{}, beats: map[beatKey]beatSeen{}}, nil
}

// Config returns the effective configuration.
func (c *GroupCoordinator) Config() GroupConfig { return c.cfg }

// Changed returns a channel closed at the next change of the catalog
// (group documents among others): watchers re-read their membership then.
func (c *GroupCoordinator) Changed() <-chan struct{} { return c.store.CatalogChanged() }

// ValidGroupName reports whether name can name a group: 1–249 bytes, no
// '/' and no control characters.
func ValidGroupName(name string) bool {
	if name == "" || len(name) > 249 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] == '/' || name[i] == 0x7f {
			return false
		}
	}
	return true
}

func (c *GroupCoordinator) nowMs() int64 { return c.cfg.Now().UnixMilli() }

// silentFor returns how long, on this node's clock, m's stored heartbeat
// has been the value it is now (0 when the value is new to this node), and
// whether this node had never seen the member before. A member is expired
// when it has been silent for its session timeout, and a heartbeat is
// written again when it has been silent for a fifth of it: both decisions
// use only this node's clock.
func (c *GroupCoordinator) silentFor(group string, m *GroupMember) (silent time.Duration, unseen bool) {
	now := c.cfg.Now()
	k := beatKey{group, m.ID}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen, ok := c.beats[k]
	if !ok || seen.value != m.HeartbeatMs {
		c.beats[k] = beatSeen{value: m.HeartbeatMs, since: now}
		return 0, !ok
	}
	return now.Sub(seen.since), false
}

// renew sets a new heartbeat value: the clock, or one more than the stored
// value when this node's clock is behind it, so that every renewal changes
// the value other nodes watch.
func renew(m *GroupMember, now int64) { m.HeartbeatMs = max(now, m.HeartbeatMs+1) }

// expiredMember reports whether m has been silent for its session timeout.
func (c *GroupCoordinator) expiredMember(group string, m *GroupMember) bool {
	d, _ := c.silentFor(group, m)
	return d > time.Duration(m.SessionTimeoutMs)*time.Millisecond
}

// staleBeat reports whether m's heartbeat is due for a renewal: silent for
// a fifth of its session timeout, or never seen here before (this node
// cannot tell how old the value is).
func (c *GroupCoordinator) staleBeat(group string, m *GroupMember) bool {
	d, unseen := c.silentFor(group, m)
	return unseen || d >= time.Duration(m.SessionTimeoutMs)*time.Millisecond/5
}

// Join adds a member and rebalances. Errors: ErrBadRequest, ErrTopicNotFound,
// ErrTooLarge (the group is full), ErrUnavailable.
func (c *GroupCoordinator) Join(ctx context.Context, group string, req GroupJoin) (Membership, error) {
	if !ValidGroupName(group) {
		return Membership{}, Invalidf("group names must be 1–249 characters without '/'")
	}
	if len(req.Topics) == 0 || len(req.Topics) > 100 {
		return Membership{}, Invalidf("a member consumes 1 to 100 topics")
	}
	topics := slices.Clone(req.Topics)
	sort.Strings(topics)
	topics = slices.Compact(topics)
	for _, t := range topics {
		if _, err := c.store.Topic(t); err != nil {
			return Membership{}, err
		}
	}
	from := req.From
	switch from {
	case "":
		from = FromLatest
	case FromEarliest, FromLatest:
	default:
		return Membership{}, Invalidf("from must be earliest or latest, not %q", from)
	}
	st := req.SessionTimeout
	if st == 0 {
		st = c.cfg.DefaultSessionTimeout
	}
	if st < c.cfg.MinSessionTimeout || st > c.cfg.MaxSessionTimeout {
		return Membership{}, Invalidf("session_timeout_ms must be between %d and %d", c.cfg.MinSessionTimeout.Milliseconds(), c.cfg.MaxSessionTimeout.Milliseconds())
	}
	if len(req.ClientID) > 64 {
		return Membership{}, Invalidf("client_id must be at most 64 bytes")
	}
	id := newMemberID(req.ClientID)
	kind := req.Kind
	if kind == "" {
		kind = "http"
	}
	doc, err := c.update(ctx, group, func(g *Group, now int64) (bool, error) {
		if len(g.Members) >= c.cfg.MaxMembers {
			return false, fmt.Errorf("%w: group %q has %d members, the limit", ErrTooLarge, group, c.cfg.MaxMembers)
		}
		g.Members = append(g.Members, GroupMember{
			ID: id, ClientID: req.ClientID, Node: c.cfg.NodeID, Kind: kind, Principal: req.Principal, Topics: topics, From: from,
			SessionTimeoutMs: st.Milliseconds(), JoinedMs: now, HeartbeatMs: now,
		})
		c.rebalance(g, now)
		return true, nil
	})
	if err != nil {
		return Membership{}, err
	}
	return membershipOf(&doc, doc.member(id)), nil
}

// Member reads a member's current membership from this node's copy of the
// catalog (no write). ErrUnknownMember when the member left or expired.
func (c *GroupCoordinator) Member(group, member string) (Membership, error) {
	g, _, err := c.read(group)
	if err != nil {
		return Membership{}, err
	}
	m := g.member(member)
	if m == nil {
		return Membership{}, fmt.Errorf("%w: %q is not a member of group %q (it left or its session expired): join again", ErrUnknownMember, member, group)
	}
	return membershipOf(&g, m), nil
}

// Heartbeat renews a member's session and returns its membership, read
// after a CatalogSync (never from a stale copy). The write is skipped while the stored heartbeat is younger than a fifth of
// the session timeout, so frequent polls cost no Raft entry each.
func (c *GroupCoordinator) Heartbeat(ctx context.Context, group, member string) (Membership, error) {
	// A node whose metadata lags must not answer with an older generation
	// and older commits than the member has seen (found by make chaos: a
	// lagging node sent a member back to generation 6 and offset 96 after
	// it had committed 168).
	if err := c.store.CatalogSync(ctx); err != nil {
		return Membership{}, err
	}
	g, _, err := c.read(group)
	if err != nil {
		return Membership{}, err
	}
	m := g.member(member)
	if m == nil {
		return Membership{}, fmt.Errorf("%w: %q is not a member of group %q (it left or its session expired): join again", ErrUnknownMember, member, group)
	}
	if !c.staleBeat(group, m) {
		return membershipOf(&g, m), nil
	}
	doc, err := c.update(ctx, group, func(g *Group, now int64) (bool, error) {
		m := g.member(member)
		if m == nil {
			return false, fmt.Errorf("%w: %q is not a member of group %q (it left or its session expired): join again", ErrUnknownMember, member, group)
		}
		renew(m, now)
		return true, nil
	})
	if err != nil {
		return Membership{}, err
	}
	return membershipOf(&doc, doc.member(member)), nil
}

// Leave removes a member and rebalances. Leaving twice is not an error.
func (c *GroupCoordinator) Leave(ctx context.Context, group, member string) error {
	_, err := c.update(ctx, group, func(g *Group, now int64) (bool, error) {
		i := slices.IndexFunc(g.Members, func(m GroupMember) bool { return m.ID == member })
		if i < 0 {
			return false, nil
		}
		g.Members = slices.Delete(g.Members, i, i+1)
		c.rebalance(g, now)
		return true, nil
	})
	return err
}

// KeepAlive makes this node renew the member's heartbeat for as long as
// the member is alive here (a WebSocket member lives as long as its
// connection). The returned function stops it.
func (c *GroupCoordinator) KeepAlive(group, member string) (release func()) {
	c.mu.Lock()
	ms := c.local[group]
	if ms == nil {
		ms = map[string]int{}
		c.local[group] = ms
	}
	ms[member]++
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if ms := c.local[group]; ms != nil {
				if ms[member]--; ms[member] <= 0 {
					delete(ms, member)
				}
				if len(ms) == 0 {
					delete(c.local, group)
				}
			}
		})
	}
}

// Commit stores offsets for a member after checking it is in the current
// generation and owns every partition. Errors: ErrUnknownMember,
// *StaleGenerationError (ErrStaleGeneration), ErrNotAssigned, and those of
// Broker.CommitOffsets.
func (c *GroupCoordinator) Commit(ctx context.Context, group, member string, generation int64, offs []GroupOffset) error {
	ms, err := c.Member(group, member)
	if err != nil {
		return err
	}
	if generation != ms.Generation {
		return &StaleGenerationError{Group: group, Generation: generation, Current: ms.Generation}
	}
	for _, o := range offs {
		if !ms.Owns(o.Topic, o.Partition) {
			return fmt.Errorf("%w: partition %d of %q is not assigned to member %q in generation %d", ErrNotAssigned, o.Partition, o.Topic, member, ms.Generation)
		}
	}
	return c.broker.CommitOffsets(ctx, group, offs)
}

// Groups lists the groups that have a document, sorted.
func (c *GroupCoordinator) Groups() []string {
	var out []string
	for k := range c.store.CatalogList(GroupsTable) {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Get returns a group's document from this node's copy of the catalog.
func (c *GroupCoordinator) Get(group string) (Group, bool) {
	g, ok, err := c.read(group)
	return g, ok && err == nil
}

// PartitionLag is one partition of a group's topics: its owner, the
// committed offset and the lag.
type PartitionLag struct {
	Topic         string
	Partition     int
	Member        string // "" when unassigned
	Committed     int64  // -1: nothing committed
	LogStart      int64
	HighWatermark int64
	Lag           int64 // records behind: high watermark − committed (or − log start)
}

// GroupDescription is a group with its members, assignment and lag.
type GroupDescription struct {
	Group
	Partitions []PartitionLag
}

// Describe returns a group's members and the lag of every partition of the
// topics its members consume or it has offsets on. ErrGroupNotFound when
// it has neither members nor offsets.
func (c *GroupCoordinator) Describe(group string) (GroupDescription, error) {
	g, ok, err := c.read(group)
	if err != nil {
		return GroupDescription{}, err
	}
	offs := c.store.GroupOffsets(group)
	if !ok && len(offs) == 0 {
		return GroupDescription{}, fmt.Errorf("%w: group %q has no members and no committed offsets", ErrGroupNotFound, group)
	}
	d := GroupDescription{Group: g}
	committed := map[string]map[int]int64{}
	topics := map[string]bool{}
	for _, o := range offs {
		if committed[o.Topic] == nil {
			committed[o.Topic] = map[int]int64{}
		}
		committed[o.Topic][o.Partition] = o.Offset
		topics[o.Topic] = true
	}
	owner := map[string]map[int]string{}
	for _, m := range g.Members {
		for _, t := range m.Topics {
			topics[t] = true
		}
		for _, tp := range m.Assignment {
			if owner[tp.Topic] == nil {
				owner[tp.Topic] = map[int]string{}
			}
			for _, p := range tp.Partitions {
				owner[tp.Topic][p] = m.ID
			}
		}
	}
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		ti, err := c.store.Topic(t)
		if err != nil {
			continue
		}
		for p := 0; p < ti.Partitions; p++ {
			pl := PartitionLag{Topic: t, Partition: p, Member: owner[t][p], Committed: -1}
			if pi, err := c.store.PartitionInfo(t, p); err == nil {
				pl.LogStart, pl.HighWatermark = pi.LogStart, pi.HighWatermark
			}
			base := pl.LogStart
			if off, ok := committed[t][p]; ok {
				pl.Committed, base = off, off
			}
			pl.Lag = max(0, pl.HighWatermark-base)
			d.Partitions = append(d.Partitions, pl)
		}
	}
	return d, nil
}

// Run expires members whose heartbeats stopped, renews the members kept
// alive on this node, and rebalances groups whose assignment no longer
// fits their topics, every CheckInterval until ctx ends. Every node runs
// it; compare-and-set makes concurrent decisions harmless.
func (c *GroupCoordinator) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.check(ctx)
	}
}

// check runs one pass of Run.
func (c *GroupCoordinator) check(ctx context.Context) {
	c.mu.Lock()
	local := make(map[string][]string, len(c.local))
	for g, ms := range c.local {
		for m := range ms {
			local[g] = append(local[g], m)
		}
	}
	c.mu.Unlock()
	present := map[beatKey]bool{}
	defer c.forgetBeats(present)
	for name, raw := range c.store.CatalogList(GroupsTable) {
		var g Group
		if json.Unmarshal(raw, &g) != nil {
			continue
		}
		g.Name = name
		for _, m := range g.Members {
			present[beatKey{name, m.ID}] = true
		}
		if !c.needsWork(&g, local[name]) {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.update(cctx, name, func(g *Group, now int64) (bool, error) {
			changed := false
			for _, id := range local[name] {
				if m := g.member(id); m != nil && c.staleBeat(name, m) {
					renew(m, now)
					changed = true
				}
			}
			n := len(g.Members)
			g.Members = slices.DeleteFunc(g.Members, func(m GroupMember) bool {
				expired := c.expiredMember(name, &m)
				if expired {
					c.cfg.Logger.Info("consumer group member expired", "group", name, "member", m.ID, "session_timeout_ms", m.SessionTimeoutMs)
				}
				return expired
			})
			if len(g.Members) != n || !c.balanced(g) {
				c.rebalance(g, now)
				changed = true
			}
			return changed, nil
		})
		cancel()
		if err != nil && ctx.Err() == nil {
			c.cfg.Logger.Debug("consumer group check", "group", name, "err", err)
		}
	}
}

func (c *GroupCoordinator) needsWork(g *Group, local []string) bool {
	work := false
	for _, id := range local {
		if m := g.member(id); m != nil && c.staleBeat(g.Name, m) {
			work = true
		}
	}
	for i := range g.Members { // every member: this node starts watching it
		if c.expiredMember(g.Name, &g.Members[i]) {
			work = true
		}
	}
	return work || !c.balanced(g)
}

// forgetBeats drops what this node saw of members no longer in any group.
func (c *GroupCoordinator) forgetBeats(present map[beatKey]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.beats {
		if !present[k] {
			delete(c.beats, k)
		}
	}
}

// balanced reports whether the stored assignment is what a rebalance
// would compute now (topics may have been created or deleted).
func (c *GroupCoordinator) balanced(g *Group) bool {
	want := Assign(g.Members, c.partitionCounts(g.Members))
	for i := range g.Members {
		if !equalAssignment(g.Members[i].Assignment, want[g.Members[i].ID]) {
			return false
		}
	}
	return true
}

func (c *GroupCoordinator) partitionCounts(ms []GroupMember) map[string]int {
	counts := map[string]int{}
	for _, m := range ms {
		for _, t := range m.Topics {
			if _, ok := counts[t]; ok {
				continue
			}
			if ti, err := c.store.Topic(t); err == nil {
				counts[t] = ti.Partitions
			} else {
				counts[t] = 0
			}
		}
	}
	return counts
}

// rebalance recomputes the assignment and starts a new generation.
func (c *GroupCoordinator) rebalance(g *Group, now int64) {
	want := Assign(g.Members, c.partitionCounts(g.Members))
	for i := range g.Members {
		g.Members[i].Assignment = want[g.Members[i].ID]
	}
	g.Generation++
	g.UpdatedMs = now
}

// read returns the group's document from this node's catalog copy.
func (c *GroupCoordinator) read(group string) (Group, bool, error) {
	raw, ok := c.store.CatalogGet(GroupsTable, group)
	g := Group{Name: group}
	if !ok {
		return g, false, nil
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		return g, false, fmt.Errorf("group %q: corrupt document: %w", group, err)
	}
	g.Name = group
	return g, true, nil
}

// update applies fn to the group's document with compare-and-set, retrying
// when another node changed it first. fn returns whether it changed the
// document; it may run several times.
func (c *GroupCoordinator) update(ctx context.Context, group string, fn func(g *Group, now int64) (bool, error)) (Group, error) {
	backoff := 2 * time.Millisecond
	for {
		changed := c.store.CatalogChanged()
		raw, ok := c.store.CatalogGet(GroupsTable, group)
		g := Group{Name: group}
		if ok {
			if err := json.Unmarshal(raw, &g); err != nil {
				return g, fmt.Errorf("group %q: corrupt document: %w", group, err)
			}
			g.Name = group
		}
		mod, err := fn(&g, c.nowMs())
		if err != nil || !mod {
			return g, err
		}
		val, err := json.Marshal(&g)
		if err != nil {
			return g, err
		}
		cond := CatalogCond{IfAbsent: !ok}
		if ok {
			cond.IfEqual = raw
		}
		done, err := c.store.CatalogPut(ctx, GroupsTable, group, val, cond)
		if err != nil {
			return g, err
		}
		if done {
			return g, nil
		}
		// Another node changed the group first: wait until this node's copy
		// has caught up, then try again on the new document.
		t := time.NewTimer(backoff)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return g, fmt.Errorf("%w: group %q: %v", ErrUnavailable, group, ctx.Err())
		}
		t.Stop()
		backoff = min(backoff*2, 50*time.Millisecond)
	}
}

// Assign computes a sticky, balanced assignment: for each topic, the
// members consuming it share its partitions as evenly as possible (counts
// differ by at most one); a member keeps the partitions it already has up
// to its share, and only the excess moves. The result is a pure function
// of the members (their IDs, topics and current assignment) and the
// partition counts, so every node computes the same.
func Assign(members []GroupMember, partitions map[string]int) map[string][]TopicPartitions {
	out := make(map[string][]TopicPartitions, len(members))
	topics := make([]string, 0, len(partitions))
	for t := range partitions {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		n := partitions[t]
		var ms []*GroupMember
		for i := range members {
			if slices.Contains(members[i].Topics, t) {
				ms = append(ms, &members[i])
			}
		}
		if len(ms) == 0 || n <= 0 {
			continue
		}
		final := assignTopic(t, n, ms)
		for _, m := range ms {
			ps := final[m.ID]
			sort.Ints(ps)
			if len(ps) > 0 {
				out[m.ID] = append(out[m.ID], TopicPartitions{Topic: t, Partitions: ps})
			}
		}
	}
	return out
}

// assignTopic shares topic t's n partitions among ms (its consumers):
// each keeps what it holds up to its quota, the rest go in order to those
// below quota. It returns the partitions by member ID.
func assignTopic(t string, n int, ms []*GroupMember) map[string][]int {
	held := heldPartitions(t, n, ms)
	quota := assignQuotas(n, ms, held)
	taken := make([]bool, n)
	final := make(map[string][]int, len(ms))
	for _, m := range ms {
		keep := held[m.ID]
		if len(keep) > quota[m.ID] {
			keep = keep[:quota[m.ID]]
		}
		for _, p := range keep {
			taken[p] = true
		}
		final[m.ID] = slices.Clone(keep)
	}
	// Hand out the free partitions, in order, to members below quota.
	byID := slices.Clone(ms)
	sort.Slice(byID, func(i, j int) bool { return byID[i].ID < byID[j].ID })
	next := 0
	for _, m := range byID {
		for len(final[m.ID]) < quota[m.ID] {
			for taken[next] {
				next++
			}
			taken[next] = true
			final[m.ID] = append(final[m.ID], next)
		}
	}
	return final
}

// heldPartitions is what each member holds of topic t now: valid
// partitions, each claimed once, sorted.
func heldPartitions(t string, n int, ms []*GroupMember) map[string][]int {
	claimed := make([]bool, n)
	held := make(map[string][]int, len(ms))
	for _, m := range ms {
		for _, tp := range m.Assignment {
			if tp.Topic != t {
				continue
			}
			for _, p := range tp.Partitions {
				if p >= 0 && p < n && !claimed[p] {
					claimed[p] = true
					held[m.ID] = append(held[m.ID], p)
				}
			}
		}
		sort.Ints(held[m.ID])
	}
	return held
}

// assignQuotas is how many of n partitions each member gets: n/len(ms),
// one more for the n%len(ms) members holding the most (then by ID).
func assignQuotas(n int, ms []*GroupMember, held map[string][]int) map[string]int {
	order := slices.Clone(ms)
	sort.SliceStable(order, func(i, j int) bool {
		hi, hj := len(held[order[i].ID]), len(held[order[j].ID])
		if hi != hj {
			return hi > hj
		}
		return order[i].ID < order[j].ID
	})
	q, r := n/len(ms), n%len(ms)
	quota := make(map[string]int, len(ms))
	for i, m := range order {
		quota[m.ID] = q
		if i < r {
			quota[m.ID]++
		}
	}
	return quota
}

func equalAssignment(a, b []TopicPartitions) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Topic != b[i].Topic || !slices.Equal(a[i].Partitions, b[i].Partitions) {
			return false
		}
	}
	return true
}

func cloneAssignment(a []TopicPartitions) []TopicPartitions {
	out := make([]TopicPartitions, len(a))
	for i, tp := range a {
		out[i] = TopicPartitions{Topic: tp.Topic, Partitions: slices.Clone(tp.Partitions)}
	}
	return out
}

// newMemberID returns clientID (or "member") with a random suffix.
func newMemberID(clientID string) string {
	var b [8]byte
	rand.Read(b[:])
	prefix := strings.Map(func(r rune) rune {
		if r < 0x20 || r == '/' || r == 0x7f {
			return '_'
		}
		return r
	}, clientID)
	if prefix == "" {
		prefix = "member"
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}
