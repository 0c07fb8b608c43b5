package history

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// newRecorder returns a recorder on a fake clock that ticks once per event,
// so the order of calls in a test is the real-time order of its history.
func newRecorder() *Recorder {
	var now time.Duration
	return NewRecorder(func() time.Duration { now++; return now })
}

func tp(id int32) Partition { return Partition{Topic: "t", ID: id} }

func rec(p int32, off int64, v string) Record { return Record{Partition: tp(p), Offset: off, Value: v} }

func produceOp(process, v string, p int32) Op {
	return Op{Kind: Produce, Process: process, Partition: tp(p), Key: "k", Value: v}
}

func produce(r *Recorder, process, v string, p int32, off int64) {
	r.Invoke(produceOp(process, v, p)).OK(rec(p, off, ""))
}

func poll(r *Recorder, consumer string, gen int64, recs ...Record) {
	r.Invoke(Op{Kind: Poll, Process: consumer, Group: "g", Generation: gen}).OK(recs...)
}

func fetch(r *Recorder, consumer string, p int32, from int64, recs ...Record) {
	r.Invoke(Op{Kind: Fetch, Process: consumer, Partition: tp(p), Offset: from}).OK(recs...)
}

func commit(r *Recorder, p int32, off int64) {
	r.Invoke(Op{Kind: Commit, Process: "c1", Group: "g", Partition: tp(p), Offset: off}).OK()
}

func job(off int64) Record {
	return Record{Partition: Partition{Topic: "jobs"}, Offset: off, Value: "j" + string(rune('0'+off))}
}

func receive(r *Recorder, msgs ...Record) {
	r.Invoke(Op{Kind: QueueReceive, Process: "w1", Partition: Partition{Topic: "jobs"}}).OK(msgs...)
}

func settle(r *Recorder, kind Kind, msgs ...Record) {
	r.Invoke(Op{Kind: kind, Process: "w1", Records: msgs}).OK()
}

