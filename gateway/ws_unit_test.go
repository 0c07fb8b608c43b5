package gateway

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
)

func TestChunkSlices(t *testing.T) {
	recs := []core.Record{
		{Offset: 10, Timestamp: 1, Value: []byte("a")},
		{Offset: 11, Timestamp: 2, Key: []byte("k"), Value: []byte("b\"")},
		{Offset: 12, Timestamp: 3, Value: []byte("c")},
		{Offset: 14, Timestamp: 4, Value: []byte("after a gap")},
	}
	c := encodeChunk(9, recs, feedKey{topic: "t", partition: 2})
	if c.base != 10 || c.end() != 13 {
		t.Fatalf("chunk [%d, %d), want [10, 13): stops at the gap", c.base, c.end())
	}
	for _, tc := range []struct {
		off       int64
		max, n    int
		next      int64
		firstWant int64
	}{
		{9, 10, 3, 13, 10}, // below base (no record at 9): from the first
		{10, 10, 3, 13, 10},
		{11, 1, 1, 12, 11},
		{12, 5, 1, 13, 12},
	} {
		body, n, next := c.slice(tc.off, tc.max)
		var got []struct {
			Topic     string  `json:"topic"`
			Partition int     `json:"partition"`
			Offset    int64   `json:"offset"`
			Key       *string `json:"key"`
			Value     string  `json:"value"`
		}
		if err := json.Unmarshal([]byte("["+string(body)+"]"), &got); err != nil {
			t.Fatalf("slice(%d, %d) = %s: %v", tc.off, tc.max, body, err)
		}
		if n != tc.n || next != tc.next || len(got) != n || got[0].Offset != tc.firstWant || got[0].Topic != "t" || got[0].Partition != 2 {
			t.Fatalf("slice(%d, %d): %d records %+v, next %d", tc.off, tc.max, n, got, next)
		}
	}
}

func TestCreditGateNeverOvergrants(t *testing.T) {
	g := newCreditGate(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var taken atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ { // eight partition readers share the credit
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := g.take(ctx, 7)
				if err != nil {
					return
				}
				use := max(1, n/2) // use some, give the rest back
				g.giveBack(n - use)
				if taken.Add(int64(use)) > 1000 {
					t.Errorf("took %d records with 1000 credits", taken.Load())
				}
			}
		}()
	}
	for i := 0; i < 100; i++ {
		g.add(10)
	}
	for taken.Load() < 1000 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	if taken.Load() != 1000 {
		t.Fatalf("took %d records with 1000 credits", taken.Load())
	}
}

func TestSendQueueBounds(t *testing.T) {
	var started atomic.Int32
	q := newSendQueue(100, func() { started.Add(1) })
	var paused atomic.Int64
	ctx := context.Background()
	frame := func(n int) outFrame { return outFrame{head: make([]byte, n)} }
	if err := q.push(ctx, frame(60), &paused); err != nil {
		t.Fatal(err)
	}
	if err := q.push(ctx, frame(40), &paused); err != nil {
		t.Fatal(err)
	}
	if started.Load() != 1 {
		t.Fatalf("writer started %d times", started.Load())
	}
	done := make(chan error, 1)
	go func() { done <- q.push(ctx, frame(10), &paused) }()
	for paused.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	if q.queued() != 100 {
		t.Fatalf("queued %d", q.queued())
	}
	fs := q.next()
	if len(fs) != 2 {
		t.Fatalf("next: %d frames", len(fs))
	}
	q.done(fs[0].size())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if paused.Load() != 0 || q.queued() != 50 {
		t.Fatalf("paused %d, queued %d", paused.Load(), q.queued())
	}
	// A frame larger than the limit goes alone into an empty queue.
	q.done(fs[1].size())
	if fs := q.next(); len(fs) != 1 {
		t.Fatalf("next: %d frames", len(fs))
	}
	q.done(10)
	if fs := q.next(); len(fs) != 0 {
		t.Fatal("frames after draining")
	}
	if err := q.push(ctx, frame(500), &paused); err != nil {
		t.Fatal(err)
	}
	if started.Load() != 2 {
		t.Fatalf("writer started %d times, want a new one after the queue drained", started.Load())
	}
	q.close()
	if err := q.push(ctx, frame(1), nil); err != errConnClosed {
		t.Fatalf("push after close: %v", err)
	}
}

func TestOriginAllowed(t *testing.T) {
	h := &wsHub{allowed: map[string]bool{"https://app.example.com": true}}
	for _, tc := range []struct {
		origin, host string
		ok           bool
	}{
		{"", "weir:8080", true},
		{"http://weir:8080", "weir:8080", true},
		{"http://WEIR:8080", "weir:8080", true},
		{"http://weir:8081", "weir:8080", false},
		{"https://app.example.com", "weir:8080", true},
		{"https://app.example.com/", "weir:8080", true},
		{"https://evil.example.com", "weir:8080", false},
		{"null", "weir:8080", false},
	} {
		if got := h.originAllowed(tc.origin, tc.host); got != tc.ok {
			t.Errorf("originAllowed(%q, %q) = %v", tc.origin, tc.host, got)
		}
	}
	all := &wsHub{allowAll: true}
	if !all.originAllowed("https://anything.example", "weir") {
		t.Error("* refused an origin")
	}
}
