package client

import (
	"context"
	"encoding/json"
	"fmt"
)

// TopicConfig is a topic to create. Zero fields take the broker's
// defaults: 1 partition, replication factor min(3, nodes), retention 7
// days, no size limit; -1 retention means forever / no limit.
type TopicConfig struct {
	Name              string `json:"name"`
	Partitions        int    `json:"partitions,omitempty"`
	ReplicationFactor int    `json:"replication_factor,omitempty"`
	RetentionMs       int64  `json:"retention_ms,omitempty"`
	RetentionBytes    int64  `json:"retention_bytes,omitempty"`
	// Tiered storage (docs/tiered-storage.md): closed segments go to the
	// cluster's object storage; local copies are kept by the local
	// retention. SegmentBytes 0: the node's default.
	Tiered              bool  `json:"tiered,omitempty"`
	SegmentBytes        int64 `json:"segment_bytes,omitempty"`
	LocalRetentionMs    int64 `json:"local_retention_ms,omitempty"`
	LocalRetentionBytes int64 `json:"local_retention_bytes,omitempty"`
	// Compression: "producer" (the default: compressed when a Kafka
	// producer compressed the batch), "s2" (every batch) or "uncompressed".
	Compression string `json:"compression,omitempty"`
}

// TopicSummary is a topic as listed.
type TopicSummary struct {
	Name              string `json:"name"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	RetentionMs       int64  `json:"retention_ms"`
	RetentionBytes    int64  `json:"retention_bytes"`
}

// PartitionInfo is a partition's placement and offsets.
type PartitionInfo struct {
	Partition      int      `json:"partition"`
	Leader         uint64   `json:"leader"` // node id, 0: none known
	Replicas       []uint64 `json:"replicas"`
	LogStartOffset int64    `json:"log_start_offset"`
	HighWatermark  int64    `json:"high_watermark"`
	// LocalStartOffset is the first offset on the nodes' disks, and
	// RemoteEndOffset one past the last in object storage (0: none).
	LocalStartOffset int64 `json:"local_start_offset"`
	RemoteEndOffset  int64 `json:"remote_end_offset"`
}

// Topic is a topic with its partitions.
type Topic struct {
	Name              string          `json:"name"`
	Partitions        []PartitionInfo `json:"partitions"`
	ReplicationFactor int             `json:"replication_factor"`
	RetentionMs       int64           `json:"retention_ms"`
	RetentionBytes    int64           `json:"retention_bytes"`
	// Tiered storage settings, effective values (docs/tiered-storage.md).
	Tiered              bool  `json:"tiered"`
	SegmentBytes        int64 `json:"segment_bytes"`
	LocalRetentionMs    int64 `json:"local_retention_ms"`
	LocalRetentionBytes int64 `json:"local_retention_bytes"`
	CreatedAtMs         int64 `json:"created_at"`
	// Compression is how the topic's batches are stored (TopicConfig).
	Compression string `json:"compression"`
}

// CreateTopic creates a topic (CodeTopicExists when it exists) and
// returns it. Not retried on 503.
func (c *Client) CreateTopic(ctx context.Context, cfg TopicConfig) (*Topic, error) {
	var t Topic
	if err := c.call(ctx, "POST", "/v1/topics", cfg, &t, false); err != nil {
		return nil, err
	}
	return &t, nil
}

// Topics lists the topics.
func (c *Client) Topics(ctx context.Context) ([]TopicSummary, error) {
	var out struct {
		Topics []TopicSummary `json:"topics"`
	}
	return out.Topics, c.call(ctx, "GET", "/v1/topics", nil, &out, true)
}

// Topic describes a topic: its partitions with leaders and offsets.
func (c *Client) Topic(ctx context.Context, name string) (*Topic, error) {
	var t Topic
	if err := c.call(ctx, "GET", "/v1/topics/"+esc(name), nil, &t, true); err != nil {
		return nil, err
	}
	return &t, nil
}

// AddPartitions grows a topic to partitions in all (not an increment)
// and returns it. CodeBadRequest when partitions is not above the topic's
// count; Kafka's keyed-record caveat applies: a key may map to another
// partition after the growth. Not retried on 503.
func (c *Client) AddPartitions(ctx context.Context, name string, partitions int) (*Topic, error) {
	var t Topic
	body := struct {
		Partitions int `json:"partitions"`
	}{partitions}
	if err := c.call(ctx, "POST", "/v1/topics/"+esc(name)+"/partitions", body, &t, false); err != nil {
		return nil, err
	}
	return &t, nil
}

// DeleteTopic deletes a topic and its records.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", "/v1/topics/"+esc(name), nil, nil, true)
}

// GroupOffset is a committed offset of a group (the next offset to read).
type GroupOffset struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	Lag       int64  `json:"lag,omitempty"` // in GroupOffsets answers
}

// CommitOffsets stores offsets of group without membership (no fencing).
func (c *Client) CommitOffsets(ctx context.Context, group string, offsets []GroupOffset) error {
	return c.call(ctx, "POST", "/v1/groups/"+esc(group)+"/offsets", map[string]any{"offsets": offsets}, nil, true)
}

// GroupOffsets returns group's committed offsets with their lag (of topic
// only, when topic is not empty).
func (c *Client) GroupOffsets(ctx context.Context, group, topic string) ([]GroupOffset, error) {
	var out struct {
		Offsets []GroupOffset `json:"offsets"`
	}
	return out.Offsets, c.call(ctx, "GET", "/v1/groups/"+esc(group)+"/offsets"+query("topic", topic), nil, &out, true)
}

// GroupSummary is a consumer group as listed.
type GroupSummary struct {
	Name       string `json:"name"`
	Generation int64  `json:"generation"`
	Members    int    `json:"members"`
}

// Groups lists the consumer groups.
func (c *Client) Groups(ctx context.Context) ([]GroupSummary, error) {
	var out struct {
		Groups []GroupSummary `json:"groups"`
	}
	return out.Groups, c.call(ctx, "GET", "/v1/groups", nil, &out, true)
}

// Assignment is the partitions of one topic assigned to a member.
type Assignment struct {
	Topic      string `json:"topic"`
	Partitions []int  `json:"partitions"`
}

// GroupMemberInfo is a member in a group's description.
type GroupMemberInfo struct {
	ID               string       `json:"id"`
	ClientID         string       `json:"client_id"`
	Kind             string       `json:"kind"` // http or ws
	Node             uint64       `json:"node"`
	Topics           []string     `json:"topics"`
	SessionTimeoutMs int64        `json:"session_timeout_ms"`
	JoinedMs         int64        `json:"joined_ms"`
	LastHeartbeatMs  int64        `json:"last_heartbeat_ms"`
	Assignment       []Assignment `json:"assignment"`
}

// GroupPartition is a partition in a group's description.
type GroupPartition struct {
	Topic           string `json:"topic"`
	Partition       int    `json:"partition"`
	Member          string `json:"member"`
	CommittedOffset *int64 `json:"committed_offset"` // nil: none committed
	LogStartOffset  int64  `json:"log_start_offset"`
	HighWatermark   int64  `json:"high_watermark"`
	Lag             int64  `json:"lag"`
}

// GroupDescription is a group's members, assignment and lag.
type GroupDescription struct {
	Group      string            `json:"group"`
	Generation int64             `json:"generation"`
	State      string            `json:"state"` // stable or empty
	TotalLag   int64             `json:"total_lag"`
	Members    []GroupMemberInfo `json:"members"`
	Partitions []GroupPartition  `json:"partitions"`
	// Raw is the whole answer, with members newer servers may add.
	Raw json.RawMessage `json:"-"`
}

// Group describes a consumer group (CodeGroupNotFound when it has
// neither members nor offsets).
func (c *Client) Group(ctx context.Context, group string) (*GroupDescription, error) {
	var raw json.RawMessage
	if err := c.call(ctx, "GET", "/v1/groups/"+esc(group), nil, &raw, true); err != nil {
		return nil, err
	}
	d := &GroupDescription{Raw: raw}
	if err := json.Unmarshal(raw, d); err != nil {
		return nil, fmt.Errorf("client: decode group: %w", err)
	}
	return d, nil
}
