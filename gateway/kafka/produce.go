package kafka

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"time"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/core/quota"
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// maxDecompressed bounds what one compressed batch may expand to.
const maxDecompressed = 128 << 20

// batch is one decoded record batch of a produce request.
type batch struct {
	producerID    int64
	producerEpoch int16
	sequence      int32
	records       []core.Record
	compress      bool // store compressed (core.AppendBatch.Compress)
}

// errCorrupt marks a record batch that fails to decode or its CRC.
var errCorrupt = kerr.CorruptMessage

// decodeBatches splits a produce partition's Records bytes into v2 record
// batches, checks each CRC32C and decompresses the records.
func decodeBatches(raw []byte) ([]batch, error) {
	var out []batch
	for len(raw) > 0 {
		if len(raw) < 61 {
			return nil, fmt.Errorf("%w: truncated record batch", errCorrupt)
		}
		length := int(int32(binary.BigEndian.Uint32(raw[8:12])))
		if length < 49 || length > len(raw)-12 {
			return nil, fmt.Errorf("%w: record batch length %d", errCorrupt, length)
		}
		one := raw[:12+length]
		raw = raw[12+length:]
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(one); err != nil {
			return nil, fmt.Errorf("%w: %v", errCorrupt, err)
		}
		if rb.Magic != 2 {
			return nil, fmt.Errorf("%w: record batch magic %d (only v2 is supported)", kerr.UnsupportedForMessageFormat, rb.Magic)
		}
		if uint32(rb.CRC) != crc32.Checksum(one[21:], crc32c) {
			return nil, fmt.Errorf("%w: record batch CRC mismatch", errCorrupt)
		}
		if rb.Attributes&0x10 != 0 {
			return nil, fmt.Errorf("%w: transactions are not supported by Weir", kerr.InvalidTxnState)
		}
		if rb.Attributes&0x20 != 0 {
			return nil, fmt.Errorf("%w: control batches are not accepted from producers", kerr.InvalidRecord)
		}
		if rb.NumRecords < 0 {
			return nil, fmt.Errorf("%w: %d records", errCorrupt, rb.NumRecords)
		}
		data, err := decompress(rb.Attributes&0x07, rb.Records)
		if err != nil {
			return nil, err
		}
		b := batch{producerID: rb.ProducerID, producerEpoch: rb.ProducerEpoch, sequence: rb.FirstSequence}
		// compression.type=producer: a batch its producer compressed is
		// stored compressed, unless the producer's codec found too little to
		// save for S2 to be worth trying (the store decides on S2's result).
		b.compress = rb.Attributes&0x07 != 0 && core.WorthCompressing(len(rb.Records), len(data))
		// At least 7 bytes per record: bound the count before allocating.
		if int(rb.NumRecords) > len(data)/7+1 {
			return nil, fmt.Errorf("%w: %d records in %d bytes", errCorrupt, rb.NumRecords, len(data))
		}
		b.records = make([]core.Record, 0, rb.NumRecords)
		for i := int32(0); i < rb.NumRecords; i++ {
			n, used := binary.Varint(data)
			if used <= 0 || n < 0 || int64(len(data)-used) < n {
				return nil, fmt.Errorf("%w: truncated record %d", errCorrupt, i)
			}
			var kr kmsg.Record
			if err := kr.ReadFrom(data[:used+int(n)]); err != nil {
				return nil, fmt.Errorf("%w: record %d: %v", errCorrupt, i, err)
			}
			data = data[used+int(n):]
			rec := core.Record{Key: kr.Key, Value: kr.Value}
			if rec.Value == nil {
				rec.Value = []byte{}
			}
			if ts := rb.FirstTimestamp + kr.TimestampDelta64; rb.FirstTimestamp >= 0 && ts >= 0 {
				rec.Timestamp = ts
			}
			for _, h := range kr.Headers {
				rec.Headers = append(rec.Headers, core.Header{Key: h.Key, Value: string(h.Value)})
			}
			b.records = append(b.records, rec)
		}
		if len(data) != 0 {
			return nil, fmt.Errorf("%w: %d bytes after the last record", errCorrupt, len(data))
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no record batch", errCorrupt)
	}
	return out, nil
}

var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

func decompress(codec int16, src []byte) ([]byte, error) {
	limited := func(r io.Reader) ([]byte, error) {
		b, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
		if err != nil {
			return nil, fmt.Errorf("%w: decompress: %v", errCorrupt, err)
		}
		if len(b) > maxDecompressed {
			return nil, fmt.Errorf("%w: a batch decompresses to more than %d bytes", kerr.MessageTooLarge, maxDecompressed)
		}
		return b, nil
	}
	switch codec {
	case 0:
		return src, nil
	case 1:
		zr, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", errCorrupt, err)
		}
		return limited(zr)
	case 2:
		if bytes.HasPrefix(src, xerialMagic) && len(src) >= 16 {
			// The Java client's xerial framing: 16-byte header, then
			// blocks of int32 length + snappy block.
			var out []byte
			for p := src[16:]; len(p) > 0; {
				if len(p) < 4 {
					return nil, fmt.Errorf("%w: truncated xerial snappy block", errCorrupt)
				}
				n := int(binary.BigEndian.Uint32(p))
				if n < 0 || n > len(p)-4 {
					return nil, fmt.Errorf("%w: xerial snappy block length", errCorrupt)
				}
				dl, err := snappy.DecodedLen(p[4 : 4+n])
				if err != nil || dl > maxDecompressed-len(out) {
					return nil, fmt.Errorf("%w: snappy block", errCorrupt)
				}
				blk, err := snappy.Decode(nil, p[4:4+n])
				if err != nil {
					return nil, fmt.Errorf("%w: snappy: %v", errCorrupt, err)
				}
				out = append(out, blk...)
				p = p[4+n:]
			}
			return out, nil
		}
		dl, err := snappy.DecodedLen(src)
		if err != nil || dl > maxDecompressed {
			return nil, fmt.Errorf("%w: snappy block", errCorrupt)
		}
		b, err := snappy.Decode(nil, src)
		if err != nil {
			return nil, fmt.Errorf("%w: snappy: %v", errCorrupt, err)
		}
		return b, nil
	case 3:
		return limited(lz4.NewReader(bytes.NewReader(src)))
	case 4:
		zr, err := zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecompressed))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", errCorrupt, err)
		}
		defer zr.Close()
		return limited(zr)
	}
	return nil, fmt.Errorf("%w: compression codec %d", kerr.UnsupportedCompressionType, codec)
}

