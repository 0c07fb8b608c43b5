package core_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// Nothing but a link's puller writes into a mirror topic until it is
// promoted (docs/geo-replication.md): not a pipeline's outputs or dead
// letters, not a subscription's dead letters, not a redrive.

// linkOn creates link "eu" on e's store.
func linkOn(t *testing.T, e *env) *core.Links {
	t.Helper()
	links := core.NewLinks(e.st)
	if _, err := links.Create(e.ctx, core.Link{Name: "eu", SourceURL: "http://a:1", Topics: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	return links
}

// mirror makes topic name a mirror of link "eu", as the link does: a
// topic of that name, if any, is deleted first (a link never adopts an
// existing topic; it creates the mirror afresh once the topic is gone).
func mirror(t *testing.T, e *env, links *core.Links, name string, partitions int) {
	t.Helper()
	if _, err := e.st.Topic(name); err == nil {
		if err := e.broker.DeleteTopic(e.ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := links.MarkMirror(e.ctx, e.broker, "eu", core.TopicConfig{Name: name, Partitions: partitions, RetentionMs: -1}); err != nil {
		t.Fatal(err)
	}
}

// pendingMirror leaves the mark a link writes before it creates a mirror
// topic (MarkMirror): the topic does not exist yet.
func pendingMirror(t *testing.T, e *env, name string) {
	t.Helper()
	b, _ := json.Marshal(core.Mirror{Link: "eu", SourceTopic: name})
	if _, err := e.st.CatalogPut(e.ctx, core.MirrorsTable, name, b, core.CatalogCond{IfAbsent: true}); err != nil {
		t.Fatal(err)
	}
}

func isMirrorErr(t *testing.T, what string, err error) {
	t.Helper()
	var me *core.MirrorError
	if !errors.As(err, &me) || !errors.Is(err, core.ErrMirrorTopic) || me.Link != "eu" || !strings.Contains(err.Error(), `link "eu"`) {
		t.Fatalf("%s: %v, want a *MirrorError naming link eu", what, err)
	}
}

func promote(t *testing.T, e *env, links *core.Links, topics ...string) {
	t.Helper()
	if _, err := links.Promote(e.ctx, "eu", topics); err != nil {
		t.Fatal(err)
	}
}

// A pipeline whose output or dead-letter topic is a mirror (or about to
// be one) is refused at create and at upgrade, and taken once promoted.
func TestMirrorRefusesPipelineCreateAndUpgrade(t *testing.T) {
	e := newPipeEnv(t, upper)
	links := linkOn(t, e.env)
	mirror(t, e.env, links, "m.out", 1)
	pendingMirror(t, e.env, "m.dlq")
	spec := func(name string, out []string, dlq string) core.PipelineSpec {
		return core.PipelineSpec{Name: name, Module: "m", Inputs: []string{"in"}, Outputs: out, OnError: core.OnError{DeadLetterTopic: dlq}}
	}
	cases := []struct {
		name string
		spec core.PipelineSpec
	}{
		{"output", spec("p1", []string{"out", "m.out"}, "")},
		{"dead-letter topic", spec("p2", []string{"out"}, "m.out")},
		{"dead-letter topic a link is creating", spec("p3", []string{"out"}, "m.dlq")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.p.Create(e.ctx, c.spec)
			isMirrorErr(t, "create", err)
			if _, err := e.p.Get(c.spec.Name); !errors.Is(err, core.ErrPipelineNotFound) {
				t.Fatalf("a refused pipeline was stored: %v", err)
			}
		})
	}
	if _, err := e.st.Topic("m.dlq"); !errors.Is(err, core.ErrTopicNotFound) {
		t.Fatalf("the refused create made the dead-letter topic a link is creating: %v", err)
	}

	// Upgrade: an output that became a mirror since the pipeline was made.
	if _, err := e.p.Create(e.ctx, spec("up", []string{"out"}, "")); err != nil {
		t.Fatal(err)
	}
	mirror(t, e.env, links, "out", 2)
	_, err := e.p.Upgrade(e.ctx, "up", core.PipelineUpgrade{Module: "m"})
	isMirrorErr(t, "upgrade", err)
	if s, _ := e.p.Get("up"); s.Revision != 0 {
		t.Fatalf("a refused upgrade was stored: revision %d", s.Revision)
	}

	promote(t, e.env, links, "m.out", "out")
	if _, err := e.p.Create(e.ctx, spec("p1", []string{"out", "m.out"}, "")); err != nil {
		t.Fatalf("create after promote: %v", err)
	}
	if _, err := e.p.Upgrade(e.ctx, "up", core.PipelineUpgrade{Module: "m"}); err != nil {
		t.Fatalf("upgrade after promote: %v", err)
	}
}

// An output that becomes a mirror while the pipeline runs (deleted, and
// created again by a link) takes nothing from it: no batch is processed
// while it is a mirror, the status says why, and after the promote the
// pipeline goes on from where it stopped.
func TestMirrorStallsRunningPipeline(t *testing.T) {
	for _, g := range []string{core.AtLeastOnce, core.ExactlyOnce} {
		t.Run(g, func(t *testing.T) {
			e := newPipeEnv(t, upper)
			links := linkOn(t, e.env)
			e.create(t, core.PipelineSpec{Guarantee: g})
			e.produce(t, "in", 0, "a")
			e.caughtUp(t)
			sameStrings(t, "out/0", e.values(t, "out", 0), []string{"A"})

			mirror(t, e.env, links, "out", 2)
			e.produce(t, "in", 0, "b")
			st := waitLastError(t, e, 0, `"out" is a read-only mirror of link "eu"`)
			if st.Position != 1 {
				t.Fatalf("the position moved to %d while the output is a mirror", st.Position)
			}
			if hwm := e.log(t, "out", 0).HighWatermark(); hwm != 0 {
				t.Fatalf("the mirror took %d records from the pipeline", hwm)
			}

			promote(t, e.env, links, "out")
			e.caughtUp(t)
			sameStrings(t, "out/0 after promote", e.values(t, "out", 0), []string{"B"})
		})
	}
}

// An exactly-once batch committed to the outbox before its output became
// a mirror is not shipped into the mirror: the refusal is at the append
// itself, on the outbox entry's decoded topic. It ships, once, after the
// promote.
func TestMirrorRefusesCommittedOutbox(t *testing.T) {
	e := newPipeEnv(t, upper)
	links := linkOn(t, e.env)
	// Every append to out/0 fails: the batch stays in the outbox.
	e.log(t, "out", 0).Inject(memstore.Fault{Ops: memstore.OpAppend, Count: 1 << 30})
	e.create(t, core.PipelineSpec{Guarantee: core.ExactlyOnce})
	e.produce(t, "in", 0, "a")
	tu.Eventually(t, fence, "the batch committed to the outbox", func() bool {
		n := 0
		e.log(t, "in", 0).StateScan("pipe/p/ob/", func(string, []byte) bool { n++; return true })
		return n == 1
	})
	mirror(t, e.env, links, "out", 2)
	waitLastError(t, e, 0, `"out" is a read-only mirror of link "eu"`)
	if hwm := e.log(t, "out", 0).HighWatermark(); hwm != 0 {
		t.Fatalf("the outbox was shipped into the mirror: %d records", hwm)
	}
	promote(t, e.env, links, "out")
	e.caughtUp(t)
	sameStrings(t, "out/0 after promote", e.values(t, "out", 0), []string{"A"})
}

// waitLastError waits until the status of input partition part names
// want as its last error, and returns it.
func waitLastError(t *testing.T, e *pipeEnv, part int, want string) core.PartitionStatus {
	t.Helper()
	var ps core.PartitionStatus
	tu.Eventually(t, fence, "the status to say "+want, func() bool {
		_, st, err := e.p.Status("p")
		if err != nil {
			t.Fatal(err)
		}
		ps = st[part]
		return strings.Contains(ps.LastError, want)
	})
	return ps
}

// A subscription's dead-letter topic may not be a mirror: refused at
// create, and dead letters wait (dead_pending) while the topic is one.
func TestMirrorRefusesSubscriptionDeadLetters(t *testing.T) {
	e := newQueueEnv(t, core.SubscriptionConfig{VisibilityTimeoutMs: 1000, MaxAttempts: 1, DeadLetterTopic: "q.dlq"})
	links := linkOn(t, e.env)
	mirror(t, e.env, links, "m.dlq", 1)
	pendingMirror(t, e.env, "p.dlq")
	for _, dlq := range []string{"m.dlq", "p.dlq"} {
		_, err := e.q.CreateSubscription(e.ctx, core.SubscriptionConfig{Topic: "q", Name: "s-" + dlq, MaxAttempts: 1, DeadLetterTopic: dlq})
		isMirrorErr(t, "create a subscription dead-lettering to "+dlq, err)
	}
	if _, err := e.st.Topic("p.dlq"); !errors.Is(err, core.ErrTopicNotFound) {
		t.Fatalf("the refused create made the dead-letter topic a link is creating: %v", err)
	}

	// q.dlq becomes a mirror after the subscription was made.
	mirror(t, e.env, links, "q.dlq", 1)
	e.produce(t, "q", 0, "poison")
	ms := e.receive(t, 1)
	e.nack(t, ms[0], 0, "boom") // the last attempt: the message is dead
	// Fence: the partition's worker tries the dead-letter append when it
	// goes idle after the nack, before it takes this receive.
	sameStrings(t, "receive after the dead letter", delivered(e.receive(t, 1)), []string{})
	if _, st, err := e.q.Stats("q", "s"); err != nil || st[0].DeadPending != 1 || st[0].DeadLettered != 0 {
		t.Fatalf("stats while the dead-letter topic is a mirror: %+v %v", st, err)
	}
	if hwm := e.log(t, "q.dlq", 0).HighWatermark(); hwm != 0 {
		t.Fatalf("the mirror took %d dead letters", hwm)
	}
	go e.q.Run(e.ctx) // the maintenance loop retries the append
	promote(t, e.env, links, "q.dlq")
	e.waitHWM(t, "q.dlq", 0, 1)
	dl, _ := e.log(t, "q.dlq", 0).Read(e.ctx, 0, 10, 0)
	header(t, dl[0], core.HeaderLastError, "boom")
}

// A redrive into a mirror is refused before it reads anything, and moves
// nothing; after the promote it moves the dead letters.
func TestMirrorRefusesRedrive(t *testing.T) {
	e := newEnv(t, memstore.Config{})
	q := must[*core.Queues](t)(core.NewQueues(e.broker, core.QueueConfig{}))
	t.Cleanup(q.Close)
	links := linkOn(t, e)
	e.topic(t, "dlq", 1)
	e.produce(t, "dlq", 0, "x", "y")
	mirror(t, e, links, "back", 1)
	n, err := q.Redrive(e.ctx, &core.RedriveRequest{From: "dlq", To: "back"})
	isMirrorErr(t, "redrive", err)
	if n != 0 || len(e.st.GroupOffsets(core.RedriveGroup)) != 0 {
		t.Fatalf("a refused redrive moved %d records (offsets %v)", n, e.st.GroupOffsets(core.RedriveGroup))
	}
	promote(t, e, links, "back")
	if n, err := q.Redrive(e.ctx, &core.RedriveRequest{From: "dlq", To: "back"}); err != nil || n != 2 {
		t.Fatalf("redrive after promote: %d %v", n, err)
	}
	sameStrings(t, "back/0", e.values(t, "back", 0), []string{"x", "y"})
}
