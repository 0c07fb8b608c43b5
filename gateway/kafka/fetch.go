package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// encodeBatch writes records (consecutive offsets) as one uncompressed v2
// record batch.
func encodeBatch(dst []byte, recs []core.Record) []byte {
	if len(recs) == 0 {
		return dst
	}
	base := recs[0].Offset
	first, maxTS := recs[0].Timestamp, recs[0].Timestamp
	for _, r := range recs {
		first, maxTS = min(first, r.Timestamp), max(maxTS, r.Timestamp)
	}
	size := 0
	for i := range recs {
		size += 32 + len(recs[i].Key) + len(recs[i].Value)
		for _, h := range recs[i].Headers {
			size += 10 + len(h.Key) + len(h.Value)
		}
	}
	body := make([]byte, 0, size)
	var scratch []byte // one record encoded with Length 0, reused
	var kr kmsg.Record
	for i := range recs {
		r := &recs[i]
		kr = kmsg.Record{TimestampDelta64: r.Timestamp - first, OffsetDelta: int32(r.Offset - base), Key: r.Key, Value: r.Value, Headers: kr.Headers[:0]}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: []byte(h.Value)})
		}
		// Length is everything after the length varint: encode once with
		// Length 0 (one byte), then write the real length before the rest.
		scratch = kr.AppendTo(scratch[:0])
		body = binary.AppendVarint(body, int64(len(scratch)-1))
		body = append(body, scratch[1:]...)
	}
	rb := kmsg.RecordBatch{
		FirstOffset: base, PartitionLeaderEpoch: -1, Magic: 2,
		LastOffsetDelta: int32(recs[len(recs)-1].Offset - base),
		FirstTimestamp:  first, MaxTimestamp: maxTS,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: int32(len(recs)), Records: body,
	}
	start := len(dst)
	dst = rb.AppendTo(dst)
	b := dst[start:]
	binary.BigEndian.PutUint32(b[8:12], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:21], crc32.Checksum(b[21:], crc32c))
	return dst
}

type fetchPart struct {
	topic string
	rp    *kmsg.FetchResponseTopicPartition
	req   kmsg.FetchRequestTopicPartition
	done  bool
}

func (c *conn) fetch(ctx context.Context, r *kmsg.FetchRequest) *kmsg.FetchResponse {
	resp := r.ResponseKind().(*kmsg.FetchResponse)
	var parts []*fetchPart
	for _, t := range r.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = t.Topic
		ok := c.allowed("Fetch", auth.Topic, t.Topic, auth.Read)
		rt.Partitions = make([]kmsg.FetchResponseTopicPartition, len(t.Partitions))
		for i, p := range t.Partitions {
			rp := &rt.Partitions[i]
			*rp = kmsg.NewFetchResponseTopicPartition()
			rp.Partition, rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = p.Partition, -1, -1, -1
			if !ok {
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				continue
			}
			parts = append(parts, &fetchPart{topic: t.Topic, rp: rp, req: p})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	maxBytes := int(r.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = 52428800
	}
	maxBytes = min(maxBytes, c.s.broker.Config().MaxFetchBytes)
	wait := time.Duration(r.MaxWaitMillis) * time.Millisecond
	deadline := time.Now().Add(min(wait, c.s.broker.Config().MaxWait))
	var timer *time.Timer
	total := 0
	for {
		var changed []<-chan struct{}
		for _, fp := range parts {
			if fp.done {
				continue
			}
			log, err := c.s.broker.Store().Partition(fp.topic, int(fp.req.Partition))
			if err != nil {
				fp.rp.ErrorCode, fp.done = errCode(err), true
				continue
			}
			changed = append(changed, log.Changed())
			budget := min(int(fp.req.PartitionMaxBytes), maxBytes-total)
			if budget <= 0 && total > 0 {
				continue
			}
			res, err := c.s.broker.Fetch(ctx, &core.FetchRequest{Topic: fp.topic, Partition: int(fp.req.Partition), From: core.AtOffset, Offset: fp.req.FetchOffset, MaxBytes: max(budget, 1),
				MaxRecords: c.s.broker.Config().MaxFetchRecords}) // Kafka bounds bytes, not records
			if err != nil {
				var re *core.OffsetRangeError
				if errors.As(err, &re) {
					fp.rp.HighWatermark, fp.rp.LastStableOffset, fp.rp.LogStartOffset = re.HighWatermark, re.HighWatermark, re.LogStart
				}
				fp.rp.ErrorCode, fp.done = errCode(err), true
				continue
			}
			fp.rp.HighWatermark, fp.rp.LastStableOffset, fp.rp.LogStartOffset = res.HighWatermark, res.HighWatermark, res.LogStart
			if len(res.Records) > 0 {
				fp.rp.RecordBatches = encodeBatch(fp.rp.RecordBatches, res.Records)
				total += len(fp.rp.RecordBatches)
				fp.req.FetchOffset = res.NextOffset
				fp.done = true // one read per partition and request
			}
		}
		if total >= max(1, int(r.MinBytes)) || total >= maxBytes || len(changed) == 0 || !time.Now().Before(deadline) {
			return resp
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
			defer timer.Stop()
		}
		if !waitAny(ctx, changed, timer.C) {
			return resp
		}
	}
}

// waitAny blocks until one channel of chs is closed (true), or timeout
// fires or ctx ends (false).
func waitAny(ctx context.Context, chs []<-chan struct{}, timeout <-chan time.Time) bool {
	stop := make(chan struct{})
	defer close(stop)
	woke := make(chan struct{}, 1)
	if len(chs) == 1 {
		select {
		case <-chs[0]:
			return true
		case <-timeout:
			return false
		case <-ctx.Done():
			return false
		}
	}
	for _, ch := range chs {
		go func() {
			select {
			case <-ch:
				select {
				case woke <- struct{}{}:
				default:
				}
			case <-stop:
			}
		}()
	}
	select {
	case <-woke:
		return true
	case <-timeout:
		return false
	case <-ctx.Done():
		return false
	}
}

func (c *conn) listOffsets(ctx context.Context, r *kmsg.ListOffsetsRequest) *kmsg.ListOffsetsResponse {
	resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		ok := c.allowed("ListOffsets", auth.Topic, t.Topic, auth.Describe)
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition, rp.Timestamp, rp.Offset, rp.LeaderEpoch = p.Partition, -1, -1, -1
			if !ok {
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			log, err := c.s.broker.Store().Partition(t.Topic, int(p.Partition))
			if err != nil {
				rp.ErrorCode = errCode(err)
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			switch p.Timestamp {
			case -2: // earliest
				rp.Offset = log.LogStart()
			case -1: // latest
				rp.Offset = log.HighWatermark()
			case -3: // max timestamp (KIP-734): not tracked; answer latest
				rp.Offset = log.HighWatermark()
			default:
				if p.Timestamp < 0 {
					rp.ErrorCode = kerr.InvalidRequest.Code
					break
				}
				off, err := log.OffsetForTime(ctx, p.Timestamp)
				if err != nil {
					rp.ErrorCode = errCode(err)
					break
				}
				if off >= log.HighWatermark() {
					break // no record at or after the time: offset -1
				}
				rp.Offset, rp.Timestamp = off, p.Timestamp
				if recs, err := log.Read(ctx, off, 1, 1); err == nil && len(recs) > 0 {
					rp.Timestamp = recs[0].Timestamp
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
