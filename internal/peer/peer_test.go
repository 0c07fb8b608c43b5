package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/gateway/apierr"
)

// fakeCluster is a core.Cluster of one node with one partition held in
// memory; err, when set, is what every partition call answers.
type fakeCluster struct {
	core.Cluster // unused methods panic

	mu       sync.Mutex
	log      *fakeLog
	hosts    bool
	routeErr error // ForwardedPartition's error
	hops     int   // the last ForwardedPartition's hops
}

func (c *fakeCluster) LocalStatus() core.NodeStatus { return core.NodeStatus{Node: 7, MetaLeader: 1} }
func (c *fakeCluster) HostsReplica(string, int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hosts
}
func (c *fakeCluster) ForwardedPartition(topic string, p, hops int) (core.PartitionLog, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hops = hops
	if c.routeErr != nil {
		return nil, c.routeErr
	}
	if topic != "orders" || p != 0 {
		return nil, fmt.Errorf("%w: %s/%d", core.ErrPartitionNotFound, topic, p)
	}
	return c.log, nil
}

type fakeLog struct {
	core.PartitionLog // unused methods panic

	mu      sync.Mutex
	err     error
	records []core.Record
	start   int64
	state   map[string][]byte
	batch   *core.AppendBatch // the last appended
}

func (l *fakeLog) Append(_ context.Context, b *core.AppendBatch) (core.AppendResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return core.AppendResult{}, l.err
	}
	l.batch = b
	base := int64(len(l.records))
	for _, r := range b.Records {
		r.Offset = int64(len(l.records))
		l.records = append(l.records, r)
	}
	return core.AppendResult{BaseOffset: base}, nil
}

func (l *fakeLog) Read(_ context.Context, from int64, maxRecords, _ int) ([]core.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil, l.err
	}
	if from < l.start || from > int64(len(l.records)) {
		return nil, &core.OffsetRangeError{Offset: from, LogStart: l.start, HighWatermark: int64(len(l.records))}
	}
	return l.records[from:min(int64(len(l.records)), from+int64(maxRecords))], nil
}

func (l *fakeLog) OffsetForTime(context.Context, int64) (int64, error) { return 1, nil }
func (l *fakeLog) HighWatermark() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.records))
}
func (l *fakeLog) LogStart() int64 { return l.start }
func (l *fakeLog) TrimTo(_ context.Context, off int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	l.start = off
	return nil
}
func (l *fakeLog) ApplyTxn(_ context.Context, txn *core.StateTxn) (core.TxnResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return core.TxnResult{}, l.err
	}
	for _, op := range txn.Ops {
		l.state[op.Key] = op.Value
	}
	return core.TxnResult{Applied: true}, nil
}
func (l *fakeLog) StateGet(k string) ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.state[k]
	return v, ok
}
func (l *fakeLog) StateScan(prefix string, fn func(string, []byte) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, v := range l.state {
		if strings.HasPrefix(k, prefix) && !fn(k, v) {
			return
		}
	}
}

