package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Backoff is a subscription's backoff between attempts; all three fields
// are sent ({0, 0, 1} redelivers at once).
type Backoff struct {
	InitialMs  int64   `json:"initial_ms"`
	MaxMs      int64   `json:"max_ms"`
	Multiplier float64 `json:"multiplier"`
}

// SubscriptionConfig is a queue subscription to create (docs/queues.md).
// Zero fields take the broker's defaults.
type SubscriptionConfig struct {
	Name                string   `json:"name"`
	VisibilityTimeoutMs int64    `json:"visibility_timeout_ms,omitempty"` // default 30 s
	MaxAttempts         *int     `json:"max_attempts,omitempty"`          // nil: 5 with a DeadLetterTopic, else 0 (unlimited)
	Backoff             *Backoff `json:"backoff,omitempty"`               // default 1 s ×2 up to 60 s
	DeadLetterTopic     string   `json:"dead_letter_topic,omitempty"`
	Ordering            string   `json:"ordering,omitempty"` // "none" (default) or "key"
	Start               From     `json:"start,omitempty"`    // Earliest (default) or Latest
	// Priority hands out messages with a higher weir-priority header
	// ("0"–"9") first (docs/queues.md, "Priority delivery").
	Priority bool `json:"priority,omitempty"`
	// PriorityGuardEvery, with Priority: every Nth delivery is the oldest
	// deliverable message whatever its priority (0: off, strict order).
	PriorityGuardEvery int `json:"priority_guard_every,omitempty"`
}

// SubscriptionStats are a subscription's counts (docs/queues.md).
type SubscriptionStats struct {
	Backlog           int64 `json:"backlog"`
	InFlight          int   `json:"in_flight"`
	Retrying          int   `json:"retrying"`
	Delayed           int   `json:"delayed"`
	Blocked           int   `json:"blocked"`
	DeadLetterPending int   `json:"dead_letter_pending"`
	Delivered         int64 `json:"delivered"`
	Acked             int64 `json:"acked"`
	Nacked            int64 `json:"nacked"`
	Expired           int64 `json:"expired"`
	DeadLettered      int64 `json:"dead_lettered"`
	Dropped           int64 `json:"dropped"`
}

// Subscription is a queue subscription as created, listed or described
// (Stats and Partitions only in a description).
type Subscription struct {
	Topic               string             `json:"topic"`
	Name                string             `json:"name"`
	VisibilityTimeoutMs int64              `json:"visibility_timeout_ms"`
	MaxAttempts         int                `json:"max_attempts"`
	Backoff             *Backoff           `json:"backoff"`
	DeadLetterTopic     string             `json:"dead_letter_topic"`
	Ordering            string             `json:"ordering"`
	Start               From               `json:"start"`
	Priority            bool               `json:"priority"`
	PriorityGuardEvery  int                `json:"priority_guard_every,omitempty"`
	CreatedAtMs         int64              `json:"created_at"`
	Stats               *SubscriptionStats `json:"stats,omitempty"`
	Partitions          []struct {
		Partition     int   `json:"partition"`
		Cursor        int64 `json:"cursor"`
		Frontier      int64 `json:"frontier"`
		HighWatermark int64 `json:"high_watermark"`
	} `json:"partitions,omitempty"`
	// Raw is a description's whole answer (per-partition statistics).
	Raw json.RawMessage `json:"-"`
}

func subPath(topic, sub string) string {
	p := "/v1/topics/" + esc(topic) + "/subscriptions"
	if sub != "" {
		p += "/" + esc(sub)
	}
	return p
}

// CreateSubscription creates a queue subscription on topic.
func (c *Client) CreateSubscription(ctx context.Context, topic string, cfg SubscriptionConfig) (*Subscription, error) {
	var s Subscription
	if err := c.call(ctx, "POST", subPath(topic, ""), cfg, &s, false); err != nil {
		return nil, err
	}
	return &s, nil
}

// Subscriptions lists topic's subscriptions.
func (c *Client) Subscriptions(ctx context.Context, topic string) ([]Subscription, error) {
	var out struct {
		Subscriptions []Subscription `json:"subscriptions"`
	}
	return out.Subscriptions, c.call(ctx, "GET", subPath(topic, ""), nil, &out, true)
}

// Subscription describes a subscription with its statistics.
func (c *Client) Subscription(ctx context.Context, topic, name string) (*Subscription, error) {
	var raw json.RawMessage
	if err := c.call(ctx, "GET", subPath(topic, name), nil, &raw, true); err != nil {
		return nil, err
	}
	s := &Subscription{Raw: raw}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("client: decode subscription: %w", err)
	}
	return s, nil
}

// DeleteSubscription deletes a subscription (the topic's records stay).
func (c *Client) DeleteSubscription(ctx context.Context, topic, name string) error {
	return c.call(ctx, "DELETE", subPath(topic, name), nil, nil, true)
}

// ReceiveOptions bound a receive. The zero value leases up to 10 messages
// without waiting, for the subscription's visibility timeout.
type ReceiveOptions struct {
	MaxRecords        int           // default 10, at most 1000
	MaxBytes          int           // default and limit 8 MiB
	Wait              time.Duration // long-poll up to this long (≤ 60 s)
	VisibilityTimeout time.Duration // these leases' length
	AutoAck           bool          // acknowledge as leased (at-most-once)
}

