package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Record is a record to produce.
type Record struct {
	Key     []byte // nil: no key
	Value   []byte
	Headers map[string]string
	// Partition pins the record to a partition (Part(n)); nil: the
	// partition of the key (Kafka's murmur2), else one round-robin step per
	// request.
	Partition *int
	// Timestamp is the record's time; zero: the broker's clock.
	Timestamp time.Time
	// DeliverAt holds the record back from queue subscriptions until then
	// (docs/queues.md "Delayed delivery"); sent as the weir-deliver-at
	// header. Zero: deliverable at once.
	DeliverAt time.Time
}

// Part returns a pointer to p, for Record.Partition and other optional
// numbers (SubscriptionConfig.MaxAttempts).
func Part(p int) *int { return &p }

// RecordOffset is where a produced record landed.
type RecordOffset struct {
	Partition int   `json:"partition"`
	Offset    int64 `json:"offset"`
}

// PartitionResult is one partition's part of a produce: the indexes of
// the request's records that went there and, when they committed, the
// first one's offset (Records[j] is at BaseOffset+j).
type PartitionResult struct {
	Partition  int
	Records    []int
	BaseOffset int64
	// Err is why this partition's records were not committed; nil when
	// they were.
	Err *Error
}

// ProduceResult is a committed produce.
type ProduceResult struct {
	// Offsets has one entry per record, in request order.
	Offsets []RecordOffset
	// Duplicate: an idempotent retry of a batch already stored; Offsets
	// are the original ones.
	Duplicate bool
}

// Partitions groups the offsets per partition, by partition number.
func (r *ProduceResult) Partitions() []PartitionResult {
	at := map[int]int{}
	var out []PartitionResult
	for i, o := range r.Offsets {
		j, ok := at[o.Partition]
		if !ok {
			j = len(out)
			at[o.Partition] = j
			out = append(out, PartitionResult{Partition: o.Partition, BaseOffset: o.Offset})
		}
		out[j].Records = append(out[j].Records, i)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out
}

// ProduceError is a produce over several partitions that committed on
// some and failed on others (docs/api.md "Partial failure"). Resend only
// Failed (the records of the failed partitions): the committed ones are
// stored. It unwraps to the answer's *Error (its status and code are those
// of a failed partition).
type ProduceError struct {
	Err        *Error
	Partitions []PartitionResult // every partition of the request
	// Offsets has one entry per request record: the committed ones'
	// offsets, and Offset -1 for the failed ones.
	Offsets []RecordOffset
	// Failed are the request's records that were not committed, in
	// request order, ready to be produced again.
	Failed []Record
}

func (e *ProduceError) Error() string { return e.Err.Error() }

// Unwrap returns the API error.
func (e *ProduceError) Unwrap() error { return e.Err }

// Committed returns the partitions whose records were committed.
func (e *ProduceError) Committed() []PartitionResult { return e.filter(true) }

// FailedPartitions returns the partitions whose records were not.
func (e *ProduceError) FailedPartitions() []PartitionResult { return e.filter(false) }

func (e *ProduceError) filter(ok bool) []PartitionResult {
	var out []PartitionResult
	for _, p := range e.Partitions {
		if (p.Err == nil) == ok {
			out = append(out, p)
		}
	}
	return out
}

// partitionResultJSON is one element of an error answer's "partitions".
type partitionResultJSON struct {
	Partition int    `json:"partition"`
	Status    string `json:"status"`
	Offset    int64  `json:"offset"`
	Records   []int  `json:"records"`
	Error     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// produceError builds a *ProduceError from an answer's per-partition
// results, or returns e as is when it has none.
func produceError(e *Error, parts []partitionResultJSON, recs []Record) error {
	if len(parts) == 0 {
		return e
	}
	pe := &ProduceError{Err: e, Offsets: make([]RecordOffset, len(recs))}
	failed := make([]bool, len(recs))
	for _, p := range parts {
		r := PartitionResult{Partition: p.Partition, Records: p.Records, BaseOffset: p.Offset}
		if p.Status != "ok" {
			r.Err = &Error{Status: e.Status, Code: CodeUnavailable, Message: "failed"}
			if p.Error != nil {
				r.Err.Code, r.Err.Message = Code(p.Error.Code), p.Error.Message
			}
		}
		for j, i := range p.Records {
			if i < 0 || i >= len(recs) {
				return fmt.Errorf("client: produce answer names record %d of %d: %w", i, len(recs), e)
			}
			pe.Offsets[i] = RecordOffset{Partition: p.Partition, Offset: -1}
			if r.Err == nil {
				pe.Offsets[i].Offset = p.Offset + int64(j)
			} else {
				failed[i] = true
			}
		}
		pe.Partitions = append(pe.Partitions, r)
	}
	for i, f := range failed {
		if f {
			pe.Failed = append(pe.Failed, recs[i])
		}
	}
	return pe
}

// Produce appends records to topic and returns once they are committed
// by a quorum of each partition's replicas, with one offset per record.
// A plain produce is not retried on 503 (it may have been stored: use a
// Producer for retries without duplicates); a 429 is. When records span
// several partitions and only some commit, the error is a *ProduceError
// saying which.
func (c *Client) Produce(ctx context.Context, topic string, records []Record) (*ProduceResult, error) {
	return c.produce(ctx, topic, records, "", 0, "")
}

// ProduceNoAck sends records with acks=none: the node answers before they
// commit and they may be lost (at-most-once). It returns how many the node
// accepted.
func (c *Client) ProduceNoAck(ctx context.Context, topic string, records []Record) (int, error) {
	r, err := c.produceRequest(topic, records, "", 0, "none")
	if err != nil {
		return 0, err
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return 0, err
	}
	var out struct {
		Accepted int `json:"accepted"`
	}
	return out.Accepted, decodeInto(resp, &out)
}

func (c *Client) produceRequest(topic string, records []Record, producer string, seq int64, acks string) (request, error) {
	r := request{method: "POST", path: "/v1/topics/" + esc(topic) + "/records" + query("acks", acks), idempotent: producer != ""}
	var err error
	if c.binary {
		r.body, r.ct = appendProduceBinary(nil, records, producer, seq), binaryType
	} else {
		r.body, err = produceJSON(records, producer, seq)
		r.ct = "application/json"
	}
	return r, err
}

func (c *Client) produce(ctx context.Context, topic string, records []Record, producer string, seq int64, acks string) (*ProduceResult, error) {
	if len(records) == 0 {
		return nil, errors.New("client: produce needs at least one record")
	}
	r, err := c.produceRequest(topic, records, producer, seq, acks)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, produceError(e, e.partitions, records)
		}
		return nil, err
	}
	var out ProduceResult
	if err := decodeInto(resp, &struct {
		Offsets   *[]RecordOffset `json:"offsets"`
		Duplicate *bool           `json:"duplicate"`
	}{&out.Offsets, &out.Duplicate}); err != nil {
		return nil, err
	}
	if len(out.Offsets) != len(records) {
		return nil, fmt.Errorf("client: produce answered %d offsets for %d records", len(out.Offsets), len(records))
	}
	return &out, nil
}

