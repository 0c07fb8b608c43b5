package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Geo-replication by cluster links (docs/geo-replication.md). A link on
// cluster B names a source cluster A and the topics and groups to copy;
// B's partition leaders pull the topics' records into mirror topics with
// the same offsets (internal/link runs that). This file holds the domain
// part: the link spec, its validation and matching, the mirror marks of
// topics, and the refusal of writes to a mirror topic (produces, pipeline
// outputs, dead letters, redrive: every writer but the link's puller).

// Catalog tables of links and mirror marks.
const (
	LinksTable   = "links"
	MirrorsTable = "mirrors"
)

var (
	// ErrMirrorTopic is a write to a mirror topic that was not promoted
	// (a produce, a pipeline's output or dead letters, a subscription's
	// dead letters, a redrive): HTTP 409 mirror_topic. *MirrorError
	// carries the names.
	ErrMirrorTopic  = errors.New("mirror topic")
	ErrLinkNotFound = errors.New("link not found")
	ErrLinkExists   = errors.New("link exists")
	// ErrBaseOffset is a mirror append whose expected base offset is not
	// the partition's next offset; *BaseOffsetError carries both.
	ErrBaseOffset = errors.New("base offset mismatch")
)

// MirrorError says which link a refused topic mirrors.
type MirrorError struct {
	Topic, Link string
}

func (e *MirrorError) Error() string {
	return fmt.Sprintf("topic %q is a read-only mirror of link %q; promote it first (weir link promote %s --topics %s)", e.Topic, e.Link, e.Link, e.Topic)
}
func (e *MirrorError) Unwrap() error { return ErrMirrorTopic }

// BaseOffsetError is a refused conditional append: the partition's next
// offset was Next, not Expected.
type BaseOffsetError struct {
	Expected, Next int64
}

func (e *BaseOffsetError) Error() string {
	return fmt.Sprintf("mirror append expected base offset %d, the partition's next offset is %d", e.Expected, e.Next)
}
func (e *BaseOffsetError) Unwrap() error { return ErrBaseOffset }

// MirrorLog is a PartitionLog that takes mirror appends: raftlog's logs
// implement it. Both are applied deterministically by the partition's
// state machine, so a retried or duplicated call never appends twice.
type MirrorLog interface {
	// AppendAt appends b only when the partition's next offset is base,
	// keeping the records' timestamps; otherwise *BaseOffsetError.
	AppendAt(ctx context.Context, base int64, b *AppendBatch) (AppendResult, error)
	// StartAt moves the start of a log to offset when its next offset is
	// below it (a mirror of a source whose log starts later); the log is
	// then empty at offset. A no-op when the next offset is at or above it.
	StartAt(ctx context.Context, offset int64) error
}

// Link is a cluster link as stored (the catalog's links table). The
// zero CreatedAt is set by Create.
type Link struct {
	Name        string   `json:"name"`
	SourceURL   string   `json:"source_url"`
	SourceToken string   `json:"source_token,omitempty"`
	Topics      []string `json:"topics"`
	Groups      []string `json:"groups"`
	CreatedAt   int64    `json:"created_at"`
}

