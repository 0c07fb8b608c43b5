package core

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/testclock"
)

type prioRig struct {
	t      *testing.T
	store  *memStore
	broker *Broker
	q      *Queues
	clock  *testclock.Clock
	cfg    QueueConfig
}

// newPrioRig starts a queue service on an in-memory store with topic "t"
// of the given partitions.
func newPrioRig(t *testing.T, partitions int, cfg QueueConfig) *prioRig {
	t.Helper()
	r := &prioRig{t: t, store: newMemStore(), clock: testclock.New(time.UnixMilli(1_700_000_000_000)), cfg: cfg}
	r.store.addTopic("t", partitions)
	r.broker = newBrokerT(t, r.store, BrokerConfig{})
	r.cfg.Now = r.clock.Now
	r.start()
	return r
}

// start (re)starts the queue service: a new one rebuilds everything it
// knows from the store, as after a restart or on a new leader.
func (r *prioRig) start() {
	if r.q != nil {
		r.q.Close()
	}
	r.q = newQueuesT(r.t, r.broker, r.cfg)
	r.t.Cleanup(r.q.Close)
}

func (r *prioRig) createSub(cfg SubscriptionConfig) {
	r.t.Helper()
	cfg.Topic = "t"
	if _, err := r.q.CreateSubscription(context.Background(), cfg); err != nil {
		r.t.Fatal(err)
	}
}

// rec is a record to produce: value, priority ("" for none), key, partition.
type rec struct {
	val, prio, key string
	part           int
}

func (r *prioRig) produce(recs ...rec) {
	r.t.Helper()
	req := &ProduceRequest{Topic: "t"}
	for _, x := range recs {
		pr := ProduceRecord{Partition: x.part, Record: Record{Value: []byte(x.val)}}
		if x.key != "" {
			pr.Key = []byte(x.key)
		}
		if x.prio != "" {
			pr.Headers = []Header{{HeaderPriority, x.prio}}
		}
		req.Records = append(req.Records, pr)
	}
	if _, err := r.broker.Produce(context.Background(), req); err != nil {
		r.t.Fatal(err)
	}
}

func (r *prioRig) receive(sub string, max int) []Message {
	r.t.Helper()
	msgs, err := r.q.Receive(context.Background(), &ReceiveRequest{Topic: "t", Subscription: sub, MaxRecords: max})
	if err != nil {
		r.t.Fatal(err)
	}
	return msgs
}

// receiveEach receives one message at a time until none is deliverable.
func (r *prioRig) receiveEach(sub string, ack bool) []string {
	r.t.Helper()
	var out []string
	for range 1000 {
		ms := r.receive(sub, 1)
		if len(ms) == 0 {
			return out
		}
		out = append(out, string(ms[0].Value))
		if ack {
			r.settle("ack", sub, ms, nil)
		}
	}
	r.t.Fatal("receive never ran dry")
	return nil
}

func (r *prioRig) settle(op, sub string, ms []Message, delay *time.Duration) {
	r.t.Helper()
	var rs []string
	for _, m := range ms {
		rs = append(rs, m.Receipt)
	}
	var res []ReceiptResult
	var err error
	switch op {
	case "ack":
		res, err = r.q.Ack(context.Background(), "t", sub, rs)
	case "nack":
		res, err = r.q.Nack(context.Background(), &NackRequest{Topic: "t", Subscription: sub, Receipts: rs, Delay: delay})
	}
	if err != nil {
		r.t.Fatal(err)
	}
	for _, x := range res {
		if x.Err != nil {
			r.t.Fatalf("%s: %v", op, x.Err)
		}
	}
}

func values(ms []Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Value)
	}
	return out
}