// weirProducer names a Kafka producer (id and epoch) as a Weir producer id.
func weirProducer(id int64, epoch int16) string {
	return "kafka-" + strconv.FormatInt(id, 10) + "-" + strconv.Itoa(int(epoch))
}

// produce serves a Produce request in two steps. In the connection's
// reading goroutine it decodes the request, checks its ACLs and quota and,
// with acks 1 or all, queues every partition's batches on their logs
// (Broker.QueueProduce), in request order, so that the next request's
// batches go after them; done then waits for the outcomes and completes
// the response. With acks 0 the appends are started and done is nil (no
// response). A transactional request is refused at once.
func (c *conn) produce(ctx context.Context, r *kmsg.ProduceRequest) (done func() kmsg.Response) {
	resp := r.ResponseKind().(*kmsg.ProduceResponse)
	if r.TransactionID != nil {
		for _, t := range r.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.TransactionalIDAuthorizationFailed.Code
				rp.ErrorMessage = kmsg.StringPtr("Weir does not support Kafka transactions")
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return func() kmsg.Response { return resp }
	}
	timeout := time.Duration(r.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	parts, size := c.decodeProduce(r)
	// The quota is charged the decoded records' bytes before anything is
	// written: a refusal writes nothing (quota.go).
	qerr := c.reserve(quota.Cost{Requests: 1, Produce: size}, c.s.cfg.Quotas.MaxWait())
	if r.Acks == 0 {
		c.produceNoAck(r, parts, qerr)
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	var waits []func()
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(r.Topics))
	for i, t := range r.Topics {
		rt := &resp.Topics[i]
		*rt = kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			rp := &rt.Partitions[j]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LogAppendTime = -1
			err := parts[i][j].err
			if err == nil {
				err = qerr
			}
			var w func()
			if err == nil {
				w, err = c.queuePartition(pctx, t.Topic, p.Partition, parts[i][j].batches, rp)
			}
			if err != nil {
				failPartition(rp, err)
				continue
			}
			waits = append(waits, w)
		}
	}
	return func() kmsg.Response {
		defer cancel()
		for _, w := range waits {
			w()
		}
		return resp
	}
}

func failPartition(rp *kmsg.ProduceResponseTopicPartition, err error) {
	rp.ErrorCode, rp.ErrorMessage, rp.BaseOffset = errCode(err), errMsg(err), -1
}

// produceNoAck starts the appends of an acks=0 request; nothing answers.
func (c *conn) produceNoAck(r *kmsg.ProduceRequest, parts [][]producePart, qerr error) {
	if qerr != nil {
		return
	}
	for i, t := range r.Topics {
		for j, p := range t.Partitions {
			if parts[i][j].err != nil || c.checkLeader(t.Topic, p.Partition) != nil {
				continue
			}
			for _, b := range parts[i][j].batches {
				if req := coreProduce(t.Topic, p.Partition, b); req != nil {
					c.s.broker.ProduceNoAck(c.s.ctx, req, 30*time.Second) // the append ends at Close
				}
			}
		}
	}
}

// producePart is one partition of a produce request, decoded once.
type producePart struct {
	batches []batch
	err     error // not authorized, or not decodable: nothing is written
}

