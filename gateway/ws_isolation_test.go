package gateway

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// fakeStore serves one topic of fixed partition logs. Methods the gateway
// must not call here are left to the embedded nil interface (they panic).
type fakeStore struct {
	core.Store
	topic string
	logs  []*fakeLog
}

func (s *fakeStore) Topic(name string) (core.TopicInfo, error) {
	if name != s.topic {
		return core.TopicInfo{}, core.ErrTopicNotFound
	}
	return core.TopicInfo{TopicConfig: core.TopicConfig{Name: name, Partitions: len(s.logs)}}, nil
}

func (s *fakeStore) Partition(topic string, p int) (core.PartitionLog, error) {
	if topic != s.topic {
		return nil, core.ErrTopicNotFound
	}
	if p < 0 || p >= len(s.logs) {
		return nil, core.ErrPartitionNotFound
	}
	return s.logs[p], nil
}

// fakeLog is a fixed log of n records of value size bytes. A read at
// blockAt (when >= 0) announces itself on entered and waits for release
// (or its context): a remote replica that answers slowly.
type fakeLog struct {
	core.PartitionLog
	n       int64
	value   []byte
	blockAt int64
	entered chan struct{} // receives one value per blocked read that started
	release chan struct{} // closed to let blocked reads finish
	changed chan struct{} // never closed: the log does not grow

	mu    sync.Mutex
	reads map[int64]int // reads per offset
}

func newFakeLog(n int64, size int, blockAt int64) *fakeLog {
	value := make([]byte, size)
	for i := range value {
		value[i] = 'v'
	}
	return &fakeLog{n: n, value: value, blockAt: blockAt,
		entered: make(chan struct{}, 16), release: make(chan struct{}), changed: make(chan struct{}), reads: map[int64]int{}}
}

func (l *fakeLog) Read(ctx context.Context, from int64, maxRecords, maxBytes int) ([]core.Record, error) {
	l.mu.Lock()
	l.reads[from]++
	l.mu.Unlock()
	if from == l.blockAt {
		l.entered <- struct{}{}
		select {
		case <-l.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if from < 0 || from > l.n {
		return nil, &core.OffsetRangeError{Offset: from, LogStart: 0, HighWatermark: l.n}
	}
	var recs []core.Record
	bytes := 0
	for off := from; off < l.n && len(recs) < maxRecords && (len(recs) == 0 || bytes+len(l.value) <= maxBytes); off++ {
		recs = append(recs, core.Record{Offset: off, Timestamp: off, Value: l.value})
		bytes += len(l.value)
	}
	return recs, nil
}

func (l *fakeLog) readsAt(off int64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reads[off]
}

func (l *fakeLog) Changed() <-chan struct{} { return l.changed }
func (l *fakeLog) HighWatermark() int64     { return l.n }
func (l *fakeLog) LogStart() int64          { return 0 }
func (l *fakeLog) OffsetForTime(ctx context.Context, ts int64) (int64, error) {
	return min(max(ts, 0), l.n), nil
}

// startFakeGateway serves a gateway over store on a loopback port and
// returns the /v1/ws URL.
func startFakeGateway(t *testing.T, store core.Store, ws WSConfig) (*Server, string) {
	t.Helper()
	s := newTestServer(t, store, Config{WebSocket: ws})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: s.Handler()}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx) // ends every socket (and any read still blocked)
		ln.Close()
		<-served
	})
	return s, "ws://" + ln.Addr().String() + "/v1/ws"
}

func dialWS(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wsRecv reads frames until one satisfies ok; it fails the test at the
// deadline.
func wsRecv(t *testing.T, c *websocket.Conn, deadline time.Time, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	c.SetReadDeadline(deadline)
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for a frame: %v", err)
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		if f["op"] == "error" {
			t.Fatalf("error frame: %s", b)
		}
		if ok(f) {
			return f
		}
	}
}