func sameOrder(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// mixed is the same records for several tests: priorities out of order,
// some without a priority header (0).
var mixed = []rec{
	{val: "a0", prio: ""}, {val: "b5", prio: "5"}, {val: "c9", prio: "9"}, {val: "d5", prio: "5"},
	{val: "e0", prio: "0"}, {val: "f9", prio: "9"}, {val: "g3", prio: "3"}, {val: "h1", prio: "1"},
}

var mixedOrder = []string{"c9", "f9", "b5", "d5", "g3", "h1", "a0", "e0"}

func TestPriorityStrictOrder(t *testing.T) {
	t.Parallel()
	for _, batch := range []int{1, 3, 100} {
		t.Run("max_records="+strconv.Itoa(batch), func(t *testing.T) {
			t.Parallel()
			r := newPrioRig(t, 1, QueueConfig{})
			r.createSub(SubscriptionConfig{Name: "p", Priority: true})
			r.createSub(SubscriptionConfig{Name: "plain"})
			r.produce(mixed...)
			var got []string
			for ms := r.receive("p", batch); len(ms) > 0; ms = r.receive("p", batch) {
				got = append(got, values(ms)...)
			}
			sameOrder(t, "priority subscription", got, mixedOrder)
			var plain []string
			for _, x := range mixed {
				plain = append(plain, x.val)
			}
			sameOrder(t, "plain subscription (log order)", values(r.receive("plain", 100)), plain)
		})
	}
}

// Records produced while messages are out keep the order: a later
// high-priority record overtakes the earlier low ones still pending.
func TestPriorityLateArrivals(t *testing.T) {
	t.Parallel()
	r := newPrioRig(t, 1, QueueConfig{})
	r.createSub(SubscriptionConfig{Name: "p", Priority: true})
	r.produce(rec{val: "x0"}, rec{val: "y0"}, rec{val: "z4", prio: "4"})
	sameOrder(t, "first", values(r.receive("p", 1)), []string{"z4"})
	r.produce(rec{val: "w9", prio: "9"}, rec{val: "v0"})
	sameOrder(t, "rest", r.receiveEach("p", false), []string{"w9", "x0", "y0", "v0"})
}

func TestPriorityAcrossPartitions(t *testing.T) {
	t.Parallel()
	r := newPrioRig(t, 3, QueueConfig{})
	r.createSub(SubscriptionConfig{Name: "p", Priority: true})
	var recs []rec
	for i, x := range mixed {
		x.part = i % 3
		recs = append(recs, x)
	}
	r.produce(recs...)
	got := r.receiveEach("p", false)
	// Within a priority the partitions' order is free: compare priorities.
	sameOrder(t, "priorities", prios(got), prios(mixedOrder))
}

// prios is the priorities of values named like mixed's.
func prios(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v[1:]
	}
	return out
}

// With ordering "key", a key's messages go one at a time in log order
// whatever their priorities; among the keys' first messages the highest
// priority goes first.
func TestPriorityKeyOrdering(t *testing.T) {
	t.Parallel()
	r := newPrioRig(t, 1, QueueConfig{})
	r.createSub(SubscriptionConfig{Name: "p", Priority: true, Ordering: OrderingKey})
	r.produce(
		rec{val: "a1-p0", key: "a"}, rec{val: "a2-p9", key: "a", prio: "9"},
		rec{val: "b1-p5", key: "b", prio: "5"}, rec{val: "c1-p9", key: "c", prio: "9"},
		rec{val: "n1-p2", prio: "2"}, rec{val: "b2-p9", key: "b", prio: "9"},
	)
	first := r.receive("p", 10)
	sameOrder(t, "heads", values(first), []string{"c1-p9", "b1-p5", "n1-p2", "a1-p0"})
	if ms := r.receive("p", 10); len(ms) != 0 {
		t.Fatalf("the keys' next messages went out before their first ones were done: %v", values(ms))
	}
	// Ack a's and b's first messages: their next ones (both 9) are free, a's first.
	r.settle("ack", "p", []Message{first[3], first[1]}, nil)
	sameOrder(t, "next", values(r.receive("p", 10)), []string{"a2-p9", "b2-p9"})
}

// Every Nth delivery is the oldest deliverable message whatever its
// priority.
func TestPriorityStarvationGuard(t *testing.T) {
	t.Parallel()
	r := newPrioRig(t, 1, QueueConfig{})
	r.createSub(SubscriptionConfig{Name: "p", Priority: true, PriorityGuardEvery: 3})
	r.produce(rec{val: "old0"}, rec{val: "old1"}, rec{val: "h1", prio: "9"}, rec{val: "h2", prio: "9"},
		rec{val: "h3", prio: "9"}, rec{val: "h4", prio: "9"}, rec{val: "m", prio: "5"})
	sameOrder(t, "guarded order", r.receiveEach("p", false), []string{"h1", "h2", "old0", "h3", "h4", "old1", "m"})

	if _, err := r.q.CreateSubscription(context.Background(), SubscriptionConfig{Topic: "t", Name: "bad", PriorityGuardEvery: 2}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("a guard without priority: %v, want ErrBadRequest", err)
	}
}

