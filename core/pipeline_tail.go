package core

import (
	"context"
	"sync"
)

// tail runs the second half of a pipeline worker's batches behind it, in
// order, so that the worker reads and runs batch n+1 while batch n's outputs
// are being replicated (docs/pipelines.md, "Batches in flight").
//
// At-least-once, a job appends a batch's outputs and then commits its
// position conditionally on the previous batch's (so jobs must run in the
// order given and a failed one fails every later one). Exactly-once, a job
// commits a batch's outbox entry (conditionally, likewise) and then ships
// it. At most depth jobs wait beside the running one: submit blocks
// beyond that, which bounds what a worker holds in memory.
//
// The first job to fail stops the tail: later jobs are dropped and Err
// reports the error, which ends the worker (its successor resumes from the
// committed position). Close waits for the running job.
type tail struct {
	jobs chan func(context.Context) error
	done chan struct{}
	ctx  context.Context

	mu     sync.Mutex
	err    error
	failed chan struct{} // closed with the first error
	drop   *sync.Cond    // signalled when queued drops
	queued int           // submitted and not finished
}

func newTail(ctx context.Context, depth int) *tail {
	t := &tail{
		jobs:   make(chan func(context.Context) error, depth),
		done:   make(chan struct{}),
		ctx:    ctx,
		failed: make(chan struct{}),
	}
	t.drop = sync.NewCond(&t.mu)
	go t.run()
	return t
}

func (t *tail) run() {
	defer close(t.done)
	for job := range t.jobs {
		var err error
		if t.Err() == nil {
			err = job(t.ctx)
		}
		t.mu.Lock()
		if err != nil && t.err == nil {
			t.err = err
			close(t.failed)
		}
		t.queued--
		t.drop.Broadcast()
		t.mu.Unlock()
	}
}

// submit queues job behind the earlier ones; it blocks while depth jobs
// wait. It returns the tail's error instead if a job failed.
func (t *tail) submit(job func(context.Context) error) error {
	if err := t.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	t.queued++
	t.mu.Unlock()
	select {
	case t.jobs <- job:
		return nil
	case <-t.failed:
		t.mu.Lock()
		t.queued--
		t.mu.Unlock()
		return t.Err()
	}
}

// wait returns once every submitted job has run (or been dropped after a
// failure), with the first error.
func (t *tail) wait() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.queued > 0 {
		t.drop.Wait()
	}
	return t.err
}

// idle reports whether no job is queued or running.
func (t *tail) idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.queued == 0
}

// Err is the first job's error, if any.
func (t *tail) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Failed is closed when a job fails.
func (t *tail) Failed() <-chan struct{} { return t.failed }

// close stops taking jobs and waits for the queued ones to run or drop.
func (t *tail) close() {
	close(t.jobs)
	<-t.done
}
