package kafka

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"sync"
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

func (c *conn) produce(ctx context.Context, r *kmsg.ProduceRequest) kmsg.Response {
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
		return resp
	}
	timeout := time.Duration(r.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	parts, size := c.decodeProduce(r)
	// The quota is charged the decoded records' bytes before anything is
	// written: a refusal writes nothing (quota.go).
	qerr := c.reserve(quota.Cost{Requests: 1, Produce: size}, c.s.cfg.Quotas.MaxWait())
	// The partitions of a request are independent Raft logs: append to all
	// at once, each answer in its own slot of the response.
	var wg sync.WaitGroup
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
			fail := func(err error) { rp.ErrorCode, rp.ErrorMessage, rp.BaseOffset = errCode(err), errMsg(err), -1 }
			err := parts[i][j].err
			if err == nil {
				err = qerr
			}
			if err != nil {
				fail(err)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.producePartition(pctx, r.Acks, t.Topic, p.Partition, parts[i][j].batches, rp); err != nil {
					fail(err)
				}
			}()
		}
	}
	wg.Wait()
	if r.Acks == 0 {
		return nil
	}
	return resp
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

func (c *conn) producePartition(ctx context.Context, acks int16, topic string, partition int32, batches []batch, rp *kmsg.ProduceResponseTopicPartition) error {
	if c.s.cfg.Cluster != nil {
		// Metadata named the Raft leader: a produce that reaches another
		// node means the client's metadata is stale, so it refreshes.
		pi, err := c.s.broker.Store().PartitionInfo(topic, int(partition))
		if err != nil {
			return err
		}
		self := int32(c.s.cfg.NodeID)
		if kafkaLeader(pi, self, c.s.brokers()) != self {
			return fmt.Errorf("%w: node %d leads partition %d of %q", kerr.NotLeaderForPartition, pi.Leader, partition, topic)
		}
	}
	for i, b := range batches {
		req := &core.ProduceRequest{Topic: topic, Records: make([]core.ProduceRecord, len(b.records))}
		for j, rec := range b.records {
			req.Records[j] = core.ProduceRecord{Record: rec, Partition: int(partition)}
		}
		if b.producerID >= 0 {
			req.ProducerID, req.Sequence = weirProducer(b.producerID, b.producerEpoch), int64(b.sequence)
		}
		if len(req.Records) == 0 {
			continue
		}
		if acks == 0 {
			if err := c.s.broker.ProduceNoAck(c.s.ctx, req, 30*time.Second); err != nil { // the append ends at Close
				return err
			}
			continue
		}
		res, err := c.s.broker.Produce(ctx, req)
		if err != nil {
			return err
		}
		if i == 0 {
			rp.BaseOffset = res.Offsets[0].Offset
		}
	}
	if pi, err := c.s.broker.Store().PartitionInfo(topic, int(partition)); err == nil {
		rp.LogStartOffset = pi.LogStart
	}
	return nil
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