// A nacked or expired message comes back with its priority, ahead of
// lower ones, after its backoff.
func TestPriorityRedeliveryKeepsPriority(t *testing.T) {
	t.Parallel()
	r := newPrioRig(t, 1, QueueConfig{})
	r.createSub(SubscriptionConfig{Name: "p", Priority: true, VisibilityTimeoutMs: 1000,
		Backoff: &Backoff{InitialMs: 500, MaxMs: 500, Multiplier: 1}})
	r.produce(rec{val: "low1", prio: "1"}, rec{val: "low2", prio: "1"}, rec{val: "hi", prio: "8"}, rec{val: "mid", prio: "4"})

	ms := r.receive("p", 1)
	sameOrder(t, "first", values(ms), []string{"hi"})
	zero := time.Duration(0)
	r.settle("nack", "p", ms, &zero)
	ms = r.receive("p", 1)
	sameOrder(t, "after the nack", values(ms), []string{"hi"})
	if ms[0].Attempt != 2 {
		t.Fatalf("attempt %d, want 2", ms[0].Attempt)
	}
	// Let the lease run out: during the backoff the others go, after it "hi" again.
	r.clock.Add(1100 * time.Millisecond)
	sameOrder(t, "during the backoff", values(r.receive("p", 1)), []string{"mid"})
	r.clock.Add(500 * time.Millisecond)
	ms = r.receive("p", 1)
	sameOrder(t, "after the backoff", values(ms), []string{"hi"})
	if ms[0].Attempt != 3 {
		t.Fatalf("attempt %d, want 3", ms[0].Attempt)
	}
	r.settle("ack", "p", ms, nil)
	sameOrder(t, "rest", r.receiveEach("p", true), []string{"low1", "low2"})
}

// A new queue service (a restart, or another node taking over) rebuilds
// the index from the replicated state alone and goes on in order, with
// the messages leased before still leased.
func TestPriorityIndexFromState(t *testing.T) {
	t.Parallel()
	r := newPrioRig(t, 2, QueueConfig{})
	r.createSub(SubscriptionConfig{Name: "p", Priority: true, VisibilityTimeoutMs: 60000})
	var recs []rec
	for i, x := range mixed {
		x.part = i % 2
		recs = append(recs, x)
	}
	r.produce(recs...)
	first := r.receive("p", 2)
	// Within a priority the partitions' order is free: compare priorities.
	sameOrder(t, "before", prios(values(first)), prios(mixedOrder[:2]))
	r.start()
	got := r.receiveEach("p", true)
	sameOrder(t, "after the restart", prios(got), prios(mixedOrder[2:]))
	if len(got) != len(mixedOrder)-2 {
		t.Fatalf("after the restart: %v (the leased ones must stay leased)", got)
	}
	_, parts, err := r.q.Stats("t", "p")
	if err != nil {
		t.Fatal(err)
	}
	inFlight := 0
	for _, p := range parts {
		inFlight += p.InFlight
	}
	if inFlight != len(first) {
		t.Fatalf("%d in flight after the restart, want the %d leased before", inFlight, len(first))
	}
}

// Produce refuses a priority header it cannot take, on every path.
func TestPriorityHeaderValidation(t *testing.T) {
	t.Parallel()
	r := newPrioRig(t, 1, QueueConfig{})
	for _, v := range []string{"10", "-1", "a", "", " 1", "1.0", "٣"} {
		req := &ProduceRequest{Topic: "t", Records: []ProduceRecord{{Record: Record{Value: []byte("x"), Headers: []Header{{HeaderPriority, v}}}}}}
		_, err := r.broker.Produce(context.Background(), req)
		var re *RecordError
		if !errors.Is(err, ErrBadRequest) || !errors.As(err, &re) {
			t.Fatalf("priority %q: %v, want a RecordError (bad request)", v, err)
		}
		if err := r.broker.ProduceNoAck(context.Background(), req, time.Second); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("acks=none, priority %q: %v, want bad request", v, err)
		}
	}
	if r.store.logs["t"][0].HighWatermark() != 0 {
		t.Fatal("a refused record was written")
	}
	r.produce(rec{val: "ok", prio: "9"}, rec{val: "ok0", prio: "0"})
}

func TestPriorityPendingCounts(t *testing.T) {
	t.Parallel()
	r := newPrioRig(t, 1, QueueConfig{})
	r.createSub(SubscriptionConfig{Name: "p", Priority: true})
	r.produce(mixed...)
	r.receive("p", 3) // c9, f9, b5
	got := map[int]int64{}
	for _, p := range r.q.PendingByPriority() {
		got[p.Priority] = p.Pending
	}
	want := map[int]int64{0: 2, 1: 1, 3: 1, 5: 1, 9: 0}
	for p, n := range want {
		if got[p] != n {
			t.Fatalf("pending %v, want %v", got, want)
		}
	}
	_, parts, _ := r.q.Stats("t", "p")
	if parts[0].Pending[0] != 2 || parts[0].Pending[5] != 1 || parts[0].InFlight != 3 || parts[0].Retrying != 0 {
		t.Fatalf("stats %+v", parts[0])
	}
}