// produceJSON encodes a JSON produce body, keys and values in base64.
func produceJSON(records []Record, producer string, seq int64) ([]byte, error) {
	type rec struct {
		Key       *string           `json:"key,omitempty"`
		Value     string            `json:"value"`
		Headers   map[string]string `json:"headers,omitempty"`
		Partition *int              `json:"partition,omitempty"`
		Timestamp int64             `json:"timestamp,omitempty"`
	}
	body := struct {
		Records    []rec  `json:"records"`
		Encoding   string `json:"encoding"`
		ProducerID string `json:"producer_id,omitempty"`
		Sequence   *int64 `json:"sequence,omitempty"`
	}{Records: make([]rec, len(records)), Encoding: "base64", ProducerID: producer}
	if producer != "" {
		body.Sequence = &seq
	}
	for i, r := range records {
		out := rec{Value: base64.StdEncoding.EncodeToString(r.Value), Headers: headersOf(r), Partition: r.Partition}
		if r.Key != nil {
			k := base64.StdEncoding.EncodeToString(r.Key)
			out.Key = &k
		}
		if !r.Timestamp.IsZero() {
			out.Timestamp = r.Timestamp.UnixMilli()
		}
		body.Records[i] = out
	}
	return json.Marshal(body)
}

// DeliverAtHeader is the header that holds a record back from queue
// subscriptions (ms since the epoch, decimal).
const DeliverAtHeader = "weir-deliver-at"

// headersOf returns r's headers with DeliverAt as the weir-deliver-at header.
func headersOf(r Record) map[string]string {
	if r.DeliverAt.IsZero() {
		return r.Headers
	}
	h := make(map[string]string, len(r.Headers)+1)
	for k, v := range r.Headers {
		h[k] = v
	}
	h[DeliverAtHeader] = strconv.FormatInt(r.DeliverAt.UnixMilli(), 10)
	return h
}

// Producer is an idempotent producer of one partition: each batch carries
// the producer id and its sequence number, so the partition stores a
// batch once however often it is sent (docs/api.md "Produce"; the
// broker remembers the last 5 batches per producer and partition across
// restarts and leader changes). Its Produce is therefore retried on 503
// and transport errors, and a retry answered "duplicate" gets the
// original offsets. Calls are serialized (sequences are dense).
type Producer struct {
	c         *Client
	topic     string
	partition int
	id        string

	mu  sync.Mutex // guards seq; held for a whole Produce
	seq int64
}

// Producer returns an idempotent producer of topic's partition with the
// producer id id (at most 255 bytes; unique per writer: two writers with
// one id break each other's sequences), starting at sequence seq (0 for a
// new id; a restarted writer resumes with its last sequence + records,
// or from ExpectedSequence of an out_of_order_sequence error).
func (c *Client) Producer(topic string, partition int, id string, seq int64) *Producer {
	return &Producer{c: c, topic: topic, partition: partition, id: id, seq: seq}
}

// Sequence returns the sequence number the next batch will carry.
func (p *Producer) Sequence() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq
}

// Produce appends records (their Partition is set to the producer's) as
// one idempotent batch. On success the sequence moves past them; on
// failure it stays, so calling again with the same records is the retry.
func (p *Producer) Produce(ctx context.Context, records []Record) (*ProduceResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	recs := make([]Record, len(records))
	for i, r := range records {
		r.Partition = Part(p.partition)
		recs[i] = r
	}
	res, err := p.c.produce(ctx, p.topic, recs, p.id, p.seq, "")
	if err != nil {
		return nil, err
	}
	p.seq += int64(len(records))
	return res, nil
}
