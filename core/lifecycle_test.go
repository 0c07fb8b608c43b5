package core

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Queues starts nothing until Run; Run returns when its context ends, and
// the service then refuses to start partition workers.
func TestQueuesRunLifecycle(t *testing.T) {
	t.Parallel()
	q := newQueuesT(t, newBrokerT(t, nil, BrokerConfig{}), QueueConfig{MaintenanceInterval: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); q.Run(ctx) }()
	select {
	case <-done:
		t.Fatal("Run returned before its context ended")
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := q.worker(&Subscription{UID: "u"}, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("worker after Run = %v, want ErrUnavailable", err)
	}
	q.Close() // after Run: returns at once
}

func TestQueuesCloseBeforeRun(t *testing.T) {
	t.Parallel()
	q := newQueuesT(t, newBrokerT(t, nil, BrokerConfig{}), QueueConfig{})
	q.Close() // nothing was started
	done := make(chan struct{})
	go func() { defer close(done); q.Run(t.Context()) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run after Close did not return at once")
	}
}

func TestWaitNoAck(t *testing.T) {
	t.Parallel()
	b := newBrokerT(t, nil, BrokerConfig{})
	if err := b.WaitNoAck(t.Context()); err != nil {
		t.Fatalf("WaitNoAck with nothing in flight = %v", err)
	}
	b.unacked.Add(1) // one acks=none append in flight
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := b.WaitNoAck(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitNoAck with an append in flight = %v, want DeadlineExceeded", err)
	}
	go func() { time.Sleep(10 * time.Millisecond); b.unacked.Add(-1) }()
	if err := b.WaitNoAck(t.Context()); err != nil {
		t.Fatalf("WaitNoAck after the append ended = %v", err)
	}
}

// newBrokerT, newQueuesT and newGroupsT construct a service, failing tb on
// a configuration error.
func newBrokerT(tb testing.TB, store Store, cfg BrokerConfig) *Broker {
	tb.Helper()
	b, err := NewBroker(store, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func newQueuesT(tb testing.TB, b *Broker, cfg QueueConfig) *Queues {
	tb.Helper()
	q, err := NewQueues(b, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return q
}

func newGroupsT(tb testing.TB, b *Broker, cfg GroupConfig) *GroupCoordinator {
	tb.Helper()
	c, err := NewGroupCoordinator(b, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
