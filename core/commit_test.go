package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// gateLog is a PartitionLog fake for the committer: it assigns offsets,
// keeps every appended batch, holds the first append until release is
// closed, and fails the appends whose number (from 1) is in fail. Only
// Append is implemented.
type gateLog struct {
	PartitionLog
	entered chan struct{} // closed when the first append arrives
	release chan struct{}
	fail    map[int]bool

	mu      sync.Mutex
	calls   int
	next    int64
	batches []AppendBatch
	values  map[int64]string
}

func newGateLog(fail ...int) *gateLog {
	l := &gateLog{entered: make(chan struct{}), release: make(chan struct{}), fail: map[int]bool{}, values: map[int64]string{}}
	for _, n := range fail {
		l.fail[n] = true
	}
	return l
}

func (l *gateLog) Append(ctx context.Context, b *AppendBatch) (AppendResult, error) {
	l.mu.Lock()
	l.calls++
	n := l.calls
	l.mu.Unlock()
	if n == 1 {
		close(l.entered)
		<-l.release
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail[n] {
		return AppendResult{}, fmt.Errorf("%w: injected failure of append %d", ErrUnavailable, n)
	}
	b.Stamp()
	l.batches = append(l.batches, AppendBatch{Timestamp: b.Timestamp, Records: append([]Record(nil), b.Records...)})
	base := l.next
	for i := range b.Records {
		l.values[base+int64(i)] = string(b.Records[i].Value)
	}
	l.next += int64(len(b.Records))
	return AppendResult{BaseOffset: base}, nil
}

// waiting is how many appends wait for a slot of the partition.
func (c *committer) waiting(topic string, p int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.queues[partitionKey{topic, p}]; q != nil {
		return len(q.waiting)
	}
	return 0
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type appendOutcome struct {
	value string
	res   AppendResult
	err   error
}

// queueBehindFirst appends "first" (held by the log), then n more appends
// of 1, 2, 3, 1, … records ("v<i>.<j>"), each with its own timestamp, and
// waits until all n wait for the slot, in that order. It returns the first's and the others'
// outcomes, delivered once the log is released.
func queueBehindFirst(t *testing.T, c *committer, l *gateLog, n int) (<-chan appendOutcome, <-chan appendOutcome) {
	t.Helper()
	first := make(chan appendOutcome, 1)
	go func() {
		res, err := c.append(context.Background(), l, "t", 0, &AppendBatch{Timestamp: 1, Records: []Record{{Value: []byte("first")}}})
		first <- appendOutcome{"first", res, err}
	}()
	<-l.entered
	out := make(chan appendOutcome, n)
	for i := range n {
		var recs []Record
		for j := range i%3 + 1 {
			recs = append(recs, Record{Value: fmt.Appendf(nil, "v%d.%d", i, j)})
		}
		go func() {
			res, err := c.append(context.Background(), l, "t", 0, &AppendBatch{Timestamp: int64(100 + i), Records: recs})
			out <- appendOutcome{fmt.Sprintf("v%d.0", i), res, err}
		}()
		// One at a time, so that they wait in this order.
		waitFor(t, fmt.Sprintf("%d appends waiting", i+1), func() bool { return c.waiting("t", 0) == i+1 })
	}
	return first, out
}

// Appends that arrive while the partition's proposal is busy go together
// into the next one, and each gets the offsets of its own records.
func TestCommitterMergesWaitingAppends(t *testing.T) {
	t.Parallel()
	c := newCommitter(1, 10000, nil)
	l := newGateLog()
	const n = 20
	first, out := queueBehindFirst(t, c, l, n)
	close(l.release)
	if o := <-first; o.err != nil || o.res.BaseOffset != 0 {
		t.Fatalf("first append: %+v", o)
	}
	seen := map[int64]string{}
	for range n {
		o := <-out
		if o.err != nil {
			t.Fatalf("append %s: %v", o.value, o.err)
		}
		if got := l.values[o.res.BaseOffset]; got != o.value {
			t.Fatalf("append %s answered offset %d, which holds %q", o.value, o.res.BaseOffset, got)
		}
		if prev, dup := seen[o.res.BaseOffset]; dup {
			t.Fatalf("appends %s and %s both answered offset %d", prev, o.value, o.res.BaseOffset)
		}
		seen[o.res.BaseOffset] = o.value
	}
	if len(l.batches) != 2 {
		t.Fatalf("%d proposals, want 2 (the first, then the %d waiting appends merged)", len(l.batches), n)
	}
	// Every record kept its own append's timestamp; the merged batch
	// carries the latest.
	merged := l.batches[1]
	if merged.Timestamp != 100+n-1 {
		t.Fatalf("merged batch timestamp %d, want %d", merged.Timestamp, 100+n-1)
	}
	for _, r := range merged.Records {
		var i, j int
		if _, err := fmt.Sscanf(string(r.Value), "v%d.%d", &i, &j); err != nil {
			t.Fatal(err)
		}
		if r.Timestamp != int64(100+i) {
			t.Fatalf("record %s has timestamp %d, want %d", r.Value, r.Timestamp, 100+i)
		}
	}
}

// A failed merged proposal fails every append in it, and none of their
// records is written.
func TestCommitterFailedProposalFailsEachAppend(t *testing.T) {
	t.Parallel()
	c := newCommitter(1, 10000, nil)
	l := newGateLog(2)
	const n = 8
	first, out := queueBehindFirst(t, c, l, n)
	close(l.release)
	if o := <-first; o.err != nil {
		t.Fatalf("first append: %v", o.err)
	}
	for range n {
		if o := <-out; !errors.Is(o.err, ErrUnavailable) {
			t.Fatalf("append %s: %+v, want ErrUnavailable", o.value, o)
		}
	}
	if l.next != 1 {
		t.Fatalf("%d records written, want only the first", l.next)
	}
	// The partition takes appends again.
	res, err := c.append(context.Background(), l, "t", 0, &AppendBatch{Records: []Record{{Value: []byte("after")}}})
	if err != nil || l.values[res.BaseOffset] != "after" {
		t.Fatalf("append after the failure: %+v %v", res, err)
	}
}

// An append whose context ends while it waits for a slot is answered at
// once, and its records are left out of the next proposal.
func TestCommitterCancelWhileWaiting(t *testing.T) {
	t.Parallel()
	c := newCommitter(1, 10000, nil)
	l := newGateLog()
	first, out := queueBehindFirst(t, c, l, 2)
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		_, err := c.append(ctx, l, "t", 0, &AppendBatch{Records: []Record{{Value: []byte("cancelled")}}})
		gone <- err
	}()
	waitFor(t, "3 appends waiting", func() bool { return c.waiting("t", 0) == 3 })
	cancel()
	if err := <-gone; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cancelled append: %v, want ErrUnavailable", err)
	}
	close(l.release)
	<-first
	for range 2 {
		if o := <-out; o.err != nil {
			t.Fatal(o.err)
		}
	}
	for off, v := range l.values {
		if v == "cancelled" {
			t.Fatalf("the cancelled append's record was written at %d", off)
		}
	}
}