// serve runs h on a fresh listener; it returns the address.
func serve(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

func newNode(t *testing.T) (*fakeCluster, core.Route, *Forwarder) {
	t.Helper()
	c := &fakeCluster{hosts: true, log: &fakeLog{state: map[string][]byte{}}}
	h, err := NewHandler(HandlerConfig{Cluster: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	addr := serve(t, h.Serve)
	return c, core.Route{Node: 7, Addr: addr, Topic: "orders", Partition: 0, Hops: 1}, NewForwarder(ForwarderConfig{})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestNewHandlerValidates(t *testing.T) {
	if _, err := NewHandler(HandlerConfig{}); err == nil {
		t.Fatal("a handler without a cluster")
	}
}

// TestCalls: every call of core.Forwarder reaches the handler and comes
// back with its answer.
func TestCalls(t *testing.T) {
	c, to, f := newNode(t)
	res, err := f.Append(ctx(t), to, &core.AppendBatch{ProducerID: "p", Sequence: 3, Timestamp: 5,
		Records: []core.Record{{Key: []byte("k"), Value: []byte("a"), Headers: []core.Header{{Key: "h", Value: "v"}}}, {Value: []byte("b")}}})
	if err != nil || res.BaseOffset != 0 {
		t.Fatalf("append: %+v %v", res, err)
	}
	if b := c.log.batch; b.ProducerID != "p" || b.Sequence != 3 || b.Timestamp != 5 || len(b.Records) != 2 || b.Records[0].Headers[0].Value != "v" {
		t.Fatalf("the batch arrived as %+v", b)
	}
	if c.hops != 1 {
		t.Errorf("hops %d, want 1", c.hops)
	}
	rr, err := f.Read(ctx(t), to, core.ReadRequest{From: 1, MaxRecords: 10, MaxBytes: 1 << 20, Timestamp: -1})
	if err != nil || rr.HighWatermark != 2 || len(rr.Records) != 1 || rr.Records[0].Offset != 1 || string(rr.Records[0].Value) != "b" {
		t.Fatalf("read: %+v %v", rr, err)
	}
	if rr, err := f.Read(ctx(t), to, core.ReadRequest{Timestamp: 9}); err != nil || rr.Offset != 1 {
		t.Fatalf("offset for time: %+v %v", rr, err)
	}
	tr, err := f.ApplyTxn(ctx(t), to, &core.StateTxn{Ops: []core.StateOp{{Key: "sub/a", Value: []byte("1")}}})
	if err != nil || !tr.Applied {
		t.Fatalf("txn: %+v %v", tr, err)
	}
	if m, err := f.State(ctx(t), to, "sub/", false); err != nil || string(m["sub/a"]) != "1" {
		t.Fatalf("state: %v %v", m, err)
	}
	if m, err := f.State(ctx(t), to, "sub/a", true); err != nil || len(m) != 1 {
		t.Fatalf("state exact: %v %v", m, err)
	}
	if err := f.TrimTo(ctx(t), to, 1); err != nil || c.log.start != 1 {
		t.Fatalf("trim: %v", err)
	}
	if st, err := f.NodeStatus(ctx(t), to.Addr); err != nil || st.Node != 7 {
		t.Fatalf("node status: %+v %v", st, err)
	}
}

// TestErrorsCrossNodes: an error a partition answers with on the serving
// node comes back from the Forwarder as the same sentinel or typed error
// (the full table is round-tripped in gateway/apierr).
func TestErrorsCrossNodes(t *testing.T) {
	c, to, f := newNode(t)
	for _, tc := range []struct {
		name string
		err  error
		is   error
		as   func(error) bool
	}{
		{"sequence", &core.SequenceError{ProducerID: "p", Expected: 4, Got: 9}, core.ErrOutOfOrderSequence, func(err error) bool {
			var se *core.SequenceError
			return errors.As(err, &se) && se.Expected == 4 && se.ProducerID == "p" && se.Got == 9
		}},
		{"not leader", &core.NotLeaderError{Leader: 3}, core.ErrNotLeader, func(err error) bool {
			var nl *core.NotLeaderError
			return errors.As(err, &nl) && nl.Leader == 3
		}},
		// not_leader wins: the call was not applied, the caller may retry.
		{"not leader wrapped", fmt.Errorf("%w: %w", core.ErrBadRequest, core.ErrNotLeader), core.ErrNotLeader, nil},
		{"bad request", core.Invalidf("no"), core.ErrBadRequest, func(err error) bool {
			var ie *core.InvalidError
			return errors.As(err, &ie) && ie.Msg == "no"
		}},
		{"too large", fmt.Errorf("%w: batch", core.ErrTooLarge), core.ErrTooLarge, nil},
		{"rate limited", core.ErrRateLimited, core.ErrRateLimited, nil},
		{"lease lost", core.ErrLeaseLost, core.ErrLeaseLost, nil},
		{"topic exists (was a 500 before apierr)", core.ErrTopicExists, core.ErrTopicExists, nil},
		{"stale generation", &core.StaleGenerationError{Group: "g", Generation: 1, Current: 2}, core.ErrStaleGeneration, func(err error) bool {
			var sg *core.StaleGenerationError
			return errors.As(err, &sg) && sg.Current == 2
		}},
		{"deadline", context.DeadlineExceeded, core.ErrUnavailable, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.log.mu.Lock()
			c.log.err = tc.err
			c.log.mu.Unlock()
			_, err := f.Append(ctx(t), to, &core.AppendBatch{ProducerID: "p", Sequence: 9, Records: []core.Record{{Value: []byte("x")}}})
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %#v, not %v", err, tc.is)
			}
			if tc.as != nil && !tc.as(err) {
				t.Fatalf("got %#v", err)
			}
			if err.Error() != tc.err.Error() {
				t.Errorf("message %q, want %q", err.Error(), tc.err.Error())
			}
		})
	}
	c.log.mu.Lock()
	c.log.err = nil
	c.log.mu.Unlock()

	// A read out of range carries the range.
	_, err := f.Read(ctx(t), to, core.ReadRequest{From: 50, MaxRecords: 1, Timestamp: -1})
	var oe *core.OffsetRangeError
	if !errors.As(err, &oe) || oe.Offset != 50 || oe.HighWatermark != 0 {
		t.Fatalf("read out of range: %#v", err)
	}
	// No local replica: not_leader, retry elsewhere.
	c.mu.Lock()
	c.hosts = false
	c.mu.Unlock()
	if _, err := f.Read(ctx(t), to, core.ReadRequest{From: 0, MaxRecords: 1, Timestamp: -1}); !errors.Is(err, core.ErrNotLeader) {
		t.Fatalf("read without a replica: %#v", err)
	}
	// The partition is unknown there.
	if _, err := f.Read(ctx(t), core.Route{Addr: to.Addr, Topic: "nope", Hops: 1}, core.ReadRequest{}); !errors.Is(err, core.ErrPartitionNotFound) {
		t.Fatalf("unknown partition: %#v", err)
	}
}

// TestUnreachable: a node that cannot be dialled means not applied.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f := NewForwarder(ForwarderConfig{DialTimeout: 200 * time.Millisecond})
	_, err = f.Append(ctx(t), core.Route{Addr: addr, Topic: "orders", Hops: 1}, &core.AppendBatch{})
	if !errors.Is(err, core.ErrNotLeader) || !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
}

// TestHandlerPaths: unknown calls are 404 not_found; the secret, hops and
// deadline travel with every call.
func TestHandlerPaths(t *testing.T) {
	_, to, _ := newNode(t)
	cl := &fasthttp.Client{}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v1/internal/nope"},
		{"GET", "/v1/internal/"},
		{"GET", "/v1/internal/append?topic=orders&partition=0"}, // append is POST
		{"POST", "/v1/internal/read/more?topic=orders&partition=0"},
	} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.Header.SetMethod(tc.method)
		req.SetRequestURI("http://" + to.Addr + tc.path)
		if err := cl.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		if s, code := apierr.Status(apierr.Decode(resp.StatusCode(), resp.Body())); s != 404 || code != "not_found" {
			t.Errorf("%s %s: %d %s %s", tc.method, tc.path, s, code, resp.Body())
		}
	}

	var got fasthttp.RequestHeader
	var mu sync.Mutex
	addr := serve(t, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		ctx.Request.Header.CopyTo(&got)
		mu.Unlock()
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{}`)
	})
	f := NewForwarder(ForwarderConfig{Secret: "s3cret"})
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.TrimTo(c, core.Route{Addr: addr, Topic: "orders", Hops: 2}, 1); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if v := string(got.Peek(auth.NodeSecretHeader)); v != "s3cret" {
		t.Errorf("secret %q", v)
	}
	if v := string(got.Peek(HopsHeader)); v != "2" {
		t.Errorf("hops %q", v)
	}
	if ms, err := strconv.Atoi(string(got.Peek(deadlineHeader))); err != nil || ms <= 0 || ms > 5000 {
		t.Errorf("deadline %q ms", got.Peek(deadlineHeader))
	}
}

// TestCloseEndsCalls: Close ends calls still running on the handler.
func TestCloseEndsCalls(t *testing.T) {
	c := &fakeCluster{hosts: true, log: &fakeLog{state: map[string][]byte{}}}
	h, err := NewHandler(HandlerConfig{Cluster: c})
	if err != nil {
		t.Fatal(err)
	}
	rctx := &fasthttp.RequestCtx{}
	cctx, cancel := h.callContext(rctx)
	defer cancel()
	h.Close()
	h.Close() // idempotent
	select {
	case <-cctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a call's context outlived Close")
	}
}
