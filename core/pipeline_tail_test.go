package core

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fenceWait bounds a wait for a state these tests expect.
const fenceWait = 10 * time.Second

func TestTailRunsJobsInOrder(t *testing.T) {
	tl := newTail(context.Background(), 1)
	defer tl.close()
	var got []int
	for i := range 50 {
		if err := tl.submit(func(context.Context) error { got = append(got, i); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := tl.wait(); err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("job %d ran as %d: %v", i, v, got)
		}
	}
	if len(got) != 50 {
		t.Fatalf("%d jobs ran, want 50", len(got))
	}
}

// A failed job drops the later ones (at-least-once commits are chained on
// the one before) and every call after reports the first error.
func TestTailStopsAtFirstError(t *testing.T) {
	tl := newTail(context.Background(), 4)
	defer tl.close()
	boom := errors.New("boom")
	release := make(chan struct{})
	ran := make(chan int, 10)
	_ = tl.submit(func(context.Context) error { <-release; ran <- 1; return boom })
	for i := 2; i <= 3; i++ {
		if err := tl.submit(func(context.Context) error { ran <- i; return nil }); err != nil {
			t.Fatalf("submit %d before the failure: %v", i, err)
		}
	}
	close(release)
	if err := tl.wait(); !errors.Is(err, boom) {
		t.Fatalf("wait = %v, want boom", err)
	}
	<-tl.Failed()
	if err := tl.submit(func(context.Context) error { ran <- 4; return nil }); !errors.Is(err, boom) {
		t.Fatalf("submit after the failure = %v, want boom", err)
	}
	close(ran)
	var got []int
	for v := range ran {
		got = append(got, v)
	}
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("jobs that ran: %v, want only the failed one", got)
	}
}

// submit blocks while depth jobs wait beside the running one, and a
// failure unblocks it.
func TestTailSubmitUnblocksOnFailure(t *testing.T) {
	tl := newTail(context.Background(), 1)
	defer tl.close()
	started, release := make(chan struct{}), make(chan struct{})
	boom := errors.New("boom")
	_ = tl.submit(func(context.Context) error { close(started); <-release; return boom })
	<-started
	_ = tl.submit(func(context.Context) error { return nil }) // fills the queue
	done := make(chan error, 1)
	go func() { done <- tl.submit(func(context.Context) error { return nil }) }()
	close(release)
	if err := <-done; err != nil && !errors.Is(err, boom) {
		t.Fatalf("blocked submit = %v", err)
	}
	if err := tl.wait(); !errors.Is(err, boom) {
		t.Fatalf("wait = %v, want boom", err)
	}
}

// A staged job starts while the job before it finishes (the overlap the
// at-least-once tail relies on: batch n+1's outputs replicate while batch
// n's position commits), and finishes still run in order.
func TestTailStartsTheNextJobDuringAFinish(t *testing.T) {
	tl := newTail(context.Background(), 1)
	defer tl.close()
	started1, release0 := make(chan struct{}), make(chan struct{})
	var finished []int
	_ = tl.submitStaged(func(context.Context) (func(context.Context) error, error) {
		return func(context.Context) error { <-release0; finished = append(finished, 0); return nil }, nil
	})
	_ = tl.submitStaged(func(context.Context) (func(context.Context) error, error) {
		close(started1)
		return func(context.Context) error { finished = append(finished, 1); return nil }, nil
	})
	select {
	case <-started1:
	case <-time.After(fenceWait):
		t.Fatal("job 1 did not start while job 0 was finishing")
	}
	close(release0)
	if err := tl.wait(); err != nil {
		t.Fatal(err)
	}
	if len(finished) != 2 || finished[0] != 0 || finished[1] != 1 {
		t.Fatalf("finishes ran as %v, want [0 1]", finished)
	}
}

// Work launched in one lane runs one at a time in the order launched,
// lanes run beside each other, and close waits for lane work even when a
// failure dropped the finishes waiting for it.
func TestTailLanes(t *testing.T) {
	tl := newTail(context.Background(), 20) // every job can start before any finish ends
	boom := errors.New("boom")
	var mu sync.Mutex
	got := map[string][]int{}
	bRelease := make(chan struct{})
	aDone := make(chan struct{})
	for i := range 20 {
		_ = tl.submitStaged(func(context.Context) (func(context.Context) error, error) {
			a := tl.lane("a", func() error {
				mu.Lock()
				got["a"] = append(got["a"], i)
				mu.Unlock()
				if i == 19 {
					close(aDone)
				}
				return nil
			})
			tl.lane("b", func() error {
				<-bRelease // lane b is held up; lane a is not
				mu.Lock()
				got["b"] = append(got["b"], i)
				mu.Unlock()
				return nil
			})
			tl.lane("c", func() error { // fails at 3: its later works do not run
				mu.Lock()
				defer mu.Unlock()
				got["c"] = append(got["c"], i)
				if i == 3 {
					return boom
				}
				return nil
			})
			return func(context.Context) error {
				a.wait()
				if i == 5 {
					<-aDone // fail once every job has started
					return boom
				}
				return nil
			}, nil
		})
	}
	select {
	case <-aDone: // every job started and lane a ran all its work while lane b waited
	case <-time.After(fenceWait):
		t.Fatal("lane a did not run while lane b was held")
	}
	if err := tl.wait(); !errors.Is(err, boom) {
		t.Fatalf("wait = %v, want boom", err)
	}
	close(bRelease)
	tl.close()
	if len(got["c"]) != 4 {
		t.Fatalf("lane c ran %v, want 0–3: nothing after its failure", got["c"])
	}
	for _, lane := range []string{"a", "b"} {
		if len(got[lane]) != 20 {
			t.Fatalf("lane %s ran %d works, want 20 (close returned before they ran)", lane, len(got[lane]))
		}
		for i, v := range got[lane] {
			if v != i {
				t.Fatalf("lane %s ran %v: out of order", lane, got[lane])
			}
		}
	}
}
