package client

import (
	"context"
	"sync"
	"time"
)

// JoinOptions says how a member joins a consumer group (docs/groups.md).
type JoinOptions struct {
	Topics   []string // required
	ClientID string   // the member id's prefix
	// SessionTimeout (default 10 s, 0.5 s to 5 min): a member silent that
	// long is removed and the group rebalances.
	SessionTimeout time.Duration
	// From is where a partition without a committed offset starts:
	// Earliest, or Latest (the default).
	From From
}

// Membership is a member's view of its group.
type Membership struct {
	Group               string       `json:"group"`
	MemberID            string       `json:"member_id"`
	Generation          int64        `json:"generation"`
	Assignment          []Assignment `json:"assignment"`
	SessionTimeoutMs    int64        `json:"session_timeout_ms"`
	HeartbeatIntervalMs int64        `json:"heartbeat_interval_ms"`
}

// Member is an HTTP member of a consumer group: it polls the records of
// the partitions assigned to it, commits what it processed (fenced by its
// generation) and keeps its session alive with polls or heartbeats. It
// remembers the read positions the last poll returned, so consecutive
// polls read on. Safe for concurrent use; calls are serialized.
type Member struct {
	c *Client

	mu        sync.Mutex // guards m and positions
	m         Membership
	positions []GroupOffset
}

// JoinGroup makes a new member of group. Not retried on 503 (a retried
// join could leave a second member behind until its session ends).
func (c *Client) JoinGroup(ctx context.Context, group string, opts JoinOptions) (*Member, error) {
	body := map[string]any{"topics": opts.Topics}
	if opts.ClientID != "" {
		body["client_id"] = opts.ClientID
	}
	if opts.SessionTimeout > 0 {
		body["session_timeout_ms"] = ms(opts.SessionTimeout)
	}
	if opts.From != "" {
		body["from"] = opts.From
	}
	mb := &Member{c: c}
	if err := c.call(ctx, "POST", "/v1/groups/"+esc(group)+"/members", body, &mb.m, false); err != nil {
		return nil, err
	}
	return mb, nil
}

// Membership returns the member's last known generation and assignment.
func (m *Member) Membership() Membership {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m
}

func (m *Member) path(op string) string {
	return "/v1/groups/" + esc(m.m.Group) + "/members/" + esc(m.m.MemberID) + op
}

// PollOptions bound a poll.
type PollOptions struct {
	MaxRecords int           // default 500
	MaxBytes   int           // default 1 MiB
	Wait       time.Duration // long-poll up to this long (≤ 60 s); a rebalance ends it
	// Commit commits the positions of the previous poll (fenced by the
	// generation) before reading: process-then-commit in one round trip.
	Commit bool
}

// Poll returns records of the member's partitions from where the previous
// poll stopped (the first poll: the committed offsets, else From), and
// renews its session. A changed generation or assignment is in
// Membership afterwards. CodeUnknownMember: the member is gone (join
// again); CodeStaleGeneration: a rebalance happened (poll again).
func (m *Member) Poll(ctx context.Context, opts PollOptions) ([]FetchedRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	body := map[string]any{"encoding": "base64", "generation": m.m.Generation, "positions": m.positions}
	if m.positions == nil {
		body["positions"] = []GroupOffset{}
	}
	if opts.MaxRecords > 0 {
		body["max_records"] = opts.MaxRecords
	}
	if opts.MaxBytes > 0 {
		body["max_bytes"] = opts.MaxBytes
	}
	if opts.Wait > 0 {
		body["wait_ms"] = ms(opts.Wait)
	}
	if opts.Commit && len(m.positions) > 0 {
		body["commit"] = true
	}
	var out struct {
		Membership
		Records   []recordJSON  `json:"records"`
		Positions []GroupOffset `json:"positions"`
	}
	// Without commit a poll changes nothing but the session: retried.
	if err := m.c.call(ctx, "POST", m.path("/poll"), body, &out, !opts.Commit); err != nil {
		return nil, err
	}
	recs, err := recordsOf(out.Records, "", 0)
	if err != nil {
		return nil, err
	}
	m.m = out.Membership
	m.positions = out.Positions
	return recs, nil
}

// Positions returns the read positions of the last poll (the next offset
// per partition): what Commit(ctx, nil) commits.
func (m *Member) Positions() []GroupOffset {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]GroupOffset(nil), m.positions...)
}

// Commit commits offsets (the next offset to read per partition; nil:
// the last poll's positions), fenced by the member's generation.
func (m *Member) Commit(ctx context.Context, offsets []GroupOffset) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if offsets == nil {
		offsets = m.positions
	}
	body := map[string]any{"generation": m.m.Generation, "offsets": offsets}
	return m.c.call(ctx, "POST", m.path("/commit"), body, nil, true)
}

// Heartbeat renews the member's session and refreshes its membership (a
// new generation means a rebalance: the next poll reads the new
// assignment). Send one every HeartbeatIntervalMs when not polling.
func (m *Member) Heartbeat(ctx context.Context) (Membership, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out Membership
	if err := m.c.call(ctx, "POST", m.path("/heartbeat"), nil, &out, true); err != nil {
		return m.m, err
	}
	m.m = out
	return out, nil
}

// Leave removes the member from its group at once (the group rebalances).
func (m *Member) Leave(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.c.call(ctx, "DELETE", m.path(""), nil, nil, true)
}
