package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
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

func (s *Server) listGroups(c *call, _ *listReq) {
	ctx := c.ctx
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

type describeGroupReq struct {
	Group string `path:"g" json:"-" need:"group:describe"`
}

func (s *Server) describeGroup(c *call, r *describeGroupReq) {
	ctx, group := c.ctx, r.Group
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

type joinGroupReq struct {
	Group            string   `path:"g" json:"-" need:"group:read"`
	Topics           []string `json:"topics" need:"topic:read,optional"`
	Topic            string   `json:"topic" need:"topic:read,optional"`
	ClientID         string   `json:"client_id"`
	SessionTimeoutMs int64    `json:"session_timeout_ms"`
	From             string   `json:"from"`
}

func (r *joinGroupReq) parse(*call) error {
	if r.Topic != "" {
		r.Topics = append(r.Topics, r.Topic)
		r.Topic = ""
	}
	if r.SessionTimeoutMs < 0 {
		return core.Invalidf("session_timeout_ms must be ≥ 0")
	}
	return nil
}

func (s *Server) joinGroup(c *call, r *joinGroupReq) {
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	ms, err := s.groups.Join(rctx, r.Group, core.GroupJoin{ClientID: r.ClientID, Kind: "http", Topics: r.Topics,
		SessionTimeout: time.Duration(r.SessionTimeoutMs) * time.Millisecond, From: r.From, Principal: s.creator(c.ctx)})
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, http.StatusCreated, membershipJSONOf(ms))
}

// memberReq names a group member by the path. Member calls belong to the
// principal that joined (parse checks it), and a member's reads re-check
// its topics (ACLs may have changed since it joined).
type memberReq struct {
	Group  string `path:"g" json:"-" need:"group:read"`
	Member string `path:"m" json:"-"`
}

// owned checks that the caller is the principal that joined the member.
// A member that no longer exists is left to the operation (it answers
// unknown_member, or nothing for leave).
func (r *memberReq) owned(c *call) error {
	if c.sec == nil {
		return nil
	}
	ms, err := c.s.groups.Member(r.Group, r.Member)
	if err != nil {
		return nil
	}
	if ms.Principal != c.p.Name && !c.p.Admin {
		msg := fmt.Sprintf("member %q of group %q belongs to another principal", r.Member, r.Group)
		c.sec.Audit(auth.Event{Principal: c.p.Name, Via: c.p.Via, Action: c.action(), Resource: "group:" + r.Group,
			Operation: string(auth.Read), Result: "denied", Status: 403, Source: c.ctx.RemoteAddr().String(), Reason: msg})
		return fmt.Errorf("%w: %s", core.ErrForbidden, msg)
	}
	return nil
}

func (s *Server) leaveGroup(c *call, r *memberReq) {
	if err := r.owned(c); err != nil {
		writeError(c.ctx, err)
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.groups.Leave(rctx, r.Group, r.Member); err != nil {
		writeError(c.ctx, err)
		return
	}
	c.ctx.SetStatusCode(http.StatusNoContent)
}

func (s *Server) heartbeatMember(c *call, r *memberReq) {
	if err := r.owned(c); err != nil {
		writeError(c.ctx, err)
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	ms, err := s.groups.Heartbeat(rctx, r.Group, r.Member)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, 200, membershipJSONOf(ms))
}

type offsetJSON struct {
	Topic     string `json:"topic" need:"topic:read"`
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

type pollReq struct {
	memberReq  `json:"-"`
	Generation int64        `json:"generation"`
	Positions  []offsetJSON `json:"positions"`
	MaxRecords *int         `json:"max_records"`
	MaxBytes   *int         `json:"max_bytes"`
	WaitMs     int64        `json:"wait_ms"`
	Encoding   string       `json:"encoding"`
	Commit     bool         `json:"commit"`
	b64        bool
}

func (*pollReq) bodyOptional() {}

func (r *pollReq) parse(*call) error {
	switch r.Encoding {
	case "", "utf8", "utf-8":
	case "base64":
		r.b64 = true
	default:
		return core.Invalidf("encoding must be utf8 or base64, not %q", r.Encoding)
	}
	if r.WaitMs < 0 || r.MaxRecords != nil && *r.MaxRecords < 1 || r.MaxBytes != nil && *r.MaxBytes < 1 {
		return core.Invalidf("wait_ms must be ≥ 0, max_records and max_bytes ≥ 1")
	}
	return nil
}

func (s *Server) pollMember(c *call, body *pollReq) {
	ctx, group, member, b64 := c.ctx, body.Group, body.Member, body.b64
	if err := body.owned(c); err != nil {
		writeError(ctx, err)
		return
	}
	if c.sec != nil && !c.p.Admin {
		// The member reads its assignment: the caller must still read
		// every topic of it.
		if ms, err := s.groups.Member(group, member); err == nil {
			for _, tp := range ms.Assignment {
				if err := c.check(need{rt: topicRT, op: auth.Read, name: tp.Topic}); err != nil {
					writeError(ctx, err)
					return
				}
			}
		}
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

type commitMemberReq struct {
	memberReq  `json:"-"`
	Generation *int64       `json:"generation"`
	Offsets    []offsetJSON `json:"offsets"`
}

func (r *commitMemberReq) parse(*call) error {
	if r.Generation == nil {
		return core.Invalidf("commit needs the member's generation (fencing after a rebalance)")
	}
	if len(r.Offsets) == 0 {
		return core.Invalidf("offsets must not be empty")
	}
	return nil
}

func (s *Server) commitMember(c *call, r *commitMemberReq) {
	if err := r.owned(c); err != nil {
		writeError(c.ctx, err)
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.groups.Commit(rctx, r.Group, r.Member, *r.Generation, offsetsToCore(r.Offsets)); err != nil {
		writeError(c.ctx, err)
		return
	}
	c.ctx.SetStatusCode(http.StatusNoContent)
}
