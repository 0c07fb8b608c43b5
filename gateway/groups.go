package gateway

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// The consumer group member API (docs/groups.md):
//
//	GET    /v1/groups                                   list groups
//	GET    /v1/groups/{group}                           members, assignment, lag
//	POST   /v1/groups/{group}/members                   join
//	POST   /v1/groups/{group}/members/{member}/heartbeat
//	POST   /v1/groups/{group}/members/{member}/poll     records of the member's partitions
//	POST   /v1/groups/{group}/members/{member}/commit   fenced by generation
//	DELETE /v1/groups/{group}/members/{member}          leave
//
// (POST/GET /v1/groups/{group}/offsets stay in server.go.)

// Groups returns the consumer group coordinator the gateway uses.
func (s *Server) Groups() *core.GroupCoordinator { return s.groups }

func (s *Server) routeGroups(ctx *fasthttp.RequestCtx, method string, seg []string) {
	need := func(m string) bool {
		if method != m {
			writeError(ctx, errMethodNotAllowed)
			return false
		}
		return true
	}
	switch {
	case len(seg) == 0:
		if need("GET") {
			s.listGroups(ctx)
		}
	case len(seg) == 1:
		if need("GET") {
			s.describeGroup(ctx, seg[0])
		}
	case seg[1] != "members":
		writeError(ctx, errNotFound)
	case len(seg) == 2:
		if need("POST") {
			s.joinGroup(ctx, seg[0])
		}
	case len(seg) == 3:
		if need("DELETE") {
			s.leaveGroup(ctx, seg[0], seg[2])
		}
	case len(seg) == 4 && seg[3] == "heartbeat":
		if need("POST") {
			s.heartbeatMember(ctx, seg[0], seg[2])
		}
	case len(seg) == 4 && seg[3] == "poll":
		if need("POST") {
			s.pollMember(ctx, seg[0], seg[2])
		}
	case len(seg) == 4 && seg[3] == "commit":
		if need("POST") {
			s.commitMember(ctx, seg[0], seg[2])
		}
	default:
		writeError(ctx, errNotFound)
	}
}

type assignmentJSON struct {
	Topic      string `json:"topic"`
	Partitions []int  `json:"partitions"`
}

func assignmentOf(a []core.TopicPartitions) []assignmentJSON {
	out := make([]assignmentJSON, 0, len(a))
	for _, tp := range a {
		ps := tp.Partitions
		if ps == nil {
			ps = []int{}
		}
		out = append(out, assignmentJSON{Topic: tp.Topic, Partitions: ps})
	}
	return out
}

type membershipJSON struct {
	Group               string           `json:"group"`
	MemberID            string           `json:"member_id"`
	Generation          int64            `json:"generation"`
	Assignment          []assignmentJSON `json:"assignment"`
	SessionTimeoutMs    int64            `json:"session_timeout_ms"`
	HeartbeatIntervalMs int64            `json:"heartbeat_interval_ms"`
}

func membershipJSONOf(m core.Membership) membershipJSON {
	return membershipJSON{Group: m.Group, MemberID: m.MemberID, Generation: m.Generation,
		Assignment: assignmentOf(m.Assignment), SessionTimeoutMs: m.SessionTimeout.Milliseconds(),
		HeartbeatIntervalMs: (m.SessionTimeout / 3).Milliseconds()}
}

func writeValue(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, err)
		return
	}
	writeJSON(ctx, status, append(b, '\n'))
}

// decodeOptionalJSON decodes a JSON body when there is one.
func decodeOptionalJSON(ctx *fasthttp.RequestCtx, v any) error {
	if len(ctx.PostBody()) == 0 {
		return nil
	}
	return decodeJSON(ctx.PostBody(), v)
}

func (s *Server) listGroups(ctx *fasthttp.RequestCtx) {
	type item struct {
		Name       string `json:"name"`
		Generation int64  `json:"generation"`
		Members    int    `json:"members"`
	}
	out := struct {
		Groups []item `json:"groups"`
	}{Groups: []item{}}
	for _, name := range s.groups.Groups() {
		if g, ok := s.groups.Get(name); ok {
			out.Groups = append(out.Groups, item{name, g.Generation, len(g.Members)})
		}
	}
	writeValue(ctx, 200, out)
}

