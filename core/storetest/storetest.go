// Package storetest is the conformance suite of core.Store: the semantics
// the domain relies on, checked against any implementation. raftlog's store
// (raftlog/conformance_test.go) and core/memstore
// (core/memstore/memstore_test.go) both pass it; where they would differ,
// the suite decides.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) core.Store { return memstore.New(memstore.Config{SegmentBytes: 4 << 10}) })
//	}
//
// open may return a new store for each call or the same one: every topic,
// group and catalog table the suite uses is named after the subtest. The
// store's segments must roll at MaxSegmentBytes or less, so that retention
// can be checked on several segments. Subtests run one after another (a
// store over Raft is slow to start several of at once on a small machine).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
)

// MaxSegmentBytes is the largest segment size a store under test may
// roll at.
const MaxSegmentBytes = 64 << 10

// Timeout bounds each subtest's calls.
const Timeout = 30 * time.Second

// Run runs the suite against the stores open returns.
func Run(t *testing.T, open func(t *testing.T) core.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st core.Store)
	}{
		{"topics", testTopics},
		{"bad-topics", testBadTopics},
		{"add-partitions", testAddPartitions},
		{"append-offsets", testAppendOffsets},
		{"idempotent-producer", testIdempotent},
		{"read-limits", testReadLimits},
		{"read-range", testReadRange},
		{"offset-for-time", testOffsetForTime},
		{"changed", testChanged},
		{"segments-and-trim", testSegmentsAndTrim},
		{"retention-by-bytes", testRetentionByBytes},
		{"txn-conditions", testTxnConditions},
		{"txn-records", testTxnRecords},
		{"state-scan", testStateScan},
		{"propose-txn", testProposeTxn},
		{"catalog", testCatalog},
		{"catalog-changed", testCatalogChanged},
		{"group-offsets", testGroupOffsets},
		{"deleted-topic", testDeletedTopic},
		{"concurrent-appends", testConcurrentAppends},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// name is a topic, group or table name unique to the subtest.
func name(t *testing.T, suffix string) string {
	n := unsafeName.ReplaceAllString(t.Name(), "-")
	if suffix != "" {
		n += "." + suffix
	}
	return strings.ToLower(n)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// create makes a topic of n partitions, replication factor 1, no retention.
func create(t *testing.T, st core.Store, suffix string, n int) string {
	t.Helper()
	topic := name(t, suffix)
	if _, err := st.CreateTopic(ctxFor(t), core.TopicConfig{Name: topic, Partitions: n, ReplicationFactor: 1, RetentionMs: -1, RetentionBytes: -1}); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	return topic
}

func partition(t *testing.T, st core.Store, topic string, p int) core.PartitionLog {
	t.Helper()
	pl, err := st.Partition(topic, p)
	if err != nil {
		t.Fatalf("partition %s/%d: %v", topic, p, err)
	}
	return pl
}

// recs makes records with the values given, no key.
func recs(vals ...string) []core.Record {
	out := make([]core.Record, len(vals))
	for i, v := range vals {
		out[i] = core.Record{Value: []byte(v)}
	}
	return out
}

func appendOK(t *testing.T, pl core.PartitionLog, b *core.AppendBatch) core.AppendResult {
	t.Helper()
	if b.Timestamp == 0 {
		b.Timestamp = 1000
	}
	res, err := pl.Append(ctxFor(t), b)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return res
}

func readAll(t *testing.T, pl core.PartitionLog, from int64) []core.Record {
	t.Helper()
	var out []core.Record
	for from < pl.HighWatermark() {
		rs, err := pl.Read(ctxFor(t), from, 1000, 0)
		if err != nil {
			t.Fatalf("read from %d: %v", from, err)
		}
		if len(rs) == 0 {
			t.Fatalf("read from %d below the high watermark %d returned nothing", from, pl.HighWatermark())
		}
		checkContiguous(t, rs, from)
		out = append(out, rs...)
		from = rs[len(rs)-1].Offset + 1
	}
	return out
}

func values(rs []core.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.Value)
	}
	return out
}

func checkContiguous(t *testing.T, rs []core.Record, from int64) {
	t.Helper()
	for i, r := range rs {
		if r.Offset != from+int64(i) {
			t.Fatalf("record %d of a read from %d has offset %d", i, from, r.Offset)
		}
	}
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want %v", what, err, target)
	}
}

// closed waits for c to be closed, up to Timeout.
func closed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(Timeout):
		t.Fatalf("%s: channel not closed within %v", what, Timeout)
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func eqSlice(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}
