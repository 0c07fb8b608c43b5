package core_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
)

// queueEnv is a topic "q" of one partition with a subscription "s" on it.
type queueEnv struct {
	*env
	clock *fakeClock
	q     *core.Queues
}

func newQueueEnv(t *testing.T, sub core.SubscriptionConfig) *queueEnv {
	t.Helper()
	e := &queueEnv{env: newEnv(t, memstore.Config{}), clock: newClock()}
	e.topic(t, "q", 1)
	e.q = must[*core.Queues](t)(core.NewQueues(e.broker, core.QueueConfig{Now: e.clock.Now, MaintenanceInterval: 5 * time.Millisecond}))
	t.Cleanup(e.q.Close)
	sub.Topic, sub.Name = "q", "s"
	if sub.Backoff == nil {
		sub.Backoff = &core.Backoff{InitialMs: 100, MaxMs: 100, Multiplier: 1}
	}
	if _, err := e.q.CreateSubscription(e.ctx, sub); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *queueEnv) receive(t *testing.T, max int) []core.Message {
	t.Helper()
	ms, err := e.q.Receive(e.ctx, &core.ReceiveRequest{Topic: "q", Subscription: "s", MaxRecords: max})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return ms
}

// delivered returns "value@attempt" of each message.
func delivered(ms []core.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Value) + "@" + strconv.Itoa(m.Attempt)
	}
	return out
}

func (e *queueEnv) ack(t *testing.T, ms ...core.Message) []error {
	t.Helper()
	var rs []string
	for _, m := range ms {
		rs = append(rs, m.Receipt)
	}
	res, err := e.q.Ack(e.ctx, "q", "s", rs)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]error, len(res))
	for i, r := range res {
		out[i] = r.Err
	}
	return out
}

// ackAll acknowledges ms, each of which must succeed.
func (e *queueEnv) ackAll(t *testing.T, ms []core.Message) {
	t.Helper()
	for i, err := range e.ack(t, ms...) {
		if err != nil {
			t.Fatalf("ack of %s: %v", delivered(ms)[i], err)
		}
	}
}

func (e *queueEnv) nack(t *testing.T, m core.Message, delay time.Duration, reason string) {
	t.Helper()
	res, err := e.q.Nack(e.ctx, &core.NackRequest{Topic: "q", Subscription: "s", Receipts: []string{m.Receipt}, Delay: &delay, Error: reason})
	if err != nil || res[0].Err != nil {
		t.Fatalf("nack: %v %+v", err, res)
	}
}

func TestQueueLeaseAckAndRedelivery(t *testing.T) {
	e := newQueueEnv(t, core.SubscriptionConfig{VisibilityTimeoutMs: 1000})
	e.produce(t, "q", 0, "a", "b", "c")
	ms := e.receive(t, 10)
	sameStrings(t, "first receive", delivered(ms), []string{"a@1", "b@1", "c@1"})
	if want := e.clock.Now().UnixMilli() + 1000; ms[0].LeaseExpiresAt != want {
		t.Fatalf("lease expires at %d, want %d", ms[0].LeaseExpiresAt, want)
	}
	sameStrings(t, "receive while all are leased", delivered(e.receive(t, 10)), []string{})
	if errs := e.ack(t, ms[0]); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if errs := e.ack(t, ms[0]); errs[0] != nil {
		t.Fatalf("a second ack of the same message: %v (acks are idempotent)", errs[0])
	}
	e.nack(t, ms[1], 0, "")
	again := e.receive(t, 10)
	sameStrings(t, "after a nack without delay", delivered(again), []string{"b@2"})
	if errs := e.ack(t, ms[1]); !errors.Is(errs[0], core.ErrLeaseLost) {
		t.Fatalf("ack with the receipt of an earlier lease: %v, want ErrLeaseLost", errs[0])
	}
	// The leases run out; the backoff (100 ms) passes: both come back.
	e.clock.Add(1000 * time.Millisecond)
	sameStrings(t, "at the lease's expiry, before the backoff", delivered(e.receive(t, 10)), []string{})
	e.clock.Add(100 * time.Millisecond)
	late := e.receive(t, 10)
	sameStrings(t, "after the leases expired", delivered(late), []string{"b@3", "c@2"})
	e.ackAll(t, late)
	e.clock.Add(time.Hour)
	sameStrings(t, "after everything was acknowledged", delivered(e.receive(t, 10)), []string{})
	_, stats, err := e.q.Stats("q", "s")
	if err != nil || stats[0].Acked != 3 || stats[0].Nacked != 1 || stats[0].Delivered != 6 || stats[0].Cursor != 3 || stats[0].Backlog != 0 {
		t.Fatalf("stats %+v %v", stats, err)
	}
}

