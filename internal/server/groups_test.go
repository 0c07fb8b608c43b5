package server

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

type membershipResp struct {
	Group      string `json:"group"`
	MemberID   string `json:"member_id"`
	Generation int64  `json:"generation"`
	Assignment []struct {
		Topic      string `json:"topic"`
		Partitions []int  `json:"partitions"`
	} `json:"assignment"`
	SessionTimeoutMs    int64 `json:"session_timeout_ms"`
	HeartbeatIntervalMs int64 `json:"heartbeat_interval_ms"`
}

func (m *membershipResp) parts(topic string) []int {
	for _, a := range m.Assignment {
		if a.Topic == topic {
			return a.Partitions
		}
	}
	return nil
}

type pollResp struct {
	membershipResp
	Records   []wsRec `json:"records"`
	Positions []struct {
		Topic     string `json:"topic"`
		Partition int    `json:"partition"`
		Offset    int64  `json:"offset"`
	} `json:"positions"`
}

type describeResp struct {
	Group      string `json:"group"`
	Generation int64  `json:"generation"`
	State      string `json:"state"`
	TotalLag   int64  `json:"total_lag"`
	Members    []struct {
		ID         string `json:"id"`
		Kind       string `json:"kind"`
		Node       uint64 `json:"node"`
		Assignment []struct {
			Topic      string `json:"topic"`
			Partitions []int  `json:"partitions"`
		} `json:"assignment"`
	} `json:"members"`
	Partitions []struct {
		Topic     string `json:"topic"`
		Partition int    `json:"partition"`
		Member    string `json:"member"`
		Committed *int64 `json:"committed_offset"`
		HWM       int64  `json:"high_watermark"`
		Lag       int64  `json:"lag"`
	} `json:"partitions"`
}

func joinGroup(t *testing.T, url, group string, body map[string]any) membershipResp {
	t.Helper()
	r := tu.Do(t, "POST", url+"/v1/groups/"+group+"/members", body)
	if r.Status != 201 {
		t.Fatalf("join: %d %s", r.Status, r.Body)
	}
	var m membershipResp
	r.JSON(t, &m)
	return m
}

func heartbeat(t *testing.T, url, group, member string) (membershipResp, *tu.Response) {
	t.Helper()
	r := tu.Do(t, "POST", url+"/v1/groups/"+group+"/members/"+member+"/heartbeat", nil)
	var m membershipResp
	if r.Status == 200 {
		r.JSON(t, &m)
	}
	return m, r
}

func poll(t *testing.T, url, group, member string, body map[string]any) (pollResp, *tu.Response) {
	t.Helper()
	r := tu.Do(t, "POST", url+"/v1/groups/"+group+"/members/"+member+"/poll", body)
	var p pollResp
	if r.Status == 200 {
		r.JSON(t, &p)
	}
	return p, r
}

