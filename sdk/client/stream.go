package client

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// SubscribeOptions is a subscription over a Conn (docs/websocket.md).
type SubscribeOptions struct {
	Topic string
	// Partition: only this partition (nil: every partition).
	Partition *int
	// From: Earliest or Latest (default); Offset instead when From is
	// empty and Offset > 0; Timestamp when non-zero.
	From      From
	Offset    int64
	Timestamp time.Time
	// Credit is how many records (queue subscriptions: unanswered
	// messages) the server may send ahead (default 1000; queues 10).
	Credit int
	// ManualCredit turns off the automatic credit: by default a log
	// subscription grants back a batch's records when Next is called for
	// the next batch, keeping Credit records in flight. With it on, call
	// Stream.Credit yourself.
	ManualCredit bool
	// Group makes the subscription a member of a consumer group
	// (docs/groups.md): Event.Assigned announces its partitions.
	Group          string
	ClientID       string
	SessionTimeout time.Duration
	// Subscription makes it a queue subscription's receiver: events carry
	// leased Messages; answer them with Ack, Nack or Extend (each answer
	// gives its credit back).
	Subscription      string
	VisibilityTimeout time.Duration
}

// Event is what a Stream delivers: records (a log or group subscription),
// messages (a queue subscription), a new assignment (a group member), or
// an error about the running subscription (e.g. offset_out_of_range after
// retention: it goes on from the log start).
type Event struct {
	Records  []FetchedRecord
	Messages []Message
	Assigned *GroupAssignment
	Err      *Error
}

// GroupAssignment is a group member's partitions in a generation, with the
// offsets it starts at.
type GroupAssignment struct {
	Group      string
	Member     string
	Generation int64
	Partitions []int
	Positions  []RecordOffset
}

// Stream is one subscription of a Conn. Next is meant for one goroutine.
type Stream struct {
	cn     *Conn
	id     string
	topic  string
	queue  bool
	manual bool

	mu     sync.Mutex // guards items, ended
	items  []streamItem
	ended  bool
	notify chan struct{} // cap 1: items were added

	owed int // records delivered by the last Next, granted back by the next (Next's goroutine only)
}

type streamItem struct {
	f   wsFrame
	end bool
}