func TestQueueDeadLetterAfterMaxAttempts(t *testing.T) {
	e := newQueueEnv(t, core.SubscriptionConfig{VisibilityTimeoutMs: 1000, MaxAttempts: 2, DeadLetterTopic: "q.dlq"})
	e.produce(t, "q", 0, "poison", "fine")
	ms := e.receive(t, 1)
	sameStrings(t, "first", delivered(ms), []string{"poison@1"})
	e.nack(t, ms[0], 0, "first failure")
	ms = e.receive(t, 1)
	sameStrings(t, "second", delivered(ms), []string{"poison@2"})
	e.nack(t, ms[0], 0, "boom")
	e.waitHWM(t, "q.dlq", 0, 1)
	dl, err := e.log(t, "q.dlq", 0).Read(e.ctx, 0, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := dl[0]
	if string(r.Value) != "poison" {
		t.Fatalf("dead letter %q", r.Value)
	}
	header(t, r, core.HeaderDLQReason, "max_attempts_exceeded")
	header(t, r, core.HeaderAttempts, "2")
	header(t, r, core.HeaderLastError, "boom")
	header(t, r, core.HeaderSourceOffset, "0")
	header(t, r, core.HeaderSourceSub, "s")
	e.clock.Add(time.Hour)
	sameStrings(t, "after the dead letter", delivered(e.receive(t, 10)), []string{"fine@1"})
}

// A last attempt whose lease expires is dead-lettered by the maintenance
// loop, with no receive asking.
func TestQueueExpiredLastLeaseDeadLettered(t *testing.T) {
	e := newQueueEnv(t, core.SubscriptionConfig{VisibilityTimeoutMs: 1000, MaxAttempts: 1, DeadLetterTopic: "q.dlq"})
	go e.q.Run(e.ctx)
	e.produce(t, "q", 0, "slow")
	sameStrings(t, "receive", delivered(e.receive(t, 1)), []string{"slow@1"})
	e.clock.Add(1001 * time.Millisecond)
	e.waitHWM(t, "q.dlq", 0, 1)
	dl, _ := e.log(t, "q.dlq", 0).Read(e.ctx, 0, 10, 0)
	header(t, dl[0], core.HeaderLastError, "visibility timeout expired")
	header(t, dl[0], core.HeaderAttempts, "1")
}

func TestQueueDelayedDelivery(t *testing.T) {
	e := newQueueEnv(t, core.SubscriptionConfig{})
	at := e.clock.Now().Add(5 * time.Second).UnixMilli()
	_, err := e.broker.Produce(e.ctx, &core.ProduceRequest{Topic: "q", Records: []core.ProduceRecord{
		{Partition: 0, Record: core.Record{Value: []byte("later"), Headers: []core.Header{{Key: core.HeaderDeliverAt, Value: strconv.FormatInt(at, 10)}}}},
		{Partition: 0, Record: core.Record{Value: []byte("now")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "before deliver_at", delivered(e.receive(t, 10)), []string{"now@1"})
	e.clock.Add(5 * time.Second)
	sameStrings(t, "at deliver_at", delivered(e.receive(t, 10)), []string{"later@1"})
}

// A pipelined lease transaction that could not be queued is applied
// synchronously instead. A lease transaction that failed without applying
// leaves nothing behind; one that applied but whose caller saw an error
// (an unknown outcome) leaves the message leased to nobody: it comes back
// after the lease, as one more attempt.
func TestQueueReceiveUnderStoreFaults(t *testing.T) {
	e := newQueueEnv(t, core.SubscriptionConfig{VisibilityTimeoutMs: 1000})
	e.produce(t, "q", 0, "m", "n")
	log := e.log(t, "q", 0)
	log.Inject(memstore.Fault{Ops: memstore.OpTxn}) // ProposeTxn fails: ApplyTxn takes over
	sameStrings(t, "after a failed ProposeTxn", delivered(e.receive(t, 1)), []string{"m@1"})
	log.Inject(memstore.Fault{Ops: memstore.OpTxn, Count: 2}) // both fail
	if ms, err := e.q.Receive(e.ctx, &core.ReceiveRequest{Topic: "q", Subscription: "s"}); !errors.Is(err, core.ErrUnavailable) || len(ms) > 0 {
		t.Fatalf("receive through a failing store = %v, %v; want ErrUnavailable", delivered(ms), err)
	}
	sameStrings(t, "after a lease that was not applied", delivered(e.receive(t, 10)), []string{"n@1"})
	sameStrings(t, "while both are leased", delivered(e.receive(t, 10)), []string{})
	e.clock.Add(1100 * time.Millisecond)
	again := e.receive(t, 10)
	sameStrings(t, "after the leases", delivered(again), []string{"m@2", "n@2"})
	e.ackAll(t, again)
	e.produce(t, "q", 0, "u")
	log.Inject(memstore.Fault{Ops: memstore.OpTxn, Applied: true})
	if ms, err := e.q.Receive(e.ctx, &core.ReceiveRequest{Topic: "q", Subscription: "s"}); err == nil && len(ms) > 0 {
		t.Fatalf("receive whose lease outcome is unknown delivered %v", delivered(ms))
	}
	sameStrings(t, "while the unseen lease holds", delivered(e.receive(t, 10)), []string{})
	e.clock.Add(1100 * time.Millisecond)
	sameStrings(t, "after the unseen lease", delivered(e.receive(t, 10)), []string{"u@2"})
}

// Ordering "key": one message per key at a time, in offset order; other
// keys are not held up.
func TestQueueOrderingKey(t *testing.T) {
	e := newQueueEnv(t, core.SubscriptionConfig{Ordering: core.OrderingKey})
	var recs []core.ProduceRecord
	for _, kv := range [][2]string{{"k1", "a"}, {"k1", "b"}, {"k2", "c"}, {"k1", "d"}} {
		recs = append(recs, core.ProduceRecord{Partition: 0, Record: core.Record{Key: []byte(kv[0]), Value: []byte(kv[1])}})
	}
	if _, err := e.broker.Produce(e.ctx, &core.ProduceRequest{Topic: "q", Records: recs}); err != nil {
		t.Fatal(err)
	}
	first := e.receive(t, 10)
	sameStrings(t, "first receive", delivered(first), []string{"a@1", "c@1"})
	e.ackAll(t, first[:1])
	second := e.receive(t, 10)
	sameStrings(t, "after a was acknowledged", delivered(second), []string{"b@1"})
	e.nack(t, second[0], 0, "")
	third := e.receive(t, 10)
	sameStrings(t, "after b was nacked", delivered(third), []string{"b@2"})
	e.ackAll(t, append(third, first[1]))
	sameStrings(t, "last", delivered(e.receive(t, 10)), []string{"d@1"})
}