// TestGroupMembersHTTP: join, split, poll (long-poll too), fenced
// commits, expiry of a silent member, leave, describe.
func TestGroupMembersHTTP(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "jobs", 4)
	for p := 0; p < 4; p++ {
		produceN(t, u, "jobs", 10, p, fmt.Sprint("p", p, "-"))
	}

	m1 := joinGroup(t, u, "workers", map[string]any{"topics": []string{"jobs"}, "client_id": "w1", "session_timeout_ms": 1500, "from": "earliest"})
	if !strings.HasPrefix(m1.MemberID, "w1-") || m1.Generation != 1 || !slices.Equal(m1.parts("jobs"), []int{0, 1, 2, 3}) || m1.HeartbeatIntervalMs != 500 {
		t.Fatalf("first member: %+v", m1)
	}
	m2 := joinGroup(t, u, "workers", map[string]any{"topic": "jobs", "session_timeout_ms": 1500, "from": "earliest"})
	if m2.Generation != 2 || len(m2.parts("jobs")) != 2 {
		t.Fatalf("second member: %+v", m2)
	}
	h1, _ := heartbeat(t, u, "workers", m1.MemberID)
	if h1.Generation != 2 || len(h1.parts("jobs")) != 2 {
		t.Fatalf("first member after the second joined: %+v", h1)
	}
	for _, p := range h1.parts("jobs") {
		if slices.Contains(m2.parts("jobs"), p) {
			t.Fatalf("partition %d assigned to both: %v %v", p, h1.parts("jobs"), m2.parts("jobs"))
		}
	}

	// A poll of a stale generation is refused; the current one reads the
	// member's partitions only, from the reset point (earliest).
	if _, r := poll(t, u, "workers", m1.MemberID, map[string]any{"generation": 1}); r.Status != 409 || r.ErrorCode() != "stale_generation" {
		t.Fatalf("stale poll: %d %s", r.Status, r.Body)
	}
	p1, r := poll(t, u, "workers", m1.MemberID, map[string]any{"generation": 2, "max_records": 1000})
	if r.Status != 200 || len(p1.Records) != 20 {
		t.Fatalf("poll: %d %s", r.Status, r.Body)
	}
	for _, rec := range p1.Records {
		if !slices.Contains(h1.parts("jobs"), rec.Partition) || rec.Topic != "jobs" {
			t.Fatalf("record of partition %d polled by a member owning %v", rec.Partition, h1.parts("jobs"))
		}
	}
	if len(p1.Positions) != 2 || p1.Positions[0].Offset != 10 {
		t.Fatalf("positions: %+v", p1.Positions)
	}

	// Commits are fenced: generation and ownership.
	mine, theirs := h1.parts("jobs")[0], m2.parts("jobs")[0]
	commit := func(member string, gen int64, part int, off int64) *tu.Response {
		return tu.Do(t, "POST", u+"/v1/groups/workers/members/"+member+"/commit",
			map[string]any{"generation": gen, "offsets": []map[string]any{{"topic": "jobs", "partition": part, "offset": off}}})
	}
	if r := commit(m1.MemberID, 2, mine, 5); r.Status != 204 {
		t.Fatalf("commit: %d %s", r.Status, r.Body)
	}
	if r := commit(m1.MemberID, 1, mine, 6); r.Status != 409 || r.ErrorCode() != "stale_generation" {
		t.Fatalf("stale commit: %d %s", r.Status, r.Body)
	}
	if r := commit(m1.MemberID, 2, theirs, 6); r.Status != 409 || r.ErrorCode() != "not_assigned" {
		t.Fatalf("commit of another member's partition: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", u+"/v1/groups/workers/members/"+m1.MemberID+"/commit", map[string]any{"offsets": []map[string]any{}}); r.Status != 400 {
		t.Fatalf("commit without generation: %d %s", r.Status, r.Body)
	}

	// Without positions a poll resumes from the committed offset.
	p1b, _ := poll(t, u, "workers", m1.MemberID, map[string]any{"max_records": 1000})
	for _, rec := range p1b.Records {
		if rec.Partition == mine && rec.Offset < 5 {
			t.Fatalf("poll without positions read offset %d below the committed 5", rec.Offset)
		}
	}

	// Long-poll: m2 waits at the end of its partitions; a produce wakes it.
	// The answer is the same whichever comes first: a produce before the
	// poll reads is read at once, a later one ends the wait; either way
	// nothing else can end the poll before the deadline below (its wait is
	// longer). Over HTTP nothing shows the poll waiting, so the test does
	// not guess with a sleep; TestLongPollWakesOnProduce covers the wake.
	p2, _ := poll(t, u, "workers", m2.MemberID, map[string]any{"max_records": 1000})
	positions := p2.Positions
	done := make(chan pollResp, 1)
	go func() {
		p, r := poll(t, u, "workers", m2.MemberID, map[string]any{"positions": positions, "wait_ms": 20000, "generation": 2})
		if r.Status != 200 {
			t.Errorf("long-poll: %d %s", r.Status, r.Body)
		}
		done <- p
	}()
	produceN(t, u, "jobs", 1, theirs, "wake-")
	select {
	case p := <-done:
		if len(p.Records) != 1 || p.Records[0].Value != "wake-0" {
			t.Fatalf("long-poll got %+v", p.Records)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long-poll did not wake on produce")
	}

	// m2 goes silent: its session expires and m1 (kept alive by its polls)
	// gets every partition in a new generation.
	tu.Eventually(t, 15*time.Second, "m2 to expire", func() bool {
		p, r := poll(t, u, "workers", m1.MemberID, nil)
		return r.Status == 200 && p.Generation == 3 && len(p.parts("jobs")) == 4
	})
	if _, r := heartbeat(t, u, "workers", m2.MemberID); r.Status != 404 || r.ErrorCode() != "unknown_member" {
		t.Fatalf("heartbeat of an expired member: %d %s", r.Status, r.Body)
	}

	var d describeResp
	tu.Do(t, "GET", u+"/v1/groups/workers", nil).JSON(t, &d)
	if d.Generation != 3 || d.State != "stable" || len(d.Members) != 1 || d.Members[0].ID != m1.MemberID || d.Members[0].Kind != "http" || len(d.Partitions) != 4 {
		t.Fatalf("describe: %+v", d)
	}
	for _, p := range d.Partitions {
		if p.Member != m1.MemberID || p.HWM < 10 {
			t.Fatalf("describe partition: %+v", p)
		}
		if p.Partition == mine && (p.Committed == nil || *p.Committed != 5 || p.Lag != p.HWM-5) {
			t.Fatalf("describe committed partition: %+v", p)
		}
	}

	if r := tu.Do(t, "DELETE", u+"/v1/groups/workers/members/"+m1.MemberID, nil); r.Status != 204 {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	tu.Do(t, "GET", u+"/v1/groups/workers", nil).JSON(t, &d)
	if d.State != "empty" || len(d.Members) != 0 || d.Generation != 4 {
		t.Fatalf("after leave: %+v", d)
	}
	if r := tu.Do(t, "GET", u+"/v1/groups", nil); !strings.Contains(string(r.Body), `"name":"workers"`) {
		t.Fatalf("list: %s", r.Body)
	}

	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"GET", "/v1/groups/nobody", nil, 404, "group_not_found"},
		{"POST", "/v1/groups/g/members", map[string]any{"topics": []string{"missing"}}, 404, "topic_not_found"},
		{"POST", "/v1/groups/g/members", map[string]any{"topics": []string{}}, 400, "bad_request"},
		{"POST", "/v1/groups/g/members", map[string]any{"topics": []string{"jobs"}, "session_timeout_ms": 10}, 400, "bad_request"},
		{"POST", "/v1/groups/g/members", map[string]any{"topics": []string{"jobs"}, "from": "middle"}, 400, "bad_request"},
		{"POST", "/v1/groups/g/members", "{bad", 400, "bad_request"},
		{"POST", "/v1/groups/workers/members/nobody/poll", nil, 404, "unknown_member"},
		{"POST", "/v1/groups/workers/members/nobody/heartbeat", nil, 404, "unknown_member"},
		{"POST", "/v1/groups/workers/members/nobody/commit", map[string]any{"generation": 1, "offsets": []map[string]any{{"topic": "jobs", "partition": 0, "offset": 1}}}, 404, "unknown_member"},
		{"PUT", "/v1/groups/workers/members", nil, 405, "method_not_allowed"},
		{"POST", "/v1/groups/workers/members/x/dance", nil, 404, "not_found"},
	} {
		r := tu.Do(t, tc.method, u+tc.path, tc.body)
		if r.Status != tc.status || r.ErrorCode() != tc.code {
			t.Fatalf("%s %s: %d %s, want %d %s", tc.method, tc.path, r.Status, r.Body, tc.status, tc.code)
		}
	}
}

