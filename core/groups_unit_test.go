package core_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
	tu "github.com/weir-broker/weir/internal/testutil"
)

type groupEnv struct {
	*env
	clock *fakeClock
	c     *core.GroupCoordinator
}

func newGroupEnv(t *testing.T, partitions int) *groupEnv {
	t.Helper()
	e := &groupEnv{env: newEnv(t, memstore.Config{}), clock: newClock()}
	e.topic(t, "g", partitions)
	e.c = must[*core.GroupCoordinator](t)(core.NewGroupCoordinator(e.broker, core.GroupConfig{Now: e.clock.Now, CheckInterval: 5 * time.Millisecond}))
	return e
}

func (e *groupEnv) join(t *testing.T, session time.Duration) core.Membership {
	t.Helper()
	m, err := e.c.Join(e.ctx, "grp", core.GroupJoin{Topics: []string{"g"}, SessionTimeout: session, From: core.FromEarliest})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *groupEnv) member(t *testing.T, id string) core.Membership {
	t.Helper()
	m, err := e.c.Member("grp", id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func owned(m core.Membership) []int {
	var out []int
	for _, tp := range m.Assignment {
		out = append(out, tp.Partitions...)
	}
	slices.Sort(out)
	return out
}

func TestGroupRebalanceAndGenerationFencing(t *testing.T) {
	e := newGroupEnv(t, 4)
	a := e.join(t, 0)
	if a.Generation != 1 || len(owned(a)) != 4 {
		t.Fatalf("first member %+v: generation 1 with every partition", a)
	}
	b := e.join(t, 0)
	a = e.member(t, a.MemberID)
	if b.Generation != 2 || a.Generation != 2 || len(owned(a)) != 2 || len(owned(b)) != 2 {
		t.Fatalf("after a join: %+v %+v; generation 2, two partitions each", a, b)
	}
	if slices.ContainsFunc(owned(a), func(p int) bool { return slices.Contains(owned(b), p) }) {
		t.Fatalf("a partition is assigned twice: %v %v", owned(a), owned(b))
	}
	mine, theirs := owned(a)[0], owned(b)[0]
	err := e.c.Commit(e.ctx, "grp", a.MemberID, 1, []core.GroupOffset{{Topic: "g", Partition: mine, Offset: 1}})
	var se *core.StaleGenerationError
	if !errors.As(err, &se) || se.Current != 2 || se.Generation != 1 {
		t.Fatalf("commit in an old generation: %v, want *StaleGenerationError{1, current 2}", err)
	}
	err = e.c.Commit(e.ctx, "grp", a.MemberID, 2, []core.GroupOffset{{Topic: "g", Partition: theirs, Offset: 1}})
	if !errors.Is(err, core.ErrNotAssigned) {
		t.Fatalf("commit of another member's partition: %v, want ErrNotAssigned", err)
	}
	if err := e.c.Commit(e.ctx, "grp", a.MemberID, 2, []core.GroupOffset{{Topic: "g", Partition: mine, Offset: 7}}); err != nil {
		t.Fatal(err)
	}
	if got := e.st.GroupOffsets("grp"); len(got) != 1 || got[0] != (core.GroupOffset{Topic: "g", Partition: mine, Offset: 7}) {
		t.Fatalf("committed %+v", got)
	}
	if err := e.c.Leave(e.ctx, "grp", b.MemberID); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Leave(e.ctx, "grp", b.MemberID); err != nil {
		t.Fatalf("leaving twice: %v", err)
	}
	a = e.member(t, a.MemberID)
	if a.Generation != 3 || len(owned(a)) != 4 || !slices.Contains(owned(a), mine) {
		t.Fatalf("after a leave: %+v; generation 3, every partition", a)
	}
	if _, err := e.c.Member("grp", b.MemberID); !errors.Is(err, core.ErrUnknownMember) {
		t.Fatalf("a member that left: %v, want ErrUnknownMember", err)
	}
	err = e.c.Commit(e.ctx, "grp", b.MemberID, 2, []core.GroupOffset{{Topic: "g", Partition: theirs, Offset: 1}})
	if !errors.Is(err, core.ErrUnknownMember) {
		t.Fatalf("commit of a member that left: %v, want ErrUnknownMember", err)
	}
}

// A member silent for its session timeout (on the coordinator's clock) is
// expired and its partitions go to the others; a member that heartbeats
// stays. The clock moves 100 ms per round, so expiry needs at least 10
// rounds of the 1 s member after the coordinator first saw it.
func TestGroupMemberExpiry(t *testing.T) {
	e := newGroupEnv(t, 2)
	go e.c.Run(e.ctx)
	silent := e.join(t, time.Second)
	alive := e.join(t, 3*time.Second)
	rounds := 0
	tu.Eventually(t, fence, "the silent member to expire", func() bool {
		rounds++
		e.clock.Add(100 * time.Millisecond)
		if _, err := e.c.Heartbeat(e.ctx, "grp", alive.MemberID); err != nil {
			t.Fatalf("heartbeat of the live member: %v", err)
		}
		_, err := e.c.Member("grp", silent.MemberID)
		return errors.Is(err, core.ErrUnknownMember)
	})
	if rounds < 10 {
		t.Fatalf("the member expired after %d rounds of 100 ms; its session is 1 s", rounds)
	}
	m := e.member(t, alive.MemberID)
	if m.Generation != 3 || len(owned(m)) != 2 {
		t.Fatalf("the member left alone: %+v; generation 3 with both partitions", m)
	}
	_, err := e.c.Heartbeat(e.ctx, "grp", silent.MemberID)
	if !errors.Is(err, core.ErrUnknownMember) {
		t.Fatalf("heartbeat of an expired member: %v, want ErrUnknownMember", err)
	}
}

// Poll reads the member's partitions from the group's committed offsets
// (else its reset policy) and hands back positions for the next poll; a
// heartbeat that cannot sync the catalog fails the poll instead of serving
// a stale assignment.
func TestGroupPollFromCommittedOffsets(t *testing.T) {
	e := newGroupEnv(t, 2)
	e.produce(t, "g", 0, "a0", "a1", "a2")
	e.produce(t, "g", 1, "b0")
	m := e.join(t, 0)
	res, err := e.c.Poll(e.ctx, &core.PollRequest{Group: "grp", Member: m.MemberID, Generation: m.Generation})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range res.Batches {
		for _, r := range b.Records {
			got = append(got, string(r.Value))
		}
	}
	slices.Sort(got)
	sameStrings(t, "first poll (from earliest)", got, []string{"a0", "a1", "a2", "b0"})
	if err := e.c.Commit(e.ctx, "grp", m.MemberID, m.Generation, []core.GroupOffset{{Topic: "g", Partition: 0, Offset: 2}, {Topic: "g", Partition: 1, Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Leave(e.ctx, "grp", m.MemberID); err != nil {
		t.Fatal(err)
	}
	n := e.join(t, 0)
	e.st.Inject(memstore.Fault{Ops: memstore.OpSync})
	if _, err := e.c.Poll(e.ctx, &core.PollRequest{Group: "grp", Member: n.MemberID}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("poll when the catalog cannot be synced: %v, want ErrUnavailable", err)
	}
	res, err = e.c.Poll(e.ctx, &core.PollRequest{Group: "grp", Member: n.MemberID})
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, b := range res.Batches {
		for _, r := range b.Records {
			got = append(got, string(r.Value))
		}
	}
	sameStrings(t, "a new member resumes from the committed offsets", got, []string{"a2"})
	_, err = e.c.Poll(e.ctx, &core.PollRequest{Group: "grp", Member: n.MemberID, Generation: 1})
	if !errors.Is(err, core.ErrStaleGeneration) {
		t.Fatalf("poll in an old generation: %v, want ErrStaleGeneration", err)
	}
}

// A group's members are given the partitions added to their topic
// (Broker.AddPartitions): the coordinator's check rebalances onto them.
func TestGroupRebalancesOntoAddedPartitions(t *testing.T) {
	e := newGroupEnv(t, 2)
	go e.c.Run(e.ctx)
	a := e.join(t, 0)
	b := e.join(t, 0)
	if _, err := e.broker.AddPartitions(e.ctx, "g", 6); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, fence, "the members to own the 6 partitions", func() bool {
		a, b = e.member(t, a.MemberID), e.member(t, b.MemberID)
		return a.Generation == b.Generation && len(owned(a)) == 3 && len(owned(b)) == 3
	})
	all := append(owned(a), owned(b)...)
	slices.Sort(all)
	if !slices.Equal(all, []int{0, 1, 2, 3, 4, 5}) {
		t.Fatalf("after growth: %v and %v, want partitions 0–5 once each", owned(a), owned(b))
	}
}
