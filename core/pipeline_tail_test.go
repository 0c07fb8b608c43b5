package core

import (
	"context"
	"errors"
	"testing"
)

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
