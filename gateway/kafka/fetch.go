package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// encodeBatch writes records (consecutive offsets) as one uncompressed v2
// record batch. kmsg encodes the batch header and every record; each record
// goes straight into dst with its length computed beforehand (recordLen), so
// a record's bytes are copied once.
func encodeBatch(dst []byte, recs []core.Record) []byte {
	if len(recs) == 0 {
		return dst
	}
	base := recs[0].Offset
	first, maxTS := recs[0].Timestamp, recs[0].Timestamp
	size := 0
	for i := range recs {
		first, maxTS = min(first, recs[i].Timestamp), max(maxTS, recs[i].Timestamp)
		size += 32 + len(recs[i].Key) + len(recs[i].Value)
		for _, h := range recs[i].Headers {
			size += 10 + len(h.Key) + len(h.Value)
		}
	}
	rb := kmsg.RecordBatch{ // Records stays empty: kmsg appends it last, raw
		FirstOffset: base, PartitionLeaderEpoch: -1, Magic: 2,
		LastOffsetDelta: int32(recs[len(recs)-1].Offset - base),
		FirstTimestamp:  first, MaxTimestamp: maxTS,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: int32(len(recs)),
	}
	start := len(dst)
	dst = slices.Grow(dst, 64+size)
	dst = rb.AppendTo(dst)
	var kr kmsg.Record
	for i := range recs {
		r := &recs[i]
		kr = kmsg.Record{TimestampDelta64: r.Timestamp - first, OffsetDelta: int32(r.Offset - base), Key: r.Key, Value: r.Value, Headers: kr.Headers[:0]}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: []byte(h.Value)})
		}
		kr.Length = int32(recordLen(&kr))
		at := len(dst)
		dst = kr.AppendTo(dst)
		if got := len(dst) - at - varintLen(int64(kr.Length)); got != int(kr.Length) {
			// recordLen disagrees with kmsg (it cannot, for the fields set
			// above): write the length kmsg's encoding has.
			kr.Length = int32(got)
			dst = kr.AppendTo(dst[:at])
		}
	}
	b := dst[start:]
	binary.BigEndian.PutUint32(b[8:12], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:21], crc32.Checksum(b[21:], crc32c))
	return dst
}

// recordLen is the size of r's encoding after its Length varint (the
// Length field of a v2 record).
func recordLen(r *kmsg.Record) int {
	n := 1 + varintLen(r.TimestampDelta64) + varintLen(int64(r.OffsetDelta)) +
		bytesLen(r.Key) + bytesLen(r.Value) + varintLen(int64(len(r.Headers)))
	for i := range r.Headers {
		n += varintLen(int64(len(r.Headers[i].Key))) + len(r.Headers[i].Key) + bytesLen(r.Headers[i].Value)
	}
	return n
}

// bytesLen is the size of a varint-length-prefixed byte field (nil: -1).
func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

// varintLen is the size of v as a zig-zag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
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
			// As for a produce: a fetch that reaches a node Metadata does
			// not name as the leader comes from stale metadata, and the
			// client refreshes it on NOT_LEADER_OR_FOLLOWER.
			if err := c.checkLeader(t.Topic, p.Partition); err != nil {
				rp.ErrorCode = errCode(err)
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
		var reads []*fetchPart
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
			reads = append(reads, fp)
		}
		total += c.readParts(ctx, reads, maxBytes-total, total > 0)
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

// parallelReads bounds the goroutines one Fetch reads its partitions with.
const parallelReads = 8

// readParts reads each partition of parts once, from its fetch offset, into
// its response, within budget bytes in all (each within its own
// PartitionMaxBytes, and at least one record for the first when nothing
// was read yet: read tells whether the request's answer holds bytes
// already), and returns the bytes added. When every partition's own
// limit fits in budget, the partitions are read at once, on up to
// parallelReads goroutines: a fetch's reads and encodings take CPU time in
// proportion to the bytes, and a consumer waits for the whole answer.
// Otherwise they are read in order, each with what the ones before left.
func (c *conn) readParts(ctx context.Context, parts []*fetchPart, budget int, read bool) int {
	sum := 0
	for _, fp := range parts {
		sum += max(int(fp.req.PartitionMaxBytes), 1)
	}
	if len(parts) > 1 && sum <= budget {
		// At most parallelReads goroutines, whatever the number of
		// partitions a request names.
		added := make([]int, len(parts))
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(len(parts), parallelReads) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1) - 1); i < len(parts); i = int(next.Add(1) - 1) {
					added[i] = c.readPart(ctx, parts[i], max(int(parts[i].req.PartitionMaxBytes), 1))
				}
			}()
		}
		wg.Wait()
		n := 0
		for _, a := range added {
			n += a
		}
		return n
	}
	n := 0
	for _, fp := range parts {
		limit := min(int(fp.req.PartitionMaxBytes), budget-n)
		if limit <= 0 && (read || n > 0) {
			continue
		}
		n += c.readPart(ctx, fp, max(limit, 1))
	}
	return n
}

// readPart reads one partition from its fetch offset, up to limit bytes (at
// least one record), into its response, and returns the bytes added.
func (c *conn) readPart(ctx context.Context, fp *fetchPart, limit int) int {
	res, err := c.s.broker.Fetch(ctx, &core.FetchRequest{Topic: fp.topic, Partition: int(fp.req.Partition), From: core.AtOffset, Offset: fp.req.FetchOffset, MaxBytes: limit,
		MaxRecords: c.s.broker.Config().MaxFetchRecords}) // Kafka bounds bytes, not records
	if err != nil {
		var re *core.OffsetRangeError
		if errors.As(err, &re) {
			fp.rp.HighWatermark, fp.rp.LastStableOffset, fp.rp.LogStartOffset = re.HighWatermark, re.HighWatermark, re.LogStart
		}
		fp.rp.ErrorCode, fp.done = errCode(err), true
		return 0
	}
	fp.rp.HighWatermark, fp.rp.LastStableOffset, fp.rp.LogStartOffset = res.HighWatermark, res.HighWatermark, res.LogStart
	if len(res.Records) == 0 {
		return 0
	}
	before := len(fp.rp.RecordBatches)
	fp.rp.RecordBatches = encodeBatch(fp.rp.RecordBatches, res.Records)
	fp.req.FetchOffset = res.NextOffset
	fp.done = true // one read per partition and request
	return len(fp.rp.RecordBatches) - before
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