// groupLog checks, over the frames of every member, that no partition
// is delivered to two members in one generation, and that a member only
// gets records of partitions assigned to it by its last assigned frame.
type groupLog struct {
	mu    sync.Mutex
	owner map[[2]int64]string // (generation, partition) → client
}

func (g *groupLog) check(t *testing.T, name string, msgs []wsMsg, sub string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	gen := int64(-1)
	var assigned []int
	for _, m := range msgs {
		switch {
		case m.Op == "assigned" && m.Sub == sub:
			gen, assigned = m.Generation, m.assigned(t)
		case m.Op == "records" && m.Sub == sub:
			for _, r := range m.Records {
				if !slices.Contains(assigned, r.Partition) {
					t.Fatalf("%s got partition %d outside its assignment %v (generation %d)", name, r.Partition, assigned, gen)
				}
				k := [2]int64{gen, int64(r.Partition)}
				if o, ok := g.owner[k]; ok && o != name {
					t.Fatalf("partition %d delivered to %s and %s in generation %d", r.Partition, o, name, gen)
				}
				g.owner[k] = name
			}
		}
	}
}

// lastAssigned returns the partitions and generation of the last assigned frame.
func lastAssigned(t *testing.T, msgs []wsMsg, sub string) ([]int, int64) {
	var ps []int
	gen := int64(-1)
	for _, m := range msgs {
		if m.Op == "assigned" && m.Sub == sub {
			ps, gen = m.assigned(t), m.Generation
		}
	}
	return ps, gen
}

