package history

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func TestCheckLinearizable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		build func(r *Recorder)
		want  porcupine.CheckResult
	}{
		{name: "concurrent appends, reads, an unknown append that landed", build: func(r *Recorder) {
			a, b := r.Invoke(produceOp("p1", "a", 0)), r.Invoke(produceOp("p2", "b", 0))
			b.OK(rec(0, 0, "")) // b invoked second, ordered first: they overlap
			a.OK(rec(0, 1, ""))
			fetch(r, "c1", 0, 0, rec(0, 0, "b"), rec(0, 1, "a"))
			fetch(r, "c1", 0, 2)
			r.Invoke(produceOp("p1", "c", 0)).Info(errors.New("timeout"))
			r.Invoke(produceOp("p2", "x", 0)).Info(errors.New("timeout")) // never landed
			fetch(r, "c2", 0, 1, rec(0, 1, "a"), rec(0, 2, "c"))
			r.Invoke(produceOp("p1", "d", 0)).Fail(errors.New("not leader"))
			produce(r, "p1", "e", 0, 3)
			fetch(r, "c2", 0, 3, rec(0, 3, "e"))
		}, want: porcupine.Ok},
		{name: "acknowledged append not visible", build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 0)
			fetch(r, "c1", 0, 0)
		}, want: porcupine.Illegal},
		{name: "two appends at one offset", build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 0)
			produce(r, "p2", "b", 0, 0)
		}, want: porcupine.Illegal},
		{name: "failed append read", build: func(r *Recorder) {
			r.Invoke(produceOp("p1", "a", 0)).Fail(errors.New("not leader"))
			fetch(r, "c1", 0, 0, rec(0, 0, "a"))
		}, want: porcupine.Illegal},
		{name: "stale read after a newer one", build: func(r *Recorder) {
			produce(r, "p1", "a", 0, 0)
			fetch(r, "c1", 0, 0, rec(0, 0, "a"))
			fetch(r, "c2", 0, 0)
		}, want: porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRecorder()
			tt.build(r)
			r.Invoke(produceOp("p9", "other", 1)).OK(rec(1, 0, "")) // another partition: ignored
			if got := CheckLinearizable(r.History(), tp(0), 10*time.Second); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCheckLinearizableDrained: with a final read of the whole partition,
// unknown produces no read saw are left out (they did not happen), so many
// of them cost nothing; the ones read still count, and the final read
// catches an acknowledged append it does not hold.
func TestCheckLinearizableDrained(t *testing.T) {
	t.Parallel()
	build := func(lose bool) History {
		r := newRecorder()
		var want []Record
		off := int64(0)
		for i := 0; i < 60; i++ {
			// Requests a fault cut off, overlapping everything after them:
			// never read, so they never landed.
			r.Invoke(produceOp("p2", fmt.Sprintf("lost-%d", i), 0))
			v := fmt.Sprintf("v%d", i)
			if i%10 == 5 { // cut off too, but it landed: the reads see it
				r.Invoke(produceOp("p3", v, 0)).Info(errors.New("timeout"))
			} else {
				produce(r, "p1", v, 0, off)
			}
			want = append(want, rec(0, off, v))
			off++
			fetch(r, "c1", 0, off-1, want[off-1])
		}
		if lose { // an acknowledged append missing from the final read
			want = append(want[:30:30], want[31:]...)
		}
		fetch(r, "drain", 0, 0, want...)
		return r.History()
	}
	if got := CheckLinearizableDrained(build(false), tp(0), 10*time.Second); got != porcupine.Ok {
		t.Errorf("drained history: got %v, want Ok", got)
	}
	if got := CheckLinearizableDrained(build(true), tp(0), 10*time.Second); got != porcupine.Illegal {
		t.Errorf("final read without the last acknowledged append: got %v, want Illegal", got)
	}
}