// modelMsg is the reference model's view of one message.
type modelMsg struct {
	off        int64
	prio       int
	key        string
	acked      bool
	leaseUntil int64 // ms; 0: not leased
	receipt    string
}

// TestPriorityMatchesModel runs random produces, receives, acks, nacks
// and lease expiries against one partition and checks every receive
// against a reference model: the deliverable messages (not acked, not
// leased; with ordering "key" the first unacked one of its key), highest
// priority first, then by offset.
func TestPriorityMatchesModel(t *testing.T) {
	t.Parallel()
	for _, ordering := range []string{OrderingNone, OrderingKey} {
		for seed := range 4 {
			t.Run(ordering+"/"+strconv.Itoa(seed), func(t *testing.T) {
				t.Parallel()
				runPriorityModel(t, ordering, uint64(seed))
			})
		}
	}
}

func runPriorityModel(t *testing.T, ordering string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 17))
	cfg := QueueConfig{MaxScan: 7} // small index batches: several per receive
	if seed%2 == 1 {
		cfg.PriorityCacheBytes = 1 // no record cached: every delivery reads the log
	}
	r := newPrioRig(t, 1, cfg)
	r.createSub(SubscriptionConfig{Name: "p", Priority: true, Ordering: ordering, VisibilityTimeoutMs: 1000,
		Backoff: &Backoff{InitialMs: 0, MaxMs: 0, Multiplier: 1}})
	var msgs []*modelMsg
	type lease struct {
		m       *modelMsg
		receipt string
	}
	var out []lease // receipts handed out, maybe superseded
	deliverable := func(now int64) []*modelMsg {
		first := map[string]int64{}
		for _, m := range msgs {
			if !m.acked && m.key != "" {
				if _, ok := first[m.key]; !ok {
					first[m.key] = m.off
				}
			}
		}
		var d []*modelMsg
		for _, m := range msgs {
			if m.acked || m.leaseUntil > now || ordering == OrderingKey && m.key != "" && first[m.key] != m.off {
				continue
			}
			d = append(d, m)
		}
		sort.SliceStable(d, func(i, j int) bool { return d[i].prio > d[j].prio })
		return d
	}
	for step := range 300 {
		now := r.clock.Now().UnixMilli()
		switch op := rng.IntN(10); {
		case op < 3:
			var recs []rec
			for range 1 + rng.IntN(6) {
				x := rec{val: strconv.Itoa(len(msgs)), prio: strconv.Itoa(rng.IntN(10))}
				if k := rng.IntN(4); k > 0 {
					x.key = string(rune('a' + k))
				}
				recs = append(recs, x)
				p, _ := strconv.Atoi(x.prio)
				msgs = append(msgs, &modelMsg{off: int64(len(msgs)), prio: p, key: x.key})
			}
			r.produce(recs...)
		case op < 6:
			n := 1 + rng.IntN(5)
			maxBytes, keep := 0, n
			if rng.IntN(3) == 0 {
				maxBytes, keep = 1, 1 // one message whatever n: the others picked go back
			}
			want := deliverable(now)
			want = want[:min(len(want), keep)]
			got, err := r.q.Receive(context.Background(), &ReceiveRequest{Topic: "t", Subscription: "p", MaxRecords: n, MaxBytes: maxBytes})
			if err != nil {
				t.Fatal(err)
			}
			var gv, wv []string
			for _, m := range got {
				gv = append(gv, string(m.Value))
			}
			for _, m := range want {
				wv = append(wv, strconv.FormatInt(m.off, 10))
			}
			sameOrder(t, fmt.Sprintf("step %d receive %d", step, n), gv, wv)
			for i, m := range want {
				m.leaseUntil, m.receipt = got[i].LeaseExpiresAt, got[i].Receipt
				out = append(out, lease{m, m.receipt})
			}
		case op < 8 && len(out) > 0:
			i := rng.IntN(len(out))
			m, receipt := out[i].m, out[i].receipt
			out = append(out[:i], out[i+1:]...)
			if m.acked || m.receipt != receipt || m.leaseUntil <= now {
				continue // done, leased again, or its lease ran out (received again later)
			}
			msg := []Message{{Receipt: receipt}}
			if op == 6 {
				r.settle("ack", "p", msg, nil)
				m.acked = true
			} else {
				zero := time.Duration(0)
				r.settle("nack", "p", msg, &zero)
				m.leaseUntil = 0
			}
		default:
			r.clock.Add(time.Duration(rng.IntN(700)) * time.Millisecond)
		}
	}
}