// TestWSGroupRebalance: WebSocket members of a group split the
// partitions, rebalance when members join, leave and are killed, resume
// from committed offsets, and never share a partition in a generation.
func TestWSGroupRebalance(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "orders", 6)
	produceAll := func(n int, prefix string) {
		for p := 0; p < 6; p++ {
			produceN(t, u, "orders", n, p, prefix)
		}
	}
	produceAll(10, "a")
	subscribe := func(c *wsClient) {
		c.send(map[string]any{"op": "subscribe", "id": "g", "topic": "orders", "group": "shop", "from": "earliest", "client_id": "ws"})
		c.expect(0, "subscribed", "g")
	}
	waitParts := func(c *wsClient, name string, n int) int64 {
		t.Helper()
		var gen int64
		c.wait(15*time.Second, fmt.Sprintf("%s to hold %d partitions", name, n), func(msgs []wsMsg) bool {
			var ps []int
			for _, m := range msgs {
				if m.Op == "assigned" {
					ps, gen = nil, m.Generation
					json.Unmarshal(m.Partitions, &ps)
				}
			}
			return len(ps) == n
		})
		return gen
	}
	a := dialWS(t, u, "/v1/ws", nil)
	subscribe(a)
	waitParts(a, "a", 6)
	a.wait(10*time.Second, "60 records", func(msgs []wsMsg) bool { return countRecords(msgs, "g") == 60 })
	// a commits everything it read.
	var offs []map[string]any
	for p := 0; p < 6; p++ {
		offs = append(offs, map[string]any{"partition": p, "offset": 10})
	}
	a.send(map[string]any{"op": "commit", "id": "c1", "sub": "g", "offsets": offs})
	a.expect(0, "committed", "c1")

	b := dialWS(t, u, "/v1/ws", nil)
	subscribe(b)
	genB := waitParts(b, "b", 3)
	waitParts(a, "a", 3)
	bParts, _ := lastAssigned(t, b.snapshot(), "g")
	// b resumes at the committed offsets: its first records are at 10.
	produceAll(5, "b")
	b.wait(15*time.Second, "15 new records on b", func(msgs []wsMsg) bool { return countRecords(msgs, "g") == 15 })
	firsts := map[int]int64{}
	for _, r := range b.records("g") {
		if _, ok := firsts[r.Partition]; !ok {
			firsts[r.Partition] = r.Offset
		}
	}
	for _, p := range bParts {
		if firsts[p] != 10 {
			t.Fatalf("b started partition %d at %d, want the committed 10", p, firsts[p])
		}
	}
	a.wait(15*time.Second, "a's 15 new records", func(msgs []wsMsg) bool { return countRecords(msgs, "g") == 75 })

	// A stale generation's commit is refused.
	a.send(map[string]any{"op": "commit", "id": "stale", "sub": "g", "generation": genB - 1, "partition": 0, "offset": 1})
	if m, _ := a.expect(0, "error", "stale"); m.Error.Code != "stale_generation" {
		t.Fatalf("stale commit: %s", m.raw)
	}

	// c joins (2 each), then its connection is killed without a close
	// frame: the group goes back to 3 each.
	c := dialWS(t, u, "/v1/ws", nil)
	subscribe(c)
	waitParts(c, "c", 2)
	waitParts(a, "a", 2)
	waitParts(b, "b", 2)
	produceAll(3, "c")
	// c starts at the committed offsets (10): it gets b's uncommitted
	// records again (at-least-once) and the new ones, up to offset 17.
	cParts, _ := lastAssigned(t, c.snapshot(), "g")
	c.wait(15*time.Second, "c's records", func(msgs []wsMsg) bool {
		last := map[int]int64{}
		for _, m := range msgs {
			for _, r := range m.Records {
				last[r.Partition] = r.Offset
			}
		}
		return len(last) == 2 && last[cParts[0]] == 17 && last[cParts[1]] == 17
	})
	if first := c.records("g")[0]; first.Offset != 10 {
		t.Fatalf("c started at offset %d, want the committed 10", first.Offset)
	}
	cMsgs := c.snapshot()
	c.conn.NetConn().Close()
	waitParts(a, "a", 3)
	waitParts(b, "b", 3)

	// b leaves: a holds all six again.
	b.send(map[string]any{"op": "unsubscribe", "id": "u", "sub": "g"})
	b.expect(0, "unsubscribed", "u")
	waitParts(a, "a", 6)
	produceAll(2, "d")
	a.wait(15*time.Second, "a to catch up", func(msgs []wsMsg) bool {
		seen := map[[2]int64]bool{}
		for _, m := range msgs {
			for _, r := range m.Records {
				seen[[2]int64{int64(r.Partition), r.Offset}] = true
			}
		}
		for p := 0; p < 6; p++ {
			if !seen[[2]int64{int64(p), 19}] {
				return false
			}
		}
		return true
	})

	gl := &groupLog{owner: map[[2]int64]string{}}
	gl.check(t, "a", a.snapshot(), "g")
	gl.check(t, "b", b.snapshot(), "g")
	gl.check(t, "c", cMsgs, "g")

	var d describeResp
	tu.Do(t, "GET", u+"/v1/groups/shop", nil).JSON(t, &d)
	if len(d.Members) != 1 || d.Members[0].Kind != "ws" || len(d.Partitions) != 6 {
		t.Fatalf("describe: %+v", d)
	}
	sort.Slice(d.Partitions, func(i, j int) bool { return d.Partitions[i].Partition < d.Partitions[j].Partition })
	for _, p := range d.Partitions {
		if p.Member != d.Members[0].ID {
			t.Fatalf("partition %d owned by %q", p.Partition, p.Member)
		}
	}
}

