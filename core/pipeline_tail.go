package core

import (
	"context"
	"sync"
)

// tail runs the second half of a pipeline worker's batches behind it, in
// order, so that the worker reads and runs batch n+1 while batch n's outputs
// are being replicated (docs/pipelines.md, "Batches in flight").
//
// A job has two stages, each run in job order on a goroutine of its own: a
// start (submitStaged), which begins the job's work and returns its finish,
// and the finish, which completes it. So job n+1 starts while job n
// finishes. At-least-once, a job's start launches the batch's output
// appends (each behind the previous batch's append to the same output
// partition) and its finish waits for them and commits the position,
// conditionally on the previous batch's commit; so batch n+1's outputs
// replicate while batch n's position commits. Exactly-once, a job's start
// commits a batch's outbox entry (conditionally, likewise) and its finish
// ships it; so batch n+1 commits while batch n's outputs ship. A job with
// a single stage (submit) runs whole as a finish. At most depth jobs wait
// at each stage: submit blocks beyond that, which bounds what a worker
// holds in memory.
//
// The first job to fail stops the tail: later jobs are dropped (a started
// job's finish does not run) and Err reports the error, which ends the
// worker (its successor resumes from the committed position). Close waits
// for the running jobs.
type tail struct {
	jobs     chan stagedJob
	finishes chan func(context.Context) error
	done     chan struct{}
	ctx      context.Context

	// lanes holds each lane's last work (a lane per output partition);
	// only starts use it.
	lanes    map[string]*laneWork
	laneWork sync.WaitGroup // lane goroutines running

	mu     sync.Mutex
	err    error
	failed chan struct{} // closed with the first error
	drop   *sync.Cond    // signalled when queued drops
	queued int           // submitted and not finished
}

// stagedJob is a job's start: it returns the job's finish (nil: nothing
// more to do).
type stagedJob func(context.Context) (finish func(context.Context) error, err error)

func newTail(ctx context.Context, depth int) *tail {
	t := &tail{
		jobs:     make(chan stagedJob, depth),
		finishes: make(chan func(context.Context) error, depth),
		done:     make(chan struct{}),
		ctx:      ctx,
		failed:   make(chan struct{}),
		lanes:    map[string]*laneWork{},
	}
	t.drop = sync.NewCond(&t.mu)
	go t.start()
	go t.finish()
	return t
}

// start runs the jobs' first stage in order and hands their finishes on;
// a job that fails (or follows a failure) is done.
func (t *tail) start() {
	defer close(t.finishes)
	for job := range t.jobs {
		if t.Err() != nil {
			t.finished(nil)
			continue
		}
		fin, err := job(t.ctx)
		if err != nil || fin == nil {
			t.finished(err)
			continue
		}
		t.finishes <- fin // finish drains the channel whatever happens
	}
}

// lane runs work on its own goroutine once the work a start launched
// before in the same lane is done, so work in one lane runs one at a time,
// in the order launched, beside other lanes and the finishes. Once a work
// fails, the lane's later works do not run and report that error (so an
// output partition never gets batch n+1's outputs after batch n's failed).
// Only a start may call lane.
func (t *tail) lane(key string, work func() error) *laneWork {
	prev, w := t.lanes[key], &laneWork{done: make(chan struct{})}
	t.lanes[key] = w
	t.laneWork.Add(1)
	go func() {
		defer t.laneWork.Done()
		defer close(w.done)
		if prev != nil {
			<-prev.done
			if w.err = prev.err; w.err != nil {
				return
			}
		}
		w.err = work()
	}()
	return w
}

// laneWork is one work of a lane: err is set when done is closed.
type laneWork struct {
	done chan struct{}
	err  error
}

// wait returns the work's error once it is done.
func (w *laneWork) wait() error {
	<-w.done
	return w.err
}

// finish runs the jobs' second stage in order.
func (t *tail) finish() {
	defer close(t.done)
	for fin := range t.finishes {
		var err error
		if t.Err() == nil {
			err = fin(t.ctx)
		}
		t.finished(err)
	}
}

// finished ends one job, with its error.
func (t *tail) finished(err error) {
	t.mu.Lock()
	if err != nil && t.err == nil {
		t.err = err
		close(t.failed)
	}
	t.queued--
	t.drop.Broadcast()
	t.mu.Unlock()
}

// submit queues a job whose work all runs as a finish, after every earlier
// job's finish.
func (t *tail) submit(job func(context.Context) error) error {
	return t.submitStaged(func(context.Context) (func(context.Context) error, error) { return job, nil })
}

// submitStaged queues job behind the earlier ones; it blocks while depth
// jobs wait to start. It returns the tail's error instead if a job failed.
func (t *tail) submitStaged(job stagedJob) error {
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
		t.drop.Broadcast()
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

// close stops taking jobs and waits for the queued ones to run or drop,
// and for the work they launched in lanes.
func (t *tail) close() {
	close(t.jobs)
	<-t.done
	t.laneWork.Wait()
}