// push queues an item without blocking (the server sends at most the
// granted credit, which bounds the queue).
func (s *Stream) push(it streamItem) {
	s.mu.Lock()
	s.items = append(s.items, it)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// ID returns the subscription's id on its connection.
func (s *Stream) ID() string { return s.id }

// Subscribe starts a subscription and returns once the server confirmed
// it.
func (cn *Conn) Subscribe(ctx context.Context, opts SubscribeOptions) (*Stream, error) {
	v := map[string]any{"op": "subscribe", "topic": opts.Topic, "encoding": "base64"}
	switch {
	case !opts.Timestamp.IsZero():
		v["timestamp"] = opts.Timestamp.UnixMilli()
	case opts.From != "":
		v["from"] = opts.From
	case opts.Offset > 0:
		v["from"] = opts.Offset
	}
	if opts.Partition != nil {
		v["partition"] = *opts.Partition
	}
	if opts.Credit > 0 {
		v["credit"] = opts.Credit
	}
	if opts.Group != "" {
		v["group"] = opts.Group
	}
	if opts.ClientID != "" {
		v["client_id"] = opts.ClientID
	}
	if opts.SessionTimeout > 0 {
		v["session_timeout_ms"] = ms(opts.SessionTimeout)
	}
	if opts.Subscription != "" {
		v["subscription"] = opts.Subscription
	}
	if opts.VisibilityTimeout > 0 {
		v["visibility_timeout_ms"] = ms(opts.VisibilityTimeout)
	}
	s := &Stream{cn: cn, topic: opts.Topic, queue: opts.Subscription != "", manual: opts.ManualCredit, notify: make(chan struct{}, 1)}
	_, err := cn.request(ctx, v, func(id string) {
		s.id = id
		cn.streams[id] = s
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Next returns the subscription's next event, waiting until one arrives,
// ctx ends, or the subscription ends (ErrClosed). With automatic credit
// it first grants back the records of the previous event.
func (s *Stream) Next(ctx context.Context) (*Event, error) {
	if s.owed > 0 && !s.manual && !s.queue {
		if err := s.Credit(ctx, s.owed); err != nil {
			return nil, err
		}
		s.owed = 0
	}
	for {
		s.mu.Lock()
		if len(s.items) > 0 && !s.ended {
			it := s.items[0]
			s.items = s.items[1:]
			if it.end {
				s.ended = true
			}
			s.mu.Unlock()
			if it.end {
				return nil, s.cn.closedErr()
			}
			ev, ok, err := s.event(it.f)
			if err != nil || ok {
				return ev, err
			}
			continue
		}
		ended := s.ended
		s.mu.Unlock()
		if ended {
			return nil, s.cn.closedErr()
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// event turns a frame into an Event (ok false: a frame to skip).
func (s *Stream) event(f wsFrame) (*Event, bool, error) {
	switch f.Op {
	case "records":
		recs, err := recordsOf(f.Records, s.topic, 0)
		if err != nil {
			return nil, false, err
		}
		s.owed += len(recs)
		return &Event{Records: recs}, true, nil
	case "messages":
		msgs, err := messagesOf(f.Messages, s.topic)
		if err != nil {
			return nil, false, err
		}
		return &Event{Messages: msgs}, true, nil
	case "assigned":
		a := &GroupAssignment{Group: f.Group, Member: f.Member, Generation: f.Generation, Positions: f.Positions}
		json.Unmarshal(f.Partitions, &a.Partitions)
		return &Event{Assigned: a}, true, nil
	case "error":
		return &Event{Err: f.errorDetail}, true, nil
	}
	return nil, false, nil
}

// Credit lets the server send n more records (messages) of the
// subscription.
func (s *Stream) Credit(_ context.Context, n int) error {
	return s.cn.send(map[string]any{"op": "credit", "sub": s.id, "records": n})
}

// Close ends the subscription (Unsubscribe); no event of it follows.
func (s *Stream) Close(ctx context.Context) error {
	_, err := s.cn.request(ctx, map[string]any{"op": "unsubscribe", "sub": s.id}, nil)
	s.cn.forget(s.id)
	s.push(streamItem{end: true})
	return err
}

// Commit commits offsets (next offset to read) of a group subscription,
// fenced by the last generation announced to it.
func (s *Stream) Commit(ctx context.Context, offsets []RecordOffset) error {
	_, err := s.cn.request(ctx, map[string]any{"op": "commit", "sub": s.id, "offsets": offsets}, nil)
	return err
}

func (s *Stream) answer(ctx context.Context, v map[string]any) ([]ReceiptResult, error) {
	v["sub"] = s.id
	f, err := s.cn.request(ctx, v, nil)
	return f.Results, err
}

// Ack acknowledges messages of a queue subscription.
func (s *Stream) Ack(ctx context.Context, receipts ...string) ([]ReceiptResult, error) {
	return s.answer(ctx, map[string]any{"op": "ack", "receipts": receipts})
}

// Nack gives messages back for redelivery after delay (0: the backoff).
func (s *Stream) Nack(ctx context.Context, delay time.Duration, reason string, receipts ...string) ([]ReceiptResult, error) {
	v := map[string]any{"op": "nack", "receipts": receipts}
	if delay > 0 {
		v["delay_ms"] = ms(delay)
	}
	if reason != "" {
		v["error"] = reason
	}
	return s.answer(ctx, v)
}

// Extend makes leases end visibility from now.
func (s *Stream) Extend(ctx context.Context, visibility time.Duration, receipts ...string) ([]ReceiptResult, error) {
	return s.answer(ctx, map[string]any{"op": "extend", "receipts": receipts, "visibility_timeout_ms": ms(visibility)})
}