// Validate checks a link spec: a topic-like name, an http(s) URL, at
// least one topic pattern, and patterns that are names or prefixes
// ending in one '*'.
func (l *Link) Validate() error {
	if !ValidTopicName(l.Name) {
		return Invalidf("link name %q must be 1–249 characters of [A-Za-z0-9._-]", l.Name)
	}
	u, err := url.Parse(l.SourceURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Invalidf("source_url %q must be an http:// or https:// URL of the source cluster", l.SourceURL)
	}
	if len(l.Topics) == 0 {
		return Invalidf("a link needs at least one topic name or prefix (\"topics\")")
	}
	for _, set := range [][]string{l.Topics, l.Groups} {
		for _, p := range set {
			if err := checkPattern(p); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkPattern(p string) error {
	name, prefix := strings.CutSuffix(p, "*")
	if strings.Contains(name, "*") || (!prefix && name == "") {
		return Invalidf("pattern %q must be a name or a prefix ending in one '*'", p)
	}
	if name != "" && !ValidTopicName(name) {
		return Invalidf("pattern %q: names are of [A-Za-z0-9._-]", p)
	}
	return nil
}

// MatchPattern reports whether name matches one of patterns: equal to a
// pattern, or starting with a pattern's text before its final '*' ("*"
// alone matches every name).
func MatchPattern(patterns []string, name string) bool {
	for _, p := range patterns {
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, pre) {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}

// MirrorsTopic reports whether the link copies the source topic name.
// Internal topics (a leading "__") are never mirrored.
func (l *Link) MirrorsTopic(name string) bool {
	return !strings.HasPrefix(name, "__") && MatchPattern(l.Topics, name)
}

// SyncsGroup reports whether the link copies the group's offsets.
func (l *Link) SyncsGroup(name string) bool { return MatchPattern(l.Groups, name) }

// Mirror marks a topic as the mirror of a link's source topic (the
// catalog's mirrors table, keyed by topic). TopicCreatedAt ties the mark
// to one incarnation of the topic: a topic deleted and created again is
// no mirror. A promoted mirror is writable and no longer pulled.
type Mirror struct {
	Link           string `json:"link"`
	SourceTopic    string `json:"source_topic"`
	TopicCreatedAt int64  `json:"topic_created_at"`
	Promoted       bool   `json:"promoted,omitempty"`
	PromotedAt     int64  `json:"promoted_at,omitempty"`
}

// MirrorOf returns the mirror mark of topic t, when it has a current one.
func MirrorOf(c Catalog, t TopicInfo) (Mirror, bool) {
	b, ok := c.CatalogGet(MirrorsTable, t.Name)
	if !ok {
		return Mirror{}, false
	}
	var m Mirror
	if json.Unmarshal(b, &m) != nil || (m.TopicCreatedAt != 0 && m.TopicCreatedAt != t.CreatedAt) {
		return Mirror{}, false
	}
	return m, true // TopicCreatedAt 0: being created (MarkMirror)
}

// CheckWritable refuses a write to a mirror topic not yet promoted
// (*MirrorError). Broker.Produce and ProduceNoAck call it, so that every
// front door refuses the same way; so do the broker's own writers
// (pipelines, subscriptions' dead letters, redrive), through
// checkWritableTopic.
func CheckWritable(c Catalog, t TopicInfo) error {
	if m, ok := MirrorOf(c, t); ok && !m.Promoted {
		return &MirrorError{Topic: t.Name, Link: m.Link}
	}
	return nil
}

// checkWritableTopic is CheckWritable by topic name. A topic that does
// not exist is refused only while a link is creating it as a mirror (its
// mark is pending, MarkMirror), so that a caller about to create it
// (a dead-letter topic) does not make a topic the link then adopts.
func checkWritableTopic(st Store, name string) error {
	t, err := st.Topic(name)
	if err != nil {
		t = TopicInfo{TopicConfig: TopicConfig{Name: name}}
	}
	return CheckWritable(st, t)
}

// Links manages cluster links and mirror marks in the catalog. Safe for
// concurrent use; it starts nothing (internal/link runs the links).
type Links struct {
	store Store
}

// NewLinks returns the link service over store.
func NewLinks(store Store) *Links { return &Links{store: store} }

// Create validates and stores a new link (ErrLinkExists).
func (s *Links) Create(ctx context.Context, l Link) (Link, error) {
	if err := l.Validate(); err != nil {
		return Link{}, err
	}
	l.CreatedAt = time.Now().UnixMilli()
	if l.Groups == nil {
		l.Groups = []string{}
	}
	b, _ := json.Marshal(l)
	ok, err := s.store.CatalogPut(ctx, LinksTable, l.Name, b, CatalogCond{IfAbsent: true})
	if err != nil {
		return Link{}, err
	}
	if !ok {
		return Link{}, fmt.Errorf("%w: %q", ErrLinkExists, l.Name)
	}
	return l, nil
}

// List returns the links by name.
func (s *Links) List() []Link {
	var out []Link
	for _, b := range s.store.CatalogList(LinksTable) {
		var l Link
		if json.Unmarshal(b, &l) == nil {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b Link) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Get returns one link (ErrLinkNotFound).
func (s *Links) Get(name string) (Link, error) {
	b, ok := s.store.CatalogGet(LinksTable, name)
	if !ok {
		return Link{}, fmt.Errorf("%w: %q", ErrLinkNotFound, name)
	}
	var l Link
	if err := json.Unmarshal(b, &l); err != nil {
		return Link{}, fmt.Errorf("%w: link %q: %v", ErrCorrupt, name, err)
	}
	return l, nil
}

// Mirrors returns the current mirror marks of a link's topics, by topic
// name ("" link: of every link).
func (s *Links) Mirrors(link string) map[string]Mirror {
	out := map[string]Mirror{}
	for _, t := range s.store.Topics() {
		if m, ok := MirrorOf(s.store, t); ok && (link == "" || m.Link == link) {
			out[t.Name] = m
		}
	}
	return out
}

// Delete removes a link: mirroring stops, and its mirror topics not yet
// promoted are detached (they become ordinary, writable topics with the
// records mirrored so far).
func (s *Links) Delete(ctx context.Context, name string) error {
	if _, err := s.Get(name); err != nil {
		return err
	}
	for topic := range s.Mirrors(name) {
		if _, err := s.store.CatalogDelete(ctx, MirrorsTable, topic, CatalogCond{}); err != nil {
			return err
		}
	}
	_, err := s.store.CatalogDelete(ctx, LinksTable, name, CatalogCond{})
	return err
}

// Promote makes the link's mirror topics named in topics writable; the
// link stops pulling them. Every name must be a mirror topic of the link
// (ErrBadRequest names the first that is not). Promoting a promoted topic
// is a no-op. It returns the topics promoted.
func (s *Links) Promote(ctx context.Context, name string, topics []string) ([]string, error) {
	if _, err := s.Get(name); err != nil {
		return nil, err
	}
	if len(topics) == 0 {
		return nil, Invalidf("promote needs the mirror topics to make writable (\"topics\")")
	}
	mirrors := s.Mirrors(name)
	for _, t := range topics {
		if _, ok := mirrors[t]; !ok {
			return nil, Invalidf("topic %q is not a mirror topic of link %q", t, name)
		}
	}
	now := time.Now().UnixMilli()
	for _, t := range topics {
		m := mirrors[t]
		if m.Promoted {
			continue
		}
		old, _ := json.Marshal(m)
		m.Promoted, m.PromotedAt = true, now
		b, _ := json.Marshal(m)
		if _, err := s.store.CatalogPut(ctx, MirrorsTable, t, b, CatalogCond{IfEqual: old}); err != nil {
			return nil, err
		}
	}
	return topics, nil
}

// MarkMirror creates topic cfg as the mirror of link's source topic, or
// finds it made already (by an earlier call, on any node). A topic of
// that name that is not this link's mirror is an error: the link never
// writes into a topic it did not create.
func (s *Links) MarkMirror(ctx context.Context, b *Broker, link string, cfg TopicConfig) (TopicInfo, Mirror, error) {
	t, err := s.store.Topic(cfg.Name)
	if errors.Is(err, ErrTopicNotFound) {
		// Mark first, keyed to no incarnation yet (TopicCreatedAt 0), so a
		// produce racing the creation is refused from its first moment.
		// Another node may be doing the same: the mark is written only
		// when absent or left by a deleted incarnation, never over a
		// pending or final mark of the current one.
		pre, _ := json.Marshal(Mirror{Link: link, SourceTopic: cfg.Name})
		cond := CatalogCond{IfAbsent: true}
		if raw, ok := s.store.CatalogGet(MirrorsTable, cfg.Name); ok {
			var m Mirror
			if json.Unmarshal(raw, &m) == nil && m.TopicCreatedAt == 0 && m.Link == link {
				pre = nil // pending already
			}
			cond = CatalogCond{IfEqual: raw}
		}
		if pre != nil {
			if _, err := s.store.CatalogPut(ctx, MirrorsTable, cfg.Name, pre, cond); err != nil {
				return TopicInfo{}, Mirror{}, err
			}
		}
		t, err = b.CreateTopic(ctx, cfg)
		if errors.Is(err, ErrTopicExists) {
			t, err = s.store.Topic(cfg.Name)
		}
	}
	if err != nil {
		return TopicInfo{}, Mirror{}, err
	}
	raw, ok := s.store.CatalogGet(MirrorsTable, t.Name)
	var m Mirror
	if !ok || json.Unmarshal(raw, &m) != nil || (m.TopicCreatedAt != 0 && m.TopicCreatedAt != t.CreatedAt) {
		return t, Mirror{}, fmt.Errorf("%w: topic %q exists and is not a mirror of link %q", ErrTopicExists, t.Name, link)
	}
	if m.Link != link {
		return t, Mirror{}, fmt.Errorf("%w: topic %q mirrors link %q", ErrTopicExists, t.Name, m.Link)
	}
	if m.TopicCreatedAt == t.CreatedAt {
		return t, m, nil
	}
	m.TopicCreatedAt = t.CreatedAt
	nb, _ := json.Marshal(m)
	if ok, err := s.store.CatalogPut(ctx, MirrorsTable, t.Name, nb, CatalogCond{IfEqual: raw}); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("%w: mirror mark of %q changed", ErrUnavailable, t.Name)
		}
		return t, Mirror{}, err
	}
	return t, m, nil
}

// MirrorLag is how far one mirror partition is behind its source.
type MirrorLag struct {
	Topic       string
	SourceTopic string
	Partition   int
	// SourceHighWatermark and HighWatermark are the source's and the
	// mirror's; Records is their difference (0 when promoted).
	SourceHighWatermark int64
	HighWatermark       int64
	Records             int64
	// Seconds is the age of the oldest source record not yet mirrored
	// (0 when none is missing).
	Seconds float64
}

// LinkObserver reports a link's mirror lag, asking the source cluster;
// internal/link implements it.
type LinkObserver interface {
	LinkLag(ctx context.Context, link string) ([]MirrorLag, error)
}
