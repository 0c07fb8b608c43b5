package core

import (
	"context"
)

// AppendBatch is one producer batch: it becomes one Raft entry and one
// segment batch, and its records get consecutive offsets.
type AppendBatch struct {
	// ProducerID and Sequence make the append idempotent when ProducerID is
	// set: Sequence is the sequence number of the first record, and each
	// producer's sequences are dense per partition.
	ProducerID string
	Sequence   int64
	// Timestamp is the broker's time when the batch was accepted, stamped
	// once by the proposer so that every replica applies the same value.
	// Records with a zero Timestamp get it.
	Timestamp int64
	Records   []Record
	// Compress asks the store to keep the records compressed when that
	// makes them noticeably smaller: in its replicated log and on disk,
	// decompressed again on every read. The Kafka listener sets it for a
	// batch its producer compressed; the topic's Compression setting
	// decides what it means (CompressBatch). A store may ignore it
	// (memstore does); reads are the same either way.
	Compress bool
}

// Stamp gives the records without a timestamp the batch's Timestamp (in
// place) and returns the batch's largest timestamp, Timestamp included:
// what a store keeps as the batch's maximum (SegmentInfo.MaxTimestamp).
func (b *AppendBatch) Stamp() (maxTimestamp int64) {
	maxTimestamp = b.Timestamp
	for i := range b.Records {
		r := &b.Records[i]
		if r.Timestamp == 0 {
			r.Timestamp = b.Timestamp
		}
		maxTimestamp = max(maxTimestamp, r.Timestamp)
	}
	return maxTimestamp
}

// AppendResult is the outcome of an append.
type AppendResult struct {
	BaseOffset int64 // offset of the first record
	Duplicate  bool  // a retry of an already appended batch: the original offsets
}

// SegmentInfo describes one segment of a partition log, for retention.
type SegmentInfo struct {
	BaseOffset   int64 // first offset the segment holds
	NextOffset   int64 // one past the last offset it holds
	MaxTimestamp int64 // largest record timestamp in it (ms)
	Bytes        int64
	Active       bool // the segment being written; never deleted by retention
	// Remote: the segment is held in object storage (tiered storage);
	// its local copy, if any, is listed separately.
	Remote bool
}

// TxnProposer is what a PartitionLog also implements when it can queue a
// state transaction without waiting for it, in order: the queue service
// then pipelines its partition work (QueueConfig.PipelineDepth). wait
// reports Applied false with no error when the proposal was provably not
// applied. raftlog's and memstore's partitions implement it (each asserts
// so at compile time, so that a change of this signature fails to build
// instead of turning pipelining off).
type TxnProposer interface {
	ProposeTxn(txn *StateTxn) (wait func(context.Context) (TxnResult, error), err error)
}

// AppendProposer is what a PartitionLog also implements when it can queue
// an append without waiting for it: appends one goroutine queues are in
// the log in the order queued, so a caller keeps several in flight and
// still has them in order (the Kafka listener pipelines a connection's
// produce requests so, Broker.QueueProduce). wait returns what Append
// would; ProposeAppend fails, having queued nothing, where this node
// cannot queue the append now (not the leader: core.ErrNotLeader). The
// implementations assert this at compile time, as for TxnProposer.
type AppendProposer interface {
	ProposeAppend(b *AppendBatch) (wait func(context.Context) (AppendResult, error), err error)
}

// PartitionLog is one partition's replicated log as the domain sees it.
// Implementations are safe for concurrent use.
type PartitionLog interface {
	// Append proposes one batch and returns once it is committed by a quorum
	// and applied on this node. Errors: *SequenceError, ErrUnavailable,
	// ErrTooLarge, context errors.
	Append(ctx context.Context, b *AppendBatch) (AppendResult, error)
	// Read returns records from this node's applied log starting at from,
	// at most maxRecords and about maxBytes (at least one record when any is
	// there). Reading at HighWatermark returns no records and no error, once
	// the log has confirmed that HighWatermark is the end (a replicated log
	// runs a ReadIndex round first, so the empty answer is not stale;
	// ErrUnavailable when it cannot); below LogStart or above HighWatermark
	// it returns *OffsetRangeError.
	Read(ctx context.Context, from int64, maxRecords, maxBytes int) ([]Record, error)
	// OffsetForTime returns the first offset whose record timestamp is >= ts,
	// or HighWatermark when there is none.
	OffsetForTime(ctx context.Context, ts int64) (int64, error)
	// Changed returns a channel closed the next time the log changes
	// (records appended or the start moved).
	Changed() <-chan struct{}
	HighWatermark() int64
	LogStart() int64
	// Segments lists the log's segments, oldest first.
	Segments() []SegmentInfo
	// TrimTo replicates a retention decision: segments wholly below offset
	// are deleted and LogStart moves to the first offset still held.
	TrimTo(ctx context.Context, offset int64) error
	// IsLeader reports whether this node leads the partition's Raft group.
	IsLeader() bool
	PartitionState
}

