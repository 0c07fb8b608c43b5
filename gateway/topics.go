package gateway

import (
	"encoding/json"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// decodeJSON decodes a request body strictly: unknown fields and trailing
// data are errors that name what was wrong.
func decodeJSON(body []byte, v any) error {
	return decodeStrict(body, v)
}

type topicJSON struct {
	Name              string          `json:"name"`
	Partitions        json.RawMessage `json:"partitions,omitempty"`
	ReplicationFactor int             `json:"replication_factor"`
	RetentionMs       int64           `json:"retention_ms"`
	RetentionBytes    int64           `json:"retention_bytes"`
	CreatedAt         int64           `json:"created_at,omitempty"`
	storageJSON
	// Mirror: the topic mirrors a cluster link's source topic (links.go).
	Mirror *topicMirrorJSON `json:"mirror,omitempty"`
}

// storageJSON is how a topic is stored: compression (docs/api.md,
// "Topics") and tiered storage (docs/tiered-storage.md).
type storageJSON struct {
	Compression         string `json:"compression"`
	Tiered              bool   `json:"tiered"`
	SegmentBytes        int64  `json:"segment_bytes"`
	LocalRetentionMs    int64  `json:"local_retention_ms"`
	LocalRetentionBytes int64  `json:"local_retention_bytes"`
}

func storageOf(c core.TopicConfig) storageJSON {
	return storageJSON{Compression: c.StoredCompression(), Tiered: c.Tiered, SegmentBytes: c.SegmentBytes, LocalRetentionMs: c.LocalRetentionMs, LocalRetentionBytes: c.LocalRetentionBytes}
}

type partitionJSON struct {
	Partition     int      `json:"partition"`
	Leader        uint64   `json:"leader"`
	Replicas      []uint64 `json:"replicas"`
	LogStart      int64    `json:"log_start_offset"`
	HighWatermark int64    `json:"high_watermark"`
	LocalStart    int64    `json:"local_start_offset"`
	RemoteEnd     int64    `json:"remote_end_offset"`
}

type createTopicReq struct {
	Name              string `json:"name" need:"topic:create"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	RetentionMs       int64  `json:"retention_ms"`
	RetentionBytes    int64  `json:"retention_bytes"`
	storageJSON
}

func (r *createTopicReq) parse(*call) error {
	if r.Partitions < 0 || r.ReplicationFactor < 0 {
		return core.Invalidf("partitions and replication_factor must be positive")
	}
	return nil
}

func (s *Server) createTopic(c *call, req *createTopicReq) {
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	_, err := s.broker.CreateTopic(rctx, core.TopicConfig{
		Name: req.Name, Partitions: req.Partitions, ReplicationFactor: req.ReplicationFactor,
		RetentionMs: req.RetentionMs, RetentionBytes: req.RetentionBytes,
		Tiered: req.Tiered, SegmentBytes: req.SegmentBytes,
		LocalRetentionMs: req.LocalRetentionMs, LocalRetentionBytes: req.LocalRetentionBytes,
		Compression: req.Compression,
	})
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	s.writeTopic(c.ctx, 201, req.Name)
}

func (s *Server) writeTopic(ctx *fasthttp.RequestCtx, status int, name string) {
	t, parts, err := s.broker.Topic(name)
	if err != nil {
		writeError(ctx, err)
		return
	}
	pj := make([]partitionJSON, len(parts))
	for i, p := range parts {
		pj[i] = partitionJSON{Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, LogStart: p.LogStart, HighWatermark: p.HighWatermark,
			LocalStart: p.LocalStart, RemoteEnd: p.RemoteEnd}
		if pj[i].Replicas == nil {
			pj[i].Replicas = []uint64{}
		}
	}
	pb, _ := json.Marshal(pj)
	b, _ := json.Marshal(topicJSON{
		Name: t.Name, Partitions: pb, ReplicationFactor: t.ReplicationFactor,
		RetentionMs: t.RetentionMs, RetentionBytes: t.RetentionBytes, CreatedAt: t.CreatedAt,
		storageJSON: storageOf(t.TopicConfig), Mirror: s.mirrorOf(t),
	})
	writeJSON(ctx, status, append(b, '\n'))
}

// topicReq names a topic by the path.
type topicReq struct {
	Topic string `path:"t" json:"-" need:"topic:describe"`
}

func (s *Server) describeTopic(c *call, r *topicReq) {
	s.writeTopic(c.ctx, 200, r.Topic)
}

type listReq struct{}

func (s *Server) listTopics(c *call, _ *listReq) {
	ctx := c.ctx
	type item struct {
		Name              string `json:"name"`
		Partitions        int    `json:"partitions"`
		ReplicationFactor int    `json:"replication_factor"`
		RetentionMs       int64  `json:"retention_ms"`
		RetentionBytes    int64  `json:"retention_bytes"`
	}
	out := struct {
		Topics []item `json:"topics"`
	}{Topics: []item{}}
	for _, t := range s.broker.Store().Topics() {
		out.Topics = append(out.Topics, item{t.Name, t.Partitions, t.ReplicationFactor, t.RetentionMs, t.RetentionBytes})
	}
	b, _ := json.Marshal(out)
	writeJSON(ctx, 200, append(b, '\n'))
}

type deleteTopicReq struct {
	Topic string `path:"t" json:"-" need:"topic:delete"`
}

func (s *Server) deleteTopic(c *call, r *deleteTopicReq) {
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.broker.DeleteTopic(rctx, r.Topic); err != nil {
		writeError(c.ctx, err)
		return
	}
	c.ctx.SetStatusCode(204)
}

// addPartitionsReq grows a topic to Partitions in all (Kafka's
// CreatePartitions: a total, not an increment).
type addPartitionsReq struct {
	Topic      string `path:"t" json:"-" need:"topic:alter"`
	Partitions int    `json:"partitions"`
}

func (s *Server) addPartitions(c *call, r *addPartitionsReq) {
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if _, err := s.broker.AddPartitions(rctx, r.Topic, r.Partitions); err != nil {
		writeError(c.ctx, err)
		return
	}
	s.writeTopic(c.ctx, 200, r.Topic)
}

type commitOffsetsReq struct {
	Group   string `path:"g" json:"-" need:"group:read"`
	Offsets []struct {
		Topic     string `json:"topic" need:"topic:read"`
		Partition *int   `json:"partition"`
		Offset    *int64 `json:"offset"`
	} `json:"offsets"`
	offs []core.GroupOffset
}

func (r *commitOffsetsReq) parse(*call) error {
	r.offs = make([]core.GroupOffset, 0, len(r.Offsets))
	for i, o := range r.Offsets {
		if o.Partition == nil || o.Offset == nil || o.Topic == "" {
			return core.Invalidf("offsets[%d] needs topic, partition and offset", i)
		}
		r.offs = append(r.offs, core.GroupOffset{Topic: o.Topic, Partition: *o.Partition, Offset: *o.Offset})
	}
	return nil
}

func (s *Server) commitOffsets(c *call, r *commitOffsetsReq) {
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.broker.CommitOffsets(rctx, r.Group, r.offs); err != nil {
		writeError(c.ctx, err)
		return
	}
	c.ctx.SetStatusCode(204)
}

type getOffsetsReq struct {
	Group string `path:"g" json:"-" need:"group:describe"`
	Topic string `query:"topic" json:"-"`
}

func (s *Server) getOffsets(c *call, r *getOffsetsReq) {
	ctx, group, topic := c.ctx, r.Group, r.Topic
	sctx, cancel := s.requestContext(10 * time.Second)
	err := s.broker.Store().CatalogSync(sctx) // consumers resume from these
	cancel()
	if err != nil {
		writeError(ctx, err)
		return
	}
	if topic != "" {
		if _, err := s.broker.Store().Topic(topic); err != nil {
			writeError(ctx, err)
			return
		}
	}
	type item struct {
		Topic     string `json:"topic"`
		Partition int    `json:"partition"`
		Offset    int64  `json:"offset"`
		Lag       int64  `json:"lag"`
	}
	out := struct {
		Group   string `json:"group"`
		Offsets []item `json:"offsets"`
	}{Group: group, Offsets: []item{}}
	for _, o := range s.broker.GroupOffsets(group, topic) {
		out.Offsets = append(out.Offsets, item{o.Topic, o.Partition, o.Offset, o.Lag})
	}
	b, _ := json.Marshal(out)
	writeJSON(ctx, 200, append(b, '\n'))
}