// Idempotent appends never wait for a slot nor share a proposal: the
// partition checks a producer's sequence per entry.
func TestCommitterIdempotentAppendsAlone(t *testing.T) {
	t.Parallel()
	c := newCommitter(1, 10000, nil)
	l := newGateLog()
	first, _ := queueBehindFirst(t, c, l, 0)
	res, err := c.append(context.Background(), l, "t", 0, &AppendBatch{ProducerID: "p", Sequence: 0, Records: []Record{{Value: []byte("idem")}}})
	if err != nil || l.values[res.BaseOffset] != "idem" {
		t.Fatalf("idempotent append while the partition is busy: %+v %v", res, err)
	}
	close(l.release)
	<-first
}

// A merged proposal stops at the record limit; the rest go into the
// following one.
func TestCommitterMergeBoundedByRecords(t *testing.T) {
	t.Parallel()
	c := newCommitter(1, 4, nil) // appends of 1, 2, 3, 1, 2, 3 records
	l := newGateLog()
	first, out := queueBehindFirst(t, c, l, 6)
	close(l.release)
	<-first
	for range 6 {
		if o := <-out; o.err != nil {
			t.Fatal(o.err)
		}
	}
	var sizes []int
	for _, b := range l.batches {
		sizes = append(sizes, len(b.Records))
	}
	// 1 | 1+2 | 3+1 | 2 | 3: at most 4 records each, in arrival order.
	if fmt.Sprint(sizes) != "[1 3 4 2 3]" {
		t.Fatalf("proposal sizes %v, want [1 3 4 2 3]", sizes)
	}
}

// A produce above groupCommitMaxProduce is proposed at once, beside the
// busy proposal, not merged.
func TestCommitterLargeAppendAlone(t *testing.T) {
	t.Parallel()
	c := newCommitter(1, 10000, nil)
	l := newGateLog()
	first, _ := queueBehindFirst(t, c, l, 0)
	big := &AppendBatch{Records: []Record{{Value: make([]byte, groupCommitMaxProduce+1)}}}
	if _, err := c.append(context.Background(), l, "t", 0, big); err != nil {
		t.Fatalf("large append while the partition is busy: %v", err)
	}
	close(l.release)
	<-first
}
