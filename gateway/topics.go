package gateway

import (
	"bytes"
	"encoding/json"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// decodeJSON decodes a request body strictly: unknown fields and trailing
// data are errors that name what was wrong.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return core.Invalidf("the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return core.Invalidf("invalid JSON body: %v", err)
	}
	if dec.More() {
		return core.Invalidf("invalid JSON body: data after the JSON value")
	}
	return nil
}

type topicJSON struct {
	Name              string          `json:"name"`
	Partitions        json.RawMessage `json:"partitions,omitempty"`
	ReplicationFactor int             `json:"replication_factor"`
	RetentionMs       int64           `json:"retention_ms"`
	RetentionBytes    int64           `json:"retention_bytes"`
	CreatedAt         int64           `json:"created_at,omitempty"`
}

type partitionJSON struct {
	Partition     int      `json:"partition"`
	Leader        uint64   `json:"leader"`
	Replicas      []uint64 `json:"replicas"`
	LogStart      int64    `json:"log_start_offset"`
	HighWatermark int64    `json:"high_watermark"`
}

func (s *Server) createTopic(ctx *fasthttp.RequestCtx) {
	var req struct {
		Name              string `json:"name"`
		Partitions        int    `json:"partitions"`
		ReplicationFactor int    `json:"replication_factor"`
		RetentionMs       int64  `json:"retention_ms"`
		RetentionBytes    int64  `json:"retention_bytes"`
	}
	if err := decodeJSON(ctx.PostBody(), &req); err != nil {
		writeError(ctx, err)
		return
	}
	if req.Partitions < 0 || req.ReplicationFactor < 0 {
		writeError(ctx, core.Invalidf("partitions and replication_factor must be positive"))
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	_, err := s.broker.CreateTopic(rctx, core.TopicConfig{
		Name: req.Name, Partitions: req.Partitions, ReplicationFactor: req.ReplicationFactor,
		RetentionMs: req.RetentionMs, RetentionBytes: req.RetentionBytes,
	})
	if err != nil {
		writeError(ctx, err)
		return
	}
	s.writeTopic(ctx, 201, req.Name)
}

func (s *Server) writeTopic(ctx *fasthttp.RequestCtx, status int, name string) {
	t, parts, err := s.broker.Topic(name)
	if err != nil {
		writeError(ctx, err)
		return
	}
	pj := make([]partitionJSON, len(parts))
	for i, p := range parts {
		pj[i] = partitionJSON{Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, LogStart: p.LogStart, HighWatermark: p.HighWatermark}
		if pj[i].Replicas == nil {
			pj[i].Replicas = []uint64{}
		}
	}
	pb, _ := json.Marshal(pj)
	b, _ := json.Marshal(topicJSON{
		Name: t.Name, Partitions: pb, ReplicationFactor: t.ReplicationFactor,
		RetentionMs: t.RetentionMs, RetentionBytes: t.RetentionBytes, CreatedAt: t.CreatedAt,
	})
	writeJSON(ctx, status, append(b, '\n'))
}

func (s *Server) describeTopic(ctx *fasthttp.RequestCtx, name string) {
	s.writeTopic(ctx, 200, name)
}

func (s *Server) listTopics(ctx *fasthttp.RequestCtx) {
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

func (s *Server) deleteTopic(ctx *fasthttp.RequestCtx, name string) {
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.broker.DeleteTopic(rctx, name); err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(204)
}

func (s *Server) commitOffsets(ctx *fasthttp.RequestCtx, group string) {
	var req struct {
		Offsets []struct {
			Topic     string `json:"topic"`
			Partition *int   `json:"partition"`
			Offset    *int64 `json:"offset"`
		} `json:"offsets"`
	}
	if err := decodeJSON(ctx.PostBody(), &req); err != nil {
		writeError(ctx, err)
		return
	}
	offs := make([]core.GroupOffset, 0, len(req.Offsets))
	for i, o := range req.Offsets {
		if o.Partition == nil || o.Offset == nil || o.Topic == "" {
			writeError(ctx, core.Invalidf("offsets[%d] needs topic, partition and offset", i))
			return
		}
		offs = append(offs, core.GroupOffset{Topic: o.Topic, Partition: *o.Partition, Offset: *o.Offset})
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.broker.CommitOffsets(rctx, group, offs); err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(204)
}

func (s *Server) getOffsets(ctx *fasthttp.RequestCtx, group string) {
	topic := string(ctx.QueryArgs().Peek("topic"))
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
