package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// FetchedRecord is a record read from a partition (by fetch, a group
// poll or a WebSocket subscription).
type FetchedRecord struct {
	Topic     string
	Partition int
	Offset    int64
	Timestamp time.Time
	Key       []byte // nil: no key
	Value     []byte
	Headers   map[string]string
}

// recordJSON is a record of a JSON answer read with encoding=base64.
type recordJSON struct {
	Topic     string            `json:"topic"`
	Partition int               `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp int64             `json:"timestamp"`
	Key       *string           `json:"key"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers"`
}

func (r *recordJSON) record(topic string, partition int) (FetchedRecord, error) {
	out := FetchedRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: time.UnixMilli(r.Timestamp), Headers: r.Headers}
	if out.Topic == "" {
		out.Topic, out.Partition = topic, partition
	}
	var err error
	if r.Key != nil {
		if out.Key, err = base64.StdEncoding.DecodeString(*r.Key); err != nil {
			return out, fmt.Errorf("client: record key: %w", err)
		}
	}
	if out.Value, err = base64.StdEncoding.DecodeString(r.Value); err != nil {
		return out, fmt.Errorf("client: record value: %w", err)
	}
	return out, nil
}

func recordsOf(in []recordJSON, topic string, partition int) ([]FetchedRecord, error) {
	out := make([]FetchedRecord, len(in))
	for i := range in {
		var err error
		if out[i], err = in[i].record(topic, partition); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// From says where a fetch or subscription starts.
type From string

// Start positions (FetchOptions.From, Subscribe).
const (
	Earliest From = "earliest" // the log start
	Latest   From = "latest"   // the high watermark: new records only
)

// FetchOptions says what a fetch reads. The zero value reads up to 500
// records from the log start without waiting.
type FetchOptions struct {
	// Offset is the first offset to read when From is empty.
	Offset int64
	// From: Earliest or Latest instead of Offset. Default: Offset when
	// Offset > 0, else Earliest (so offset 0 of a trimmed partition reads
	// from its log start).
	From From
	// Timestamp (when non-zero) reads from the first record at or after
	// it, instead of Offset/From.
	Timestamp time.Time
	// MaxRecords (default 500, at most 10,000) and MaxBytes (default
	// 1 MiB, at most 16 MiB; at least one record is returned) bound the
	// answer.
	MaxRecords int
	MaxBytes   int
	// Wait long-polls up to this long (at most 60 s) while there is
	// nothing at the offset.
	Wait time.Duration
}

// FetchResult is a fetch's answer.
type FetchResult struct {
	Records        []FetchedRecord
	NextOffset     int64 // the offset to fetch next
	HighWatermark  int64
	LogStartOffset int64
}

// Fetch reads records of one partition by offset or time, long-polling
// with opts.Wait. It is retried on 503. Reading below the log start or
// past the high watermark is an *Error with CodeOffsetOutOfRange and the
// partition's LogStartOffset and HighWatermark.
func (c *Client) Fetch(ctx context.Context, topic string, partition int, opts FetchOptions) (*FetchResult, error) {
	off := string(opts.From)
	switch {
	case off != "":
	case opts.Offset > 0:
		off = strconv.FormatInt(opts.Offset, 10)
	default:
		off = string(Earliest)
	}
	q := []string{"offset", off}
	if !opts.Timestamp.IsZero() {
		q = []string{"timestamp", itoa(opts.Timestamp.UnixMilli())}
	}
	if opts.MaxRecords > 0 {
		q = append(q, "max_records", strconv.Itoa(opts.MaxRecords))
	}
	if opts.MaxBytes > 0 {
		q = append(q, "max_bytes", strconv.Itoa(opts.MaxBytes))
	}
	if opts.Wait > 0 {
		q = append(q, "wait_ms", itoa(ms(opts.Wait)))
	}
	r := request{method: "GET", path: fmt.Sprintf("/v1/topics/%s/partitions/%d/records", esc(topic), partition), idempotent: true}
	if c.binary {
		r.accept = binaryType
	} else {
		q = append(q, "encoding", "base64")
	}
	r.path += query(q...)
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	if resp.header.Get("Content-Type") == binaryType {
		return decodeFetchBinary(resp.body, topic, partition)
	}
	var out struct {
		Records        []recordJSON `json:"records"`
		NextOffset     int64        `json:"next_offset"`
		HighWatermark  int64        `json:"high_watermark"`
		LogStartOffset int64        `json:"log_start_offset"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return nil, fmt.Errorf("client: decode fetch answer: %w", err)
	}
	recs, err := recordsOf(out.Records, topic, partition)
	if err != nil {
		return nil, err
	}
	return &FetchResult{Records: recs, NextOffset: out.NextOffset, HighWatermark: out.HighWatermark, LogStartOffset: out.LogStartOffset}, nil
}
