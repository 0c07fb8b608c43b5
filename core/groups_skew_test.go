package core

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// catalogStore is the part of a Store that group membership uses: an
// in-memory catalog with compare-and-set, and topics of three partitions.
// Anything else panics (the embedded Store is nil).
type catalogStore struct {
	Store
	mu      sync.Mutex
	tables  map[string]map[string][]byte
	changed chan struct{}
}

func newCatalogStore() *catalogStore {
	return &catalogStore{tables: map[string]map[string][]byte{}, changed: make(chan struct{})}
}

func (s *catalogStore) Topic(name string) (TopicInfo, error) {
	return TopicInfo{TopicConfig: TopicConfig{Name: name, Partitions: 3}}, nil
}

func (s *catalogStore) CatalogPut(_ context.Context, table, key string, value []byte, cond CatalogCond) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[table]
	if t == nil {
		t = map[string][]byte{}
		s.tables[table] = t
	}
	old, ok := t[key]
	if cond.IfAbsent && ok || cond.IfEqual != nil && (!ok || !bytes.Equal(old, cond.IfEqual)) {
		return false, nil
	}
	t[key] = bytes.Clone(value)
	close(s.changed)
	s.changed = make(chan struct{})
	return true, nil
}

func (s *catalogStore) CatalogGet(table, key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.tables[table][key]
	return v, ok
}

func (s *catalogStore) CatalogList(table string) map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range s.tables[table] {
		out[k] = v
	}
	return out
}

func (s *catalogStore) CatalogSync(context.Context) error { return nil }

func (s *catalogStore) CatalogChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// skewedClock is one node's clock: the shared simulated time plus a fixed
// skew.
type skewedClock struct {
	base *time.Time
	skew time.Duration
}

func (c skewedClock) now() time.Time { return c.base.Add(c.skew) }

// Two nodes whose clocks disagree by an hour, either way, serve one group:
// a member heartbeating through both is never expired, and a member that
// stops is expired one session timeout later by the nodes' own clocks.
// (With expiry computed from the stored heartbeat time, as before, the
// node ahead expired every member at its first check, and the node behind
// never renewed a heartbeat.)
func TestGroupExpiryIgnoresClockSkew(t *testing.T) {
	for _, skew := range []time.Duration{time.Hour, -time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			st := newCatalogStore()
			sim := time.Unix(1_800_000_000, 0)
			clocks := []skewedClock{{&sim, 0}, {&sim, skew}}
			var nodes []*GroupCoordinator
			for i, c := range clocks {
				nodes = append(nodes, newGroupsT(t, newBrokerT(t, st, BrokerConfig{}), GroupConfig{NodeID: uint64(i + 1), Now: c.now}))
			}
			ctx := context.Background()
			const session = 10 * time.Second
			alive, err := nodes[0].Join(ctx, "g", GroupJoin{Topics: []string{"t"}, SessionTimeout: session, From: FromEarliest})
			if err != nil {
				t.Fatal(err)
			}
			quiet, err := nodes[1].Join(ctx, "g", GroupJoin{Topics: []string{"t"}, SessionTimeout: session, From: FromEarliest})
			if err != nil {
				t.Fatal(err)
			}
			step := func() {
				sim = sim.Add(time.Second)
				for _, n := range nodes {
					n.check(ctx)
				}
			}
			// 60 simulated seconds: alive heartbeats every 3 s, through each
			// node in turn; quiet heartbeats until second 20, then stops.
			for sec := 1; sec <= 60; sec++ {
				step()
				if sec%3 == 0 {
					if _, err := nodes[(sec/3)%2].Heartbeat(ctx, "g", alive.MemberID); err != nil {
						t.Fatalf("second %d: the live member was expired: %v", sec, err)
					}
				}
				if sec <= 20 && sec%3 == 0 {
					if _, err := nodes[(sec/3+1)%2].Heartbeat(ctx, "g", quiet.MemberID); err != nil {
						t.Fatalf("second %d: the member still heartbeating was expired: %v", sec, err)
					}
				}
				_, err := nodes[0].Member("g", quiet.MemberID)
				switch {
				case sec <= 20 && err != nil:
					t.Fatalf("second %d: quiet expired while heartbeating: %v", sec, err)
				case sec >= 20+int(session/time.Second)+3 && err == nil:
					t.Fatalf("second %d: quiet, silent since second 20, is still a member (session %v)", sec, session)
				}
			}
			if _, err := nodes[1].Member("g", alive.MemberID); err != nil {
				t.Fatalf("the live member: %v", err)
			}
		})
	}
}