// recordsUpTo reads records frames of sub until the record at last
// arrived, checking that offsets run on from first without a gap.
func recordsUpTo(t *testing.T, c *websocket.Conn, deadline time.Time, sub string, first, last int64) {
	t.Helper()
	next := first
	for next <= last {
		f := wsRecv(t, c, deadline, func(f map[string]any) bool { return f["op"] == "records" && f["sub"] == sub })
		for _, r := range f["records"].([]any) {
			off := int64(r.(map[string]any)["offset"].(float64))
			if off != next {
				t.Fatalf("sub %s: offset %d, want %d", sub, off, next)
			}
			next++
		}
	}
}

// TestWSStalledSubscriberAndSlowReadIsolation: one subscriber that never
// reads its socket (its pump waits for room in a full send buffer) and a
// partition read that does not return (a remote replica that hangs) must
// not delay another subscriber of the same partition's feed. The slow read
// is held open by a fence until the healthy subscriber got its records, so
// nothing here depends on timing: the deadline only bounds a failure.
// Two subscriptions wanting the slow offset share one read.
//
// Against the old code (feed.get held the feed's write lock across
// log.Read) this test fails: the healthy subscriber's read waits for the
// lock until the deadline (verified by running it on commit 2d79e94).
func TestWSStalledSubscriberAndSlowReadIsolation(t *testing.T) {
	t.Parallel()
	const n = 10
	slow := newFakeLog(n, 8, 5)        // partition 0: a read at offset 5 hangs
	big := newFakeLog(400, 64<<10, -1) // partition 1: 25 MiB, more than any socket buffers
	store := &fakeStore{topic: "t", logs: []*fakeLog{slow, big}}
	gw, url := startFakeGateway(t, store, WSConfig{SendBufferBytes: 64 << 10})
	deadline := time.Now().Add(15 * time.Second)

	// The stalled subscriber: subscribes to the big partition with
	// unlimited credit and never reads again. Its pump ends up waiting for
	// room in the connection's send buffer (WSStats.Paused).
	stalled := dialWS(t, url)
	if err := stalled.WriteJSON(map[string]any{"op": "subscribe", "id": "st", "topic": "t", "partition": 1, "from": "earliest", "credit": unlimitedCredit}); err != nil {
		t.Fatal(err)
	}
	for gw.WSStats().Paused < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled subscriber never filled its send buffer: %+v", gw.WSStats())
		}
		time.Sleep(5 * time.Millisecond) // polling a fence, with a deadline
	}

	// Two subscriptions at the slow offset: the first read hangs in Read.
	waiting := dialWS(t, url)
	for _, id := range []string{"w1", "w2"} {
		if err := waiting.WriteJSON(map[string]any{"op": "subscribe", "id": id, "topic": "t", "partition": 0, "from": 5}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-slow.entered:
	case <-time.After(time.Until(deadline)):
		t.Fatal("the slow read never started")
	}

	// The healthy subscriber reads the same partition from the start,
	// while the slow read is still in flight.
	healthy := dialWS(t, url)
	if err := healthy.WriteJSON(map[string]any{"op": "subscribe", "id": "h", "topic": "t", "partition": 0, "from": "earliest"}); err != nil {
		t.Fatal(err)
	}
	wsRecv(t, healthy, deadline, func(f map[string]any) bool { return f["op"] == "subscribed" })
	recordsUpTo(t, healthy, deadline, "h", 0, n-1)

	select {
	case <-slow.entered:
		t.Fatal("a second read at the slow offset started: reads of one offset are shared")
	default:
	}
	close(slow.release)
	got := map[string]bool{}
	for len(got) < 2 {
		f := wsRecv(t, waiting, deadline, func(f map[string]any) bool { return f["op"] == "records" })
		recs := f["records"].([]any)
		if first := int64(recs[0].(map[string]any)["offset"].(float64)); first != 5 {
			t.Fatalf("sub %v starts at %d, want 5", f["sub"], first)
		}
		got[f["sub"].(string)] = true
	}
	// Both waited for the one read at offset 5 (a subscriber arriving after
	// it finished would find its chunk cached and not read either).
	if r := slow.readsAt(5); r != 1 {
		t.Fatalf("%d reads at offset 5, want 1 shared read", r)
	}
}