// GroupDescriptionJSON is the body of GET /v1/groups/{group}.
type GroupDescriptionJSON struct {
	Group      string             `json:"group"`
	Generation int64              `json:"generation"`
	State      string             `json:"state"` // "stable" with members, else "empty"
	Members    []GroupMemberJSON  `json:"members"`
	Partitions []PartitionLagJSON `json:"partitions"`
	TotalLag   int64              `json:"total_lag"`
}

// GroupMemberJSON is one member in a group description.
type GroupMemberJSON struct {
	ID               string           `json:"id"`
	ClientID         string           `json:"client_id,omitempty"`
	Kind             string           `json:"kind"`
	Node             uint64           `json:"node"`
	Topics           []string         `json:"topics"`
	SessionTimeoutMs int64            `json:"session_timeout_ms"`
	JoinedMs         int64            `json:"joined_ms"`
	LastHeartbeatMs  int64            `json:"last_heartbeat_ms"`
	Assignment       []assignmentJSON `json:"assignment"`
}

// PartitionLagJSON is one partition in a group description.
type PartitionLagJSON struct {
	Topic           string `json:"topic"`
	Partition       int    `json:"partition"`
	Member          string `json:"member"`
	CommittedOffset *int64 `json:"committed_offset"`
	LogStartOffset  int64  `json:"log_start_offset"`
	HighWatermark   int64  `json:"high_watermark"`
	Lag             int64  `json:"lag"`
}

func (s *Server) describeGroup(ctx *fasthttp.RequestCtx, group string) {
	d, err := s.groups.Describe(group)
	if err != nil {
		writeError(ctx, err)
		return
	}
	out := GroupDescriptionJSON{Group: group, Generation: d.Generation, State: "empty",
		Members: []GroupMemberJSON{}, Partitions: []PartitionLagJSON{}}
	if len(d.Members) > 0 {
		out.State = "stable"
	}
	for _, m := range d.Members {
		out.Members = append(out.Members, GroupMemberJSON{ID: m.ID, ClientID: m.ClientID, Kind: m.Kind, Node: m.Node,
			Topics: m.Topics, SessionTimeoutMs: m.SessionTimeoutMs, JoinedMs: m.JoinedMs,
			LastHeartbeatMs: m.HeartbeatMs, Assignment: assignmentOf(m.Assignment)})
	}
	for _, p := range d.Partitions {
		pl := PartitionLagJSON{Topic: p.Topic, Partition: p.Partition, Member: p.Member,
			LogStartOffset: p.LogStart, HighWatermark: p.HighWatermark, Lag: p.Lag}
		if p.Committed >= 0 {
			c := p.Committed
			pl.CommittedOffset = &c
		}
		out.TotalLag += p.Lag
		out.Partitions = append(out.Partitions, pl)
	}
	writeValue(ctx, 200, out)
}

func (s *Server) joinGroup(ctx *fasthttp.RequestCtx, group string) {
	var body struct {
		Topics           []string `json:"topics"`
		Topic            string   `json:"topic"`
		ClientID         string   `json:"client_id"`
		SessionTimeoutMs int64    `json:"session_timeout_ms"`
		From             string   `json:"from"`
	}
	if err := decodeJSON(ctx.PostBody(), &body); err != nil {
		writeError(ctx, err)
		return
	}
	if body.Topic != "" {
		body.Topics = append(body.Topics, body.Topic)
	}
	if body.SessionTimeoutMs < 0 {
		writeError(ctx, core.Invalidf("session_timeout_ms must be ≥ 0"))
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	ms, err := s.groups.Join(rctx, group, core.GroupJoin{ClientID: body.ClientID, Kind: "http", Topics: body.Topics,
		SessionTimeout: time.Duration(body.SessionTimeoutMs) * time.Millisecond, From: body.From})
	if err != nil {
		writeError(ctx, err)
		return
	}
	writeValue(ctx, http.StatusCreated, membershipJSONOf(ms))
}

func (s *Server) leaveGroup(ctx *fasthttp.RequestCtx, group, member string) {
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.groups.Leave(rctx, group, member); err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(http.StatusNoContent)
}

func (s *Server) heartbeatMember(ctx *fasthttp.RequestCtx, group, member string) {
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	ms, err := s.groups.Heartbeat(rctx, group, member)
	if err != nil {
		writeError(ctx, err)
		return
	}
	writeValue(ctx, 200, membershipJSONOf(ms))
}

type offsetJSON struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

func offsetsToCore(in []offsetJSON) []core.GroupOffset {
	out := make([]core.GroupOffset, len(in))
	for i, o := range in {
		out[i] = core.GroupOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset}
	}
	return out
}

