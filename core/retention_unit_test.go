package core_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// fill appends batches of about 500 bytes stamped ts to l until it has n
// segments (segments of 1 KiB roll every two batches or so).
func fill(t *testing.T, e *env, l *memstore.Partition, n int, ts int64) {
	t.Helper()
	pad := strings.Repeat("r", 500)
	for i := 0; len(l.Segments()) < n; i++ {
		if i > 100*n {
			t.Fatalf("%d appends made %d segments", i, len(l.Segments()))
		}
		if _, err := l.Append(e.ctx, &core.AppendBatch{Timestamp: ts, Records: []core.Record{{Value: []byte(pad)}}}); err != nil {
			t.Fatal(err)
		}
	}
}

func retentionTopic(t *testing.T, e *env, name string, partitions int, ms, bytes int64) {
	t.Helper()
	if _, err := e.broker.CreateTopic(e.ctx, core.TopicConfig{Name: name, Partitions: partitions, RetentionMs: ms, RetentionBytes: bytes}); err != nil {
		t.Fatal(err)
	}
}

// Retention by time deletes the whole sealed segments whose newest record
// is older than retention_ms, from the oldest on, stopping at the first one
// that holds a newer record; only the partition's leader decides.
func TestRetentionByTime(t *testing.T) {
	e := newEnv(t, memstore.Config{SegmentBytes: 1 << 10})
	retentionTopic(t, e, "r", 2, 60_000, -1)
	now := time.UnixMilli(1_700_000_000_000)
	old, recent := now.Add(-10*time.Minute).UnixMilli(), now.Add(-time.Second).UnixMilli()
	logs := []*memstore.Partition{e.log(t, "r", 0), e.log(t, "r", 1)}
	var oldSegs []core.SegmentInfo
	for _, l := range logs {
		fill(t, e, l, 3, old) // segments 0 and 1 old, the active one started old
		oldSegs = l.Segments()
		fill(t, e, l, 5, recent) // segment 2 gets recent records too
	}
	logs[1].SetLeader(false)
	e.broker.EnforceRetention(e.ctx, now)
	want := oldSegs[1].NextOffset
	if got := logs[0].Trims(); len(got) != 1 || got[0] != want {
		t.Fatalf("trims %v, want [%d]: the end of the last wholly expired segment", got, want)
	}
	if logs[0].LogStart() != want {
		t.Fatalf("log start %d, want %d", logs[0].LogStart(), want)
	}
	if got := logs[1].Trims(); len(got) != 0 {
		t.Fatalf("a follower's partition was trimmed: %v", got)
	}
	e.broker.EnforceRetention(e.ctx, now) // nothing more is expired
	if got := logs[0].Trims(); len(got) != 1 {
		t.Fatalf("a second pass trimmed again: %v", got)
	}
	// Once the recent records are old too, everything but the active
	// segment goes.
	e.broker.EnforceRetention(e.ctx, now.Add(time.Hour))
	segs := logs[0].Segments()
	if len(segs) != 1 || logs[0].LogStart() != segs[0].BaseOffset {
		t.Fatalf("after everything expired: %+v", segs)
	}
}

// Retention by size deletes the oldest sealed segments while the
// partition holds more than retention_bytes, and no more.
func TestRetentionByBytes(t *testing.T) {
	e := newEnv(t, memstore.Config{SegmentBytes: 1 << 10})
	const limit = 3 << 10
	retentionTopic(t, e, "r", 1, -1, limit)
	l := e.log(t, "r", 0)
	fill(t, e, l, 8, time.Now().UnixMilli())
	before := l.Segments()
	e.broker.EnforceRetention(e.ctx, time.Now())
	trims := l.Trims()
	if len(trims) != 1 {
		t.Fatalf("trims %v, want one", trims)
	}
	var kept, lastDeleted int64
	for _, s := range before {
		if s.BaseOffset >= trims[0] {
			kept += s.Bytes
		} else {
			lastDeleted = s.Bytes
		}
	}
	if kept > limit || kept+lastDeleted <= limit || l.LogStart() != trims[0] {
		t.Fatalf("kept %d bytes (limit %d; with the last deleted segment %d), log start %d, trim %d", kept, limit, kept+lastDeleted, l.LogStart(), trims[0])
	}
}

// RunRetention applies retention on its own, every RetentionInterval.
func TestRunRetention(t *testing.T) {
	st := memstore.New(memstore.Config{SegmentBytes: 1 << 10})
	ctx, cancel := context.WithCancel(context.Background())
	b := must[*core.Broker](t)(core.NewBroker(st, core.BrokerConfig{RetentionInterval: 5 * time.Millisecond}))
	e := &env{st: st, broker: b, ctx: ctx}
	retentionTopic(t, e, "r", 1, 1000, -1)
	l := e.log(t, "r", 0)
	fill(t, e, l, 3, 1) // records from 1970: expired
	done := make(chan struct{})
	go func() { defer close(done); b.RunRetention(ctx) }()
	defer func() { cancel(); <-done }()
	tu.Eventually(t, fence, "a retention pass", func() bool { return len(l.Trims()) > 0 })
	if segs := l.Segments(); len(segs) != 1 || l.LogStart() != segs[0].BaseOffset {
		t.Fatalf("after retention: %+v", segs)
	}
}