// clean records a history with no anomaly, drained: concurrent produces,
// a failed and an unknown produce, a rebalance, commits, a queue nack and
// redelivery, and an exact pipeline.
func clean(r *Recorder) {
	produce(r, "p1", "a", 0, 0)
	produce(r, "p2", "b", 1, 0)
	c, d := r.Invoke(produceOp("p1", "c", 0)), r.Invoke(produceOp("p2", "d", 0))
	d.OK(rec(0, 1, ""))
	c.OK(rec(0, 2, ""))
	r.Invoke(produceOp("p1", "e", 0)).Fail(errors.New("not leader"))
	r.Invoke(produceOp("p2", "f", 1)).Info(errors.New("timeout"))
	produce(r, "p1", "g", 1, 2)
	poll(r, "c1", 1, rec(0, 0, "a"), rec(1, 0, "b"))
	commit(r, 0, 1)
	commit(r, 1, 1)
	poll(r, "c1", 2, rec(0, 1, "d"))
	poll(r, "c1", 2, rec(0, 2, "c"), rec(1, 1, "f"))
	fetch(r, "c2", 1, 1, rec(1, 1, "f"), rec(1, 2, "g"))
	fetch(r, "c2", 1, 3)
	commit(r, 0, 3)
	commit(r, 1, 2)
	receive(r, job(7), job(8))
	settle(r, QueueAck, job(7))
	settle(r, QueueNack, job(8))
	receive(r, job(8))
	settle(r, QueueAck, job(8))
	r.Invoke(Op{Kind: PipelineCount, Pipeline: "count", Inputs: 5, Outputs: 5}).OK()
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		drained bool
		build   func(r *Recorder)
		want    map[Class]int
	}{
		{name: "clean", drained: true, build: clean},
		{name: "inconsistent offsets", build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 0)
			produce(r, "p2", "b", 0, 0)
		}, want: map[Class]int{InconsistentOffsets: 1}},
		{name: "duplicate", build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 0)
			poll(r, "c1", 1, rec(0, 0, "a"), rec(0, 1, "a"))
		}, want: map[Class]int{Duplicate: 1}},
		{name: "lost write below highest read", build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 0)
			produce(r, "p1", "b", 0, 1)
			produce(r, "p1", "c", 0, 2)
			poll(r, "c1", 1, rec(0, 0, "a"))
			fetch(r, "c2", 0, 2, rec(0, 2, "c"))
		}, want: map[Class]int{LostWrite: 1}},
		{name: "unread write above highest read, no drain", build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 0)
			poll(r, "c1", 1, rec(0, 0, "a"))
			produce(r, "p1", "b", 0, 1)
		}},
		{name: "unread write after drain", drained: true, build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 0)
			poll(r, "c1", 1, rec(0, 0, "a"))
			produce(r, "p1", "b", 0, 1)
		}, want: map[Class]int{LostWrite: 1}},
		{name: "failed then read", build: func(r *Recorder) {
			r.Invoke(produceOp("p1", "a", 0)).Fail(errors.New("not enough replicas"))
			poll(r, "c1", 1, rec(0, 0, "a"))
		}, want: map[Class]int{FailedThenRead: 1}},
		{name: "poll skip", build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 0)
			produce(r, "p1", "b", 0, 1)
			produce(r, "p1", "c", 0, 2)
			poll(r, "c1", 1, rec(0, 0, "a"))
			poll(r, "c1", 1, rec(0, 2, "c"))
			fetch(r, "c2", 0, 1, rec(0, 1, "b"))
		}, want: map[Class]int{PollSkip: 1}},
		{name: "skip inside one fetch", build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 0)
			produce(r, "p1", "b", 0, 1)
			produce(r, "p1", "c", 0, 2)
			fetch(r, "c1", 0, 0, rec(0, 0, "a"), rec(0, 2, "c"))
			fetch(r, "c2", 0, 1, rec(0, 1, "b"))
		}, want: map[Class]int{PollSkip: 1}},
		{name: "jump after rebalance is no skip", build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 0)
			produce(r, "p1", "b", 0, 1)
			produce(r, "p1", "c", 0, 2)
			poll(r, "c1", 1, rec(0, 0, "a"))
			poll(r, "c2", 2, rec(0, 1, "b"))
			poll(r, "c1", 2, rec(0, 2, "c"))
		}},
		{name: "nonmonotonic poll", build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 0)
			produce(r, "p1", "b", 0, 1)
			poll(r, "c1", 1, rec(0, 0, "a"), rec(0, 1, "b"))
			poll(r, "c1", 1, rec(0, 0, "a"))
		}, want: map[Class]int{NonmonotonicPoll: 1}},
		{name: "nonmonotonic send", build: func(r *Recorder) {
			a, b := r.Invoke(produceOp("p1", "a", 0)), r.Invoke(produceOp("p1", "b", 0))
			a.OK(rec(0, 1, ""))
			b.OK(rec(0, 0, ""))
		}, want: map[Class]int{NonmonotonicSend: 1}},
		{name: "realtime order", build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 1)
			produce(r, "p2", "b", 0, 0)
		}, want: map[Class]int{RealtimeOrder: 1}},
		{name: "commit backwards", build: func(r *Recorder) {
			commit(r, 0, 10)
			x, y := r.Invoke(Op{Kind: Commit, Group: "g", Partition: tp(0), Offset: 12}),
				r.Invoke(Op{Kind: Commit, Group: "g", Partition: tp(0), Offset: 11})
			x.OK()
			y.OK() // concurrent with 12: not backwards
			commit(r, 0, 5)
		}, want: map[Class]int{CommitBackwards: 1}},
		{name: "queue redelivered after ack", build: func(r *Recorder) {
			receive(r, job(3))
			settle(r, QueueAck, job(3))
			receive(r, job(3))
		}, want: map[Class]int{QueueRedeliveredAfterAck: 1}},
		{name: "exactly-once count", build: func(r *Recorder) {
			r.Invoke(Op{Kind: PipelineCount, Pipeline: "count", Key: "k1", Inputs: 10, Outputs: 10}).OK()
			r.Invoke(Op{Kind: PipelineCount, Pipeline: "count", Key: "k2", Inputs: 10, Outputs: 11}).OK()
		}, want: map[Class]int{ExactlyOnceCount: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRecorder()
			tt.build(r)
			rep := Check(r.History(), Config{Drained: tt.drained})
			for _, c := range Classes() {
				if got := rep.Count(c); got != tt.want[c] {
					t.Errorf("%s: got %d, want %d\n%v", c, got, tt.want[c], rep)
				}
			}
			if (rep.Err() == nil) != (len(tt.want) == 0) {
				t.Errorf("Err() = %v with Total() = %d", rep.Err(), rep.Total())
			}
		})
	}
}

func TestReportString(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	produce(r, "p1", "a", 0, 0)
	rep := Check(r.History(), Config{Drained: true})
	lines := strings.Split(strings.TrimSpace(rep.String()), "\n")
	var classes []string
	for _, l := range lines {
		if strings.HasPrefix(l, "anomaly ") {
			classes = append(classes, l)
		}
	}
	if len(classes) != len(Classes()) || len(lines) != len(classes)+1 || rep.Total() != 1 {
		t.Fatalf("want one line per class and one example:\n%s", rep)
	}
	for i, c := range Classes() {
		want := "anomaly class=" + string(c) + " count=0"
		if c == LostWrite {
			want = "anomaly class=lost-write count=1"
		}
		if classes[i] != want {
			t.Errorf("line %d = %q, want %q", i, classes[i], want)
		}
	}
}