func (s *Server) pollMember(ctx *fasthttp.RequestCtx, group, member string) {
	var body struct {
		Generation int64        `json:"generation"`
		Positions  []offsetJSON `json:"positions"`
		MaxRecords *int         `json:"max_records"`
		MaxBytes   *int         `json:"max_bytes"`
		WaitMs     int64        `json:"wait_ms"`
		Encoding   string       `json:"encoding"`
		Commit     bool         `json:"commit"`
	}
	if err := decodeOptionalJSON(ctx, &body); err != nil {
		writeError(ctx, err)
		return
	}
	b64 := false
	switch body.Encoding {
	case "", "utf8", "utf-8":
	case "base64":
		b64 = true
	default:
		writeError(ctx, core.Invalidf("encoding must be utf8 or base64, not %q", body.Encoding))
		return
	}
	if body.WaitMs < 0 || body.MaxRecords != nil && *body.MaxRecords < 1 || body.MaxBytes != nil && *body.MaxBytes < 1 {
		writeError(ctx, core.Invalidf("wait_ms must be ≥ 0, max_records and max_bytes ≥ 1"))
		return
	}
	req := &core.PollRequest{Group: group, Member: member, Generation: body.Generation,
		Positions: offsetsToCore(body.Positions), Wait: time.Duration(body.WaitMs) * time.Millisecond}
	if body.MaxRecords != nil {
		req.MaxRecords = *body.MaxRecords
	}
	if body.MaxBytes != nil {
		req.MaxBytes = *body.MaxBytes
	}
	rctx, cancel := s.requestContext(min(req.Wait, s.broker.Config().MaxWait) + s.cfg.ProduceTimeout)
	defer cancel()
	if body.Commit && len(body.Positions) > 0 {
		// Commit what the previous poll delivered, then read on: one round
		// trip per batch for a process-then-commit loop.
		if err := s.groups.Commit(rctx, group, member, body.Generation, req.Positions); err != nil {
			writeError(ctx, err)
			return
		}
	}
	res, err := s.groups.Poll(rctx, req)
	if err != nil {
		writeError(ctx, err)
		return
	}
	m := membershipJSONOf(res.Membership)
	head, _ := json.Marshal(m)
	b := make([]byte, 0, 256)
	b = append(b, head[:len(head)-1]...) // the membership's fields, then the records
	b = append(b, `,"records":[`...)
	first := true
	for _, pb := range res.Batches {
		if len(pb.Records) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		arr := AppendRecordsJSON(nil, pb.Records, b64, pb.Topic, pb.Partition)
		b = append(b, arr[1:len(arr)-1]...)
	}
	b = append(b, `],"positions":`...)
	b = appendOffsets(b, res.Positions)
	b = append(b, "}\n"...)
	writeJSON(ctx, 200, b)
}

func (s *Server) commitMember(ctx *fasthttp.RequestCtx, group, member string) {
	var body struct {
		Generation *int64       `json:"generation"`
		Offsets    []offsetJSON `json:"offsets"`
	}
	if err := decodeJSON(ctx.PostBody(), &body); err != nil {
		writeError(ctx, err)
		return
	}
	if body.Generation == nil {
		writeError(ctx, core.Invalidf("commit needs the member's generation (fencing after a rebalance)"))
		return
	}
	if len(body.Offsets) == 0 {
		writeError(ctx, core.Invalidf("offsets must not be empty"))
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.groups.Commit(rctx, group, member, *body.Generation, offsetsToCore(body.Offsets)); err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(http.StatusNoContent)
}