// decodeProduce checks the ACLs and decodes every partition's batches of
// r (by topic, then partition), with the bytes of the decoded records.
func (c *conn) decodeProduce(r *kmsg.ProduceRequest) ([][]producePart, int64) {
	parts := make([][]producePart, len(r.Topics))
	var size int64
	for i, t := range r.Topics {
		ok := c.allowed("Produce", auth.Topic, t.Topic, auth.Write)
		parts[i] = make([]producePart, len(t.Partitions))
		for j, p := range t.Partitions {
			in := &parts[i][j]
			if !ok {
				in.err = kerr.TopicAuthorizationFailed
				continue
			}
			if in.batches, in.err = decodeBatches(p.Records); in.err != nil {
				continue
			}
			for _, b := range in.batches {
				for k := range b.records {
					size += int64(b.records[k].Size())
				}
			}
		}
	}
	return parts, size
}

// checkLeader answers NOT_LEADER_OR_FOLLOWER where this node does not lead
// the partition: Metadata named the Raft leader, so a produce that reaches
// another node means the client's metadata is stale, and it refreshes.
func (c *conn) checkLeader(topic string, partition int32) error {
	if c.s.cfg.Cluster == nil {
		return nil
	}
	pi, err := c.s.broker.Store().PartitionInfo(topic, int(partition))
	if err != nil {
		return err
	}
	self := int32(c.s.cfg.NodeID)
	if kafkaLeader(pi, self, c.s.brokers()) != self {
		return fmt.Errorf("%w: node %d leads partition %d of %q", kerr.NotLeaderForPartition, pi.Leader, partition, topic)
	}
	return nil
}

// coreProduce is one decoded record batch as a produce to one partition
// (nil when it has no records).
func coreProduce(topic string, partition int32, b batch) *core.ProduceRequest {
	if len(b.records) == 0 {
		return nil
	}
	req := &core.ProduceRequest{Topic: topic, Records: make([]core.ProduceRecord, len(b.records)), Compress: b.compress}
	for j, rec := range b.records {
		req.Records[j] = core.ProduceRecord{Record: rec, Partition: int(partition)}
	}
	if b.producerID >= 0 {
		req.ProducerID, req.Sequence = weirProducer(b.producerID, b.producerEpoch), int64(b.sequence)
	}
	return req
}

// queuePartition queues a partition's batches, in order; wait fills rp with
// their outcome. An error means nothing was queued.
func (c *conn) queuePartition(ctx context.Context, topic string, partition int32, batches []batch, rp *kmsg.ProduceResponseTopicPartition) (wait func(), err error) {
	if err := c.checkLeader(topic, partition); err != nil {
		return nil, err
	}
	var waits []func(context.Context) (*core.ProduceResult, error)
	var qerr error // a later batch that could not be queued fails the partition
	for _, b := range batches {
		req := coreProduce(topic, partition, b)
		if req == nil {
			continue
		}
		w, err := c.s.broker.QueueProduce(ctx, req)
		if err != nil {
			if len(waits) == 0 {
				return nil, err
			}
			qerr = err
			break
		}
		waits = append(waits, w)
	}
	return func() {
		err := qerr
		for i, w := range waits {
			res, werr := w(ctx)
			if werr != nil {
				err = cmp.Or(err, werr)
				continue
			}
			if i == 0 {
				rp.BaseOffset = res.Offsets[0].Offset
			}
		}
		if err != nil {
			failPartition(rp, err)
			return
		}
		if pi, err := c.s.broker.Store().PartitionInfo(topic, int(partition)); err == nil {
			rp.LogStartOffset = pi.LogStart
		}
	}, nil
}

// producerIDs hands out Kafka producer ids: random 62-bit numbers, so ids
// are unique across nodes and restarts without coordination; Weir's
// idempotence state (keyed by "kafka-<id>-<epoch>") is in the partition
// state machines and survives restart and leader change.
type producerIDs struct{}

func newProducerIDs() *producerIDs { return &producerIDs{} }

func (*producerIDs) next() (int64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	return int64(binary.BigEndian.Uint64(b[:]) >> 2), nil
}

func (c *conn) initProducerID(_ context.Context, r *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := r.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if r.TransactionalID != nil {
		// Transactions are not supported: a clear, non-retriable error.
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
	if r.ProducerID >= 0 && r.ProducerEpoch >= 0 {
		// A client bumping its epoch (KIP-360) keeps its id: the next epoch
		// is a fresh Weir producer whose sequences start at 0.
		if r.ProducerEpoch == 32767 {
			resp.ErrorCode = kerr.InvalidProducerEpoch.Code
			return resp
		}
		resp.ProducerID, resp.ProducerEpoch = r.ProducerID, r.ProducerEpoch+1
		return resp
	}
	id, err := c.s.pids.next()
	if err != nil {
		resp.ErrorCode = kerr.UnknownServerError.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}
