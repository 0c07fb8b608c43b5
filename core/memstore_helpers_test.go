package core_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// The unit tests of the domain's services run on core/memstore: the same
// store contract as raftlog (core/storetest checks both), no Raft, no
// disk, with fault injection. Nothing here decides by timing: services get
// a fakeClock where they read time, and tests wait for a fence (a state, an
// offset) with a deadline.

// fence is how long a test waits for a state it expects.
const fence = 10 * time.Second

// fakeClock is a clock tests move by hand. Safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a store and a broker over it.
type env struct {
	st     *memstore.Store
	broker *core.Broker
	ctx    context.Context
}

func newEnv(t *testing.T, cfg memstore.Config) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	st := memstore.New(cfg)
	return &env{st: st, broker: must[*core.Broker](t)(core.NewBroker(st, core.BrokerConfig{})), ctx: ctx}
}

// must returns a constructor's value, failing t on its error:
// must[*core.Broker](t)(core.NewBroker(st, cfg)).
func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func (e *env) topic(t *testing.T, name string, partitions int) {
	t.Helper()
	if _, err := e.broker.CreateTopic(e.ctx, core.TopicConfig{Name: name, Partitions: partitions, RetentionMs: -1}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) log(t *testing.T, topic string, p int) *memstore.Partition {
	t.Helper()
	l, err := e.st.Log(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// produce appends records with the values given to one partition.
func (e *env) produce(t *testing.T, topic string, p int, vals ...string) {
	t.Helper()
	recs := make([]core.ProduceRecord, len(vals))
	for i, v := range vals {
		recs[i] = core.ProduceRecord{Partition: p, Record: core.Record{Value: []byte(v)}}
	}
	if _, err := e.broker.Produce(e.ctx, &core.ProduceRequest{Topic: topic, Records: recs}); err != nil {
		t.Fatal(err)
	}
}

// values reads a whole partition's values.
func (e *env) values(t *testing.T, topic string, p int) []string {
	t.Helper()
	l := e.log(t, topic, p)
	recs, err := l.Read(e.ctx, l.LogStart(), 10000, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// waitHWM waits until a partition holds n records.
func (e *env) waitHWM(t *testing.T, topic string, p int, n int64) {
	t.Helper()
	l := e.log(t, topic, p)
	tu.Eventually(t, fence, fmt.Sprintf("%s/%d to reach offset %d", topic, p, n), func() bool { return l.HighWatermark() >= n })
	if hwm := l.HighWatermark(); hwm != n {
		t.Fatalf("%s/%d holds %d records, want %d", topic, p, hwm, n)
	}
}

func sameStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

func header(t *testing.T, r core.Record, k, want string) {
	t.Helper()
	if v, _ := r.Header(k); v != want {
		t.Fatalf("header %s = %q, want %q (headers %v)", k, v, want, r.Headers)
	}
}