// Message is a leased message of a subscription.
type Message struct {
	FetchedRecord
	Receipt        string    // names this lease in Ack, Nack, Extend
	Attempt        int       // 1 on the first delivery
	LeaseExpiresAt time.Time // when the message may go to another receiver
}

type messageJSON struct {
	recordJSON
	Receipt        string `json:"receipt"`
	Attempt        int    `json:"attempt"`
	LeaseExpiresAt int64  `json:"lease_expires_at"`
}

func messagesOf(in []messageJSON, topic string) ([]Message, error) {
	out := make([]Message, len(in))
	for i := range in {
		r, err := in[i].record(topic, in[i].Partition)
		if err != nil {
			return nil, err
		}
		out[i] = Message{FetchedRecord: r, Receipt: in[i].Receipt, Attempt: in[i].Attempt, LeaseExpiresAt: time.UnixMilli(in[i].LeaseExpiresAt)}
	}
	return out, nil
}

// Receive leases up to opts.MaxRecords deliverable messages; an empty
// answer after opts.Wait means none was deliverable. Not retried on 503
// (the messages of a lost answer are redelivered when their lease ends).
func (c *Client) Receive(ctx context.Context, topic, sub string, opts ReceiveOptions) ([]Message, error) {
	body := map[string]any{"encoding": "base64", "auto_ack": opts.AutoAck}
	if opts.MaxRecords > 0 {
		body["max_records"] = opts.MaxRecords
	}
	if opts.MaxBytes > 0 {
		body["max_bytes"] = opts.MaxBytes
	}
	if opts.Wait > 0 {
		body["wait_ms"] = ms(opts.Wait)
	}
	if opts.VisibilityTimeout > 0 {
		body["visibility_timeout_ms"] = ms(opts.VisibilityTimeout)
	}
	var out struct {
		Messages []messageJSON `json:"messages"`
	}
	if err := c.call(ctx, "POST", subPath(topic, sub)+"/receive", body, &out, false); err != nil {
		return nil, err
	}
	return messagesOf(out.Messages, topic)
}

// ReceiptResult is the outcome of one receipt of an ack, nack or extend.
type ReceiptResult struct {
	Receipt string `json:"receipt"`
	Status  string `json:"status"` // ok or error
	// Error is CodeLeaseLost or CodeInvalidReceipt (with Status "error").
	Error *struct {
		Code    Code   `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
	LeaseExpiresAtMs int64 `json:"lease_expires_at,omitempty"` // extend
}

// Err returns the receipt's error as an *Error, nil when it succeeded.
func (r ReceiptResult) Err() error {
	if r.Status == "ok" {
		return nil
	}
	if r.Error == nil {
		return &Error{Code: Code(r.Status), Message: "receipt " + r.Receipt}
	}
	return &Error{Code: r.Error.Code, Message: r.Error.Message}
}

func (c *Client) answer(ctx context.Context, topic, sub, op string, body map[string]any, idempotent bool) ([]ReceiptResult, error) {
	var out struct {
		Results []ReceiptResult `json:"results"`
	}
	return out.Results, c.call(ctx, "POST", subPath(topic, sub)+"/"+op, body, &out, idempotent)
}

// Ack acknowledges leased messages: one result per receipt, in order. An
// ack is idempotent (acking a done message succeeds), so it is retried.
func (c *Client) Ack(ctx context.Context, topic, sub string, receipts ...string) ([]ReceiptResult, error) {
	return c.answer(ctx, topic, sub, "ack", map[string]any{"receipts": receipts}, true)
}

// Nack gives messages back for redelivery after delay (0: the
// subscription's backoff); reason is kept as the message's last error.
func (c *Client) Nack(ctx context.Context, topic, sub string, delay time.Duration, reason string, receipts ...string) ([]ReceiptResult, error) {
	body := map[string]any{"receipts": receipts}
	if delay > 0 {
		body["delay_ms"] = ms(delay)
	}
	if reason != "" {
		body["error"] = reason
	}
	return c.answer(ctx, topic, sub, "nack", body, false)
}

// Extend makes leases end visibility from now.
func (c *Client) Extend(ctx context.Context, topic, sub string, visibility time.Duration, receipts ...string) ([]ReceiptResult, error) {
	return c.answer(ctx, topic, sub, "extend", map[string]any{"receipts": receipts, "visibility_timeout_ms": ms(visibility)}, false)
}

// Redrive sends a dead-letter topic's messages back to topic to (max 0:
// all there now) and returns how many it sent. A redrive that stopped
// early returns the count so far with an *Error saying why.
func (c *Client) Redrive(ctx context.Context, deadLetterTopic, to string, max int64) (int64, error) {
	var out struct {
		Redriven int64 `json:"redriven"`
		Error    *struct {
			Code    Code   `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := c.call(ctx, "POST", "/v1/topics/"+esc(deadLetterTopic)+"/redrive", map[string]any{"to": to, "max_records": max}, &out, false); err != nil {
		return 0, err
	}
	if out.Error != nil {
		return out.Redriven, &Error{Status: 200, Code: out.Error.Code, Message: out.Error.Message}
	}
	return out.Redriven, nil
}
