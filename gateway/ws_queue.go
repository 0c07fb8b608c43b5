package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/weir-broker/weir/core"
)

// Queue subscriptions over WebSocket (docs/queues.md "WebSocket"): a
// subscribe frame with "subscription" delivers leased messages in
// "messages" frames; ack, nack and extend frames answer receipts.
//
// A queue subscription is a wsSub without pumps: one goroutine (under the
// wsSub's WaitGroup, so unsubscribe, credit and the connection's end work
// as for log subscriptions) takes credit, long-polls Queues.Receive for
// that many messages and queues one frame.

// defaultQueueCredit is a queue subscription's credit when subscribe names
// none: messages sent and not yet answered (a prefetch count).
const defaultQueueCredit = 10

// queueWait is how long one receive of a queue subscription long-polls.
const queueWait = 20 * time.Second

func (c *wsConn) opSubscribeQueue(f *wsFrame) error {
	q := c.hub.s.queues
	if q == nil {
		return errNoQueues
	}
	if f.Topic == "" {
		return core.Invalidf("subscribe needs a topic")
	}
	if f.Group != "" || f.Partition != nil || len(f.From) > 0 || f.Timestamp != nil || len(f.Positions) > 0 {
		return core.Invalidf(`a subscribe with "subscription" takes no group, partition, from, timestamp or positions`)
	}
	if _, err := q.Subscription(f.Topic, f.Subscription); err != nil {
		return err
	}
	sp := &subSpec{reqID: f.ID, id: f.ID, topic: f.Topic, credit: defaultQueueCredit, queue: f.Subscription}
	switch f.Encoding {
	case "", "utf8", "utf-8":
	case "base64":
		sp.b64 = true
	default:
		return core.Invalidf("encoding must be utf8 or base64, not %q", f.Encoding)
	}
	if f.Credit != nil {
		if *f.Credit < 1 {
			return core.Invalidf("credit must be ≥ 1")
		}
		sp.credit = *f.Credit
	}
	if f.VisibilityTimeoutMs < 0 {
		return core.Invalidf("visibility_timeout_ms must be ≥ 1")
	}
	vt := time.Duration(f.VisibilityTimeoutMs) * time.Millisecond

	s, err := c.addSub(sp)
	if err != nil {
		return err
	}

	b := frameStart("subscribed", sp.reqID, sp.id)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, sp.topic)
	b = append(b, `,"subscription":`...)
	b = appendJSONString(b, sp.queue)
	if err := c.send(append(b, '}')); err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.runQueue(vt)
	}()
	return nil
}

// runQueue delivers a queue subscription until it stops.
func (s *wsSub) runQueue(vt time.Duration) {
	q := s.c.hub.s.queues
	backoff := 100 * time.Millisecond
	for s.ctx.Err() == nil {
		if s.c.awaitDelivery(s.ctx) != nil { // ws_quota.go
			return
		}
		n, err := s.credit.take(s.ctx, min(maxFrameRecords, q.Config().MaxReceiveRecords))
		if err != nil {
			return
		}
		msgs, err := q.Receive(s.ctx, &core.ReceiveRequest{Topic: s.spec.topic, Subscription: s.spec.queue,
			MaxRecords: n, MaxBytes: s.c.cfg.MaxFrameBytes, Wait: queueWait, VisibilityTimeout: vt})
		s.credit.giveBack(n - len(msgs))
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.c.sendErrorCtx(s.ctx, "", s.spec.id, nil, err)
			if errors.Is(err, core.ErrSubscriptionNotFound) || errors.Is(err, core.ErrTopicNotFound) {
				s.drop()
				return
			}
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if len(msgs) == 0 {
			continue
		}
		b := frameStart("messages", "", s.spec.id)
		b = append(b, `,"messages":`...)
		b = AppendMessagesJSON(b, msgs, s.spec.b64)
		if err := s.c.out.push(s.ctx, outFrame{head: append(b, '}')}, nil); err != nil {
			return // the leases expire and the messages go to another consumer
		}
		s.c.chargeDelivery(len(b) + 1)
	}
}

// opReceipts runs an ack, nack or extend frame. Naming a queue
// subscription of this connection ("sub") gives its credit back for every
// receipt answered (ack, nack).
func (c *wsConn) opReceipts(f *wsFrame) error {
	if c.hub.s.queues == nil {
		return errNoQueues
	}
	topic, name := f.Topic, f.Subscription
	var s *wsSub
	if f.Sub != "" {
		c.mu.Lock()
		s = c.subs[f.Sub]
		c.mu.Unlock()
		if s == nil || s.spec.queue == "" {
			return core.Invalidf("no queue subscription %q on this connection", f.Sub)
		}
		topic, name = s.spec.topic, s.spec.queue
	} else if topic == "" || name == "" {
		return core.Invalidf(`%s needs "sub", or "topic" and "subscription"`, f.Op)
	}
	body := &ReceiptsJSON{Receipts: f.Receipts, DelayMs: f.DelayMs, Error: f.Error, VisibilityTimeoutMs: f.VisibilityTimeoutMs}
	return c.async(func() {
		ctx, cancel := context.WithTimeout(c.ctx, c.hub.s.cfg.ProduceTimeout)
		defer cancel()
		res, err := c.hub.s.ReceiptCall(ctx, topic, name, f.Op, body)
		if err != nil {
			c.sendError(f.ID, f.Sub, nil, err)
			return
		}
		if s != nil && f.Op != "extend" {
			n := 0
			for _, r := range res {
				if !errors.Is(r.Err, core.ErrInvalidReceipt) {
					n++
				}
			}
			s.credit.giveBack(n)
		}
		b := frameStart(f.Op+"ed", f.ID, f.Sub) // acked, nacked, extended
		b = append(b, `,"results":`...)
		b = AppendReceiptResultsJSON(b, res)
		c.send(append(b, '}'))
	})
}