// TestGroupsAcrossNodes: the group lives in the cluster, so members on
// different nodes share one assignment, any node serves any HTTP member,
// and any node expires a silent one.
func TestGroupsAcrossNodes(t *testing.T) {
	c := startCluster(t, 3, nil)
	n1, n2, n3 := c.nodes[1].URL(), c.nodes[2].URL(), c.nodes[3].URL()
	createTopic(t, n1, "multi", 4)

	a := dialWS(t, n1, "/v1/ws", nil)
	a.send(map[string]any{"op": "subscribe", "id": "g", "topic": "multi", "group": "x", "from": "earliest"})
	a.expect(0, "subscribed", "g")
	a.wait(15*time.Second, "a to hold all 4", func(msgs []wsMsg) bool {
		var ps []int
		for _, m := range msgs {
			if m.Op == "assigned" {
				ps = nil
				json.Unmarshal(m.Partitions, &ps)
			}
		}
		return len(ps) == 4
	})

	// b joins through node 2 and polls through node 3.
	b := joinGroup(t, n2, "x", map[string]any{"topics": []string{"multi"}, "session_timeout_ms": 2000, "from": "earliest"})
	if b.Generation != 2 || len(b.parts("multi")) != 2 {
		t.Fatalf("b: %+v", b)
	}
	a.wait(15*time.Second, "a (on node 1) to see generation 2", func(msgs []wsMsg) bool {
		for _, m := range msgs {
			if m.Op == "assigned" && m.Generation == 2 {
				return true
			}
		}
		return false
	})
	aParts, _ := lastAssigned(t, a.snapshot(), "g")
	for _, p := range aParts {
		if slices.Contains(b.parts("multi"), p) {
			t.Fatalf("partition %d on both nodes' members: a %v, b %v", p, aParts, b.parts("multi"))
		}
	}
	for p := 0; p < 4; p++ {
		produceN(t, n2, "multi", 5, p, fmt.Sprint("p", p, "-"))
	}
	var got []wsRec
	var positions any
	tu.Eventually(t, 15*time.Second, "b to poll its 10 records through node 3", func() bool {
		pr, r := poll(t, n3, "x", b.MemberID, map[string]any{"positions": positions, "generation": 2})
		if r.Status != 200 {
			t.Fatalf("poll via node 3: %d %s", r.Status, r.Body)
		}
		got = append(got, pr.Records...)
		positions = pr.Positions
		return len(got) == 10
	})
	for _, r := range got {
		if !slices.Contains(b.parts("multi"), r.Partition) {
			t.Fatalf("b polled partition %d it does not own", r.Partition)
		}
	}
	a.wait(15*time.Second, "a's 10 records", func(msgs []wsMsg) bool { return countRecords(msgs, "g") == 10 })
	gl := &groupLog{owner: map[[2]int64]string{}}
	gl.check(t, "a", a.snapshot(), "g")

	// A commit through node 1 is fenced by the same document.
	r := tu.Do(t, "POST", n1+"/v1/groups/x/members/"+b.MemberID+"/commit",
		map[string]any{"generation": 2, "offsets": []map[string]any{{"topic": "multi", "partition": b.parts("multi")[0], "offset": 5}}})
	if r.Status != 204 {
		t.Fatalf("commit via node 1: %d %s", r.Status, r.Body)
	}
	var d describeResp
	tu.Do(t, "GET", n3+"/v1/groups/x", nil).JSON(t, &d)
	if len(d.Members) != 2 || d.Generation != 2 {
		t.Fatalf("describe via node 3: %+v", d)
	}
	nodes := map[string]uint64{}
	for _, m := range d.Members {
		nodes[m.Kind] = m.Node
	}
	if nodes["ws"] != 1 || nodes["http"] != 2 {
		t.Fatalf("members' nodes: %v", nodes)
	}

	// b goes silent: some node expires it and a, on node 1, gets all four.
	a.wait(20*time.Second, "b to expire and a to hold all 4", func(msgs []wsMsg) bool {
		var ps []int
		for _, m := range msgs {
			if m.Op == "assigned" {
				ps = nil
				json.Unmarshal(m.Partitions, &ps)
			}
		}
		return len(ps) == 4
	})
	if _, r := heartbeat(t, n2, "x", b.MemberID); r.Status != 404 {
		t.Fatalf("expired member's heartbeat: %d", r.Status)
	}
}