// TopicConfig is what a topic is created with.
type TopicConfig struct {
	Name              string
	Partitions        int
	ReplicationFactor int
	RetentionMs       int64 // -1: forever
	RetentionBytes    int64 // -1: no size limit (per partition)
	// Tiered storage (docs/tiered-storage.md). Tiered uploads closed
	// segments to object storage; LocalRetentionMs/Bytes then bound what
	// stays on the nodes' disks (-1: as long as the topic's retention).
	// SegmentBytes is the segment file size (0: the node's default).
	Tiered              bool
	SegmentBytes        int64
	LocalRetentionMs    int64
	LocalRetentionBytes int64
	// Compression is how the topic's batches are stored (docs/api.md,
	// "Topics"): CompressionProducer (also "", for topics created before
	// the setting), CompressionS2 or CompressionUncompressed.
	Compression string `json:",omitempty"`
}

// A topic's Compression settings, Kafka's compression.type values where
// Kafka has one.
const (
	// CompressionProducer: a batch is stored compressed when its producer
	// compressed it (a Kafka record batch with a codec), plain otherwise.
	CompressionProducer = "producer"
	// CompressionS2: every batch is stored compressed with S2.
	CompressionS2 = "s2"
	// CompressionUncompressed: every batch is stored plain.
	CompressionUncompressed = "uncompressed"
)

// StoredCompression is c's Compression setting, CompressionProducer for a
// topic created before the setting existed.
func (c TopicConfig) StoredCompression() string {
	if c.Compression == "" {
		return CompressionProducer
	}
	return c.Compression
}

// WorthCompressing reports whether a batch of plain bytes that compresses
// to compressed bytes is kept compressed: when that saves at least an
// eighth (less would cost more to decompress on every read than it saves).
func WorthCompressing(compressed, plain int) bool {
	return compressed <= plain-plain/8
}

// CompressBatch reports whether a store keeps a batch compressed (when that
// saves enough) under a topic's Compression setting; producerCompressed is
// the batch's AppendBatch.Compress.
func CompressBatch(setting string, producerCompressed bool) bool {
	switch setting {
	case CompressionS2:
		return true
	case CompressionUncompressed:
		return false
	}
	return producerCompressed
}

// PartitionInfo is the placement and state of one partition.
type PartitionInfo struct {
	Partition     int
	Leader        uint64
	Replicas      []uint64
	LogStart      int64
	HighWatermark int64
	// LocalStart is the first offset held on the replicas' disks (equal
	// to LogStart unless tiered storage dropped older local segments);
	// RemoteEnd is one past the last offset held in object storage (0:
	// nothing uploaded).
	LocalStart int64
	RemoteEnd  int64
}

// TopicInfo is a topic as the metadata knows it.
type TopicInfo struct {
	TopicConfig
	CreatedAt int64
}

// GroupOffset is a consumer group's committed position on one partition:
// Offset is the next offset to read.
type GroupOffset struct {
	Topic     string
	Partition int
	Offset    int64
}

// Store is the replicated state the broker runs on: topic metadata, group
// offsets, and the partition logs. raftlog implements it on Dragonboat.
type Store interface {
	CreateTopic(ctx context.Context, cfg TopicConfig) (TopicInfo, error)
	DeleteTopic(ctx context.Context, name string) error
	// AddPartitions grows topic to count partitions in all: the new ones
	// are placed as CreateTopic places a topic's, with the topic's
	// replication factor, and start empty. It returns the topic as grown.
	// ErrTopicNotFound; ErrBadRequest when count is not above the
	// topic's partition count (partitions are never removed).
	AddPartitions(ctx context.Context, topic string, count int) (TopicInfo, error)
	// Topic and Topics read this node's applied copy of the metadata.
	Topic(name string) (TopicInfo, error)
	Topics() []TopicInfo
	// Partition returns the log of one partition. ErrTopicNotFound,
	// ErrPartitionNotFound.
	Partition(topic string, partition int) (PartitionLog, error)
	// PartitionInfo returns placement and leadership of one partition.
	PartitionInfo(topic string, partition int) (PartitionInfo, error)
	CommitOffsets(ctx context.Context, group string, offsets []GroupOffset) error
	GroupOffsets(group string) []GroupOffset
	// Ready reports whether this node can take writes.
	Ready() bool
	// NodeCount is the number of nodes in the cluster.
	NodeCount() int
	Catalog
}
