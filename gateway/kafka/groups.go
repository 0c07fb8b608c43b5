package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// The classic consumer group protocol (JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup) runs in memory on the node FindCoordinator names: the leader
// of the metadata shard (Cluster.Coordinator; a lone node names itself).
// Membership is soft state that clients rebuild by rejoining; committed
// offsets, the state that matters, are Weir's replicated group offsets
// (core.Broker.CommitOffsets), shared with the HTTP API, and generation
// numbers come from blocks reserved in the replicated catalog (reserve),
// so they keep increasing when the coordinator moves. docs/kafka.md says
// why and what it means for a cluster.

const (
	stateEmpty     = "Empty"
	statePreparing = "PreparingRebalance"
	stateSyncing   = "CompletingRebalance"
	stateStable    = "Stable"
)

type member struct {
	id, clientID, host, instanceID string
	protocolType                   string
	protocols                      []kmsg.JoinGroupRequestProtocol
	session, rebalance             time.Duration
	lastSeen                       time.Time
	joined                         bool // rejoined in the current rebalance
	joinWait                       chan *kmsg.JoinGroupResponse
	syncWait                       chan syncAnswer
	assignment                     []byte
}

type syncAnswer struct {
	code       int16
	protocol   string
	assignment []byte
}

type group struct {
	name         string
	state        string
	generation   int32
	reserved     int32 // the highest generation number reserved for this node's use
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	pending      map[string]time.Time // member ids handed out, not joined yet
	rebalanceEnd time.Time
}

type coordinator struct {
	s      *Server
	mu     sync.Mutex // guards groups and everything in them
	groups map[string]*group
}

func newCoordinator(s *Server) *coordinator {
	return &coordinator{s: s, groups: map[string]*group{}}
}

func (co *coordinator) now() time.Time { return co.s.cfg.Now() }

// run expires silent members and overdue rebalances until ctx ends.
func (co *coordinator) run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			co.check()
		}
	}
}

func (co *coordinator) check() {
	co.mu.Lock()
	defer co.mu.Unlock()
	now := co.now()
	for _, g := range co.groups {
		for id, at := range g.pending {
			if now.Sub(at) > time.Minute {
				delete(g.pending, id)
			}
		}
		switch g.state {
		case statePreparing:
			if !now.Before(g.rebalanceEnd) {
				for id, m := range g.members {
					if !m.joined {
						delete(g.members, id)
					}
				}
				co.completeJoin(g)
			}
		case stateStable, stateSyncing:
			expired := false
			for id, m := range g.members {
				if now.Sub(m.lastSeen) > m.session {
					co.removeMember(g, id)
					expired = true
				}
			}
			if expired {
				co.startRebalance(g)
			}
		}
	}
}

func newKafkaMemberID(clientID string) string {
	var b [8]byte
	rand.Read(b[:])
	if len(clientID) > 64 {
		clientID = clientID[:64]
	}
	return clientID + "-" + hex.EncodeToString(b[:])
}

// Generation numbers come from blocks reserved in the catalog
// (core.Broker.ReserveGenerations), so that they keep increasing across
// coordinator moves and restarts, as Kafka's do, and a number is never
// handed out twice: a client may hold on to its generation across a
// coordinator move. A JoinGroup tops the group's block up when fewer than
// generationHeadroom numbers are left: between two JoinGroups a group
// moves at most three generations (the rebalance the join completes, an
// expiry to Empty, a LeaveGroup), so a block never runs out.
const (
	generationBlock    = 100
	generationHeadroom = 10
)

// reserve makes sure group has generation numbers reserved for this node
// to hand out, and that no other coordinator has reserved numbers since
// this node's copy of the group began. It answers the error code for the
// JoinGroup when the reservation cannot be written.
func (co *coordinator) reserve(ctx context.Context, name string) int16 {
	latest, err := co.s.cfg.Broker.ReservedGenerations(name)
	if err != nil {
		co.s.cfg.Logger.Error("kafka: group generations", "group", name, "err", err)
		return kerr.CoordinatorNotAvailable.Code
	}
	co.mu.Lock()
	g := co.group(name)
	floor, ok := g.generation, g.reserved-g.generation >= generationHeadroom && latest <= g.reserved
	co.mu.Unlock()
	if ok {
		return 0
	}
	first, last, err := co.s.cfg.Broker.ReserveGenerations(ctx, name, floor, generationBlock)
	if err != nil {
		co.s.cfg.Logger.Warn("kafka: group generations", "group", name, "err", err)
		return kerr.CoordinatorNotAvailable.Code
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	g = co.group(name)
	if first-1 > g.reserved {
		// Numbers up to first-1 were reserved elsewhere (another
		// coordinator, or this node before a restart): this copy's
		// generation is over; continue above them.
		g.generation = max(g.generation, first-1)
	}
	g.reserved = max(g.reserved, last)
	return 0
}

// nextGeneration starts the group's next generation.
func (co *coordinator) nextGeneration(g *group) {
	if g.generation >= g.reserved {
		// Unreachable while reserve's headroom holds; the number may then
		// repeat one handed out by another coordinator.
		co.s.cfg.Logger.Error("kafka: group generations: block used up between joins", "group", g.name, "generation", g.generation)
	}
	g.generation++
}

func (co *coordinator) group(name string) *group {
	g := co.groups[name]
	if g == nil {
		g = &group{name: name, state: stateEmpty, members: map[string]*member{}, pending: map[string]time.Time{}}
		co.groups[name] = g
	}
	return g
}

func (co *coordinator) removeMember(g *group, id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	delete(g.members, id)
	if m.joinWait != nil {
		close(m.joinWait)
	}
	if m.syncWait != nil {
		m.syncWait <- syncAnswer{code: kerr.UnknownMemberID.Code}
		m.syncWait = nil
	}
}

// startRebalance moves a group to PreparingRebalance: every member must
// rejoin before the rebalance timeout.
func (co *coordinator) startRebalance(g *group) {
	if len(g.members) == 0 {
		g.state, g.leader, g.protocol = stateEmpty, "", ""
		co.nextGeneration(g)
		return
	}
	if g.state == statePreparing {
		return
	}
	var rt time.Duration
	for _, m := range g.members {
		m.joined = false
		rt = max(rt, m.rebalance)
		if m.syncWait != nil {
			m.syncWait <- syncAnswer{code: kerr.RebalanceInProgress.Code}
			m.syncWait = nil
		}
	}
	g.state = statePreparing
	g.rebalanceEnd = co.now().Add(rt)
}

// maybeComplete finishes the join phase once every member has rejoined.
func (co *coordinator) maybeComplete(g *group) {
	if g.state != statePreparing {
		return
	}
	for _, m := range g.members {
		if !m.joined {
			return
		}
	}
	co.completeJoin(g)
}

func (co *coordinator) completeJoin(g *group) {
	if len(g.members) == 0 {
		g.state, g.leader, g.protocol = stateEmpty, "", ""
		co.nextGeneration(g)
		return
	}
	co.nextGeneration(g)
	g.state = stateSyncing
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if g.members[g.leader] == nil {
		g.leader = ids[0]
	}
	// The protocol: the leader's first choice that every member supports.
	g.protocol = ""
	for _, p := range g.members[g.leader].protocols {
		all := true
		for _, m := range g.members {
			found := false
			for _, q := range m.protocols {
				if q.Name == p.Name {
					found = true
				}
			}
			all = all && found
		}
		if all {
			g.protocol = p.Name
			break
		}
	}
	now := co.now()
	for _, id := range ids {
		m := g.members[id]
		m.lastSeen = now
		m.assignment = nil
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.Generation, resp.LeaderID, resp.MemberID = g.generation, g.leader, id
		resp.Protocol, resp.ProtocolType = kmsg.StringPtr(g.protocol), kmsg.StringPtr(g.protocolType)
		if id == g.leader {
			for _, mid := range ids {
				o := g.members[mid]
				jm := kmsg.NewJoinGroupResponseMember()
				jm.MemberID = mid
				if o.instanceID != "" {
					jm.InstanceID = kmsg.StringPtr(o.instanceID)
				}
				for _, p := range o.protocols {
					if p.Name == g.protocol {
						jm.ProtocolMetadata = p.Metadata
					}
				}
				resp.Members = append(resp.Members, jm)
			}
		}
		if m.joinWait != nil {
			m.joinWait <- resp
			m.joinWait = nil
		}
	}
}

func (c *conn) groupAllowed(api, group string, op auth.Operation) bool {
	return c.allowed(api, auth.Group, group, op)
}

func (c *conn) findCoordinator(r *kmsg.FindCoordinatorRequest) *kmsg.FindCoordinatorResponse {
	resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
	brokers := c.s.brokers()
	cid, known := c.s.coordinator(brokers)
	host, port, _ := splitHostPort(brokers[cid].Addr)
	keys := r.CoordinatorKeys
	if r.Version < 4 {
		keys = []string{r.CoordinatorKey}
	}
	for _, k := range keys {
		ck := kmsg.NewFindCoordinatorResponseCoordinator()
		ck.Key, ck.NodeID, ck.Host, ck.Port = k, int32(cid), host, port
		switch {
		case !known:
			ck.NodeID, ck.Host, ck.Port = -1, "", -1
			ck.ErrorCode = kerr.CoordinatorNotAvailable.Code
		case r.CoordinatorType != 0:
			ck.NodeID, ck.Host, ck.Port = -1, "", -1
			ck.ErrorCode = kerr.InvalidRequest.Code // 42: transactions are not supported
			ck.ErrorMessage = kmsg.StringPtr("Weir does not support Kafka transactions")
		case !core.ValidGroupName(k):
			ck.ErrorCode = kerr.InvalidGroupID.Code
		case !c.groupAllowed("FindCoordinator", k, auth.Describe):
			ck.ErrorCode = kerr.GroupAuthorizationFailed.Code
		}
		resp.Coordinators = append(resp.Coordinators, ck)
	}
	if r.Version < 4 && len(resp.Coordinators) == 1 {
		ck := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = ck.ErrorCode, ck.ErrorMessage, ck.NodeID, ck.Host, ck.Port
	}
	return resp
}

func (c *conn) joinGroup(ctx context.Context, r *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = -1
	fail := func(code int16) *kmsg.JoinGroupResponse { resp.ErrorCode = code; return resp }
	session, rebalance, code := c.checkJoin(r)
	if code != 0 {
		return fail(code)
	}
	co := c.s.groups
	if code := co.reserve(ctx, r.Group); code != 0 {
		return fail(code)
	}
	co.mu.Lock()
	g := co.group(r.Group)
	if g.protocolType != "" && len(g.members) > 0 && g.protocolType != r.ProtocolType {
		co.mu.Unlock()
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	id := r.MemberID
	m := g.members[id]
	if id == "" {
		id = newKafkaMemberID(c.clientID)
		if r.Version >= 4 {
			// KIP-394: hand out the id; the client rejoins with it.
			g.pending[id] = co.now()
			co.mu.Unlock()
			resp.MemberID = id
			return fail(kerr.MemberIDRequired.Code)
		}
	} else if m == nil {
		if _, ok := g.pending[id]; !ok {
			co.mu.Unlock()
			resp.MemberID = id
			return fail(kerr.UnknownMemberID.Code)
		}
		delete(g.pending, id)
	}
	if m == nil {
		m = &member{id: id}
		g.members[id] = m
	}
	m.clientID, m.host = c.clientID, c.addr
	if r.InstanceID != nil {
		m.instanceID = *r.InstanceID
	}
	m.protocolType, m.protocols = r.ProtocolType, r.Protocols
	m.session, m.rebalance, m.lastSeen = session, rebalance, co.now()
	g.protocolType = r.ProtocolType
	if m.joinWait != nil { // a duplicate join from the same member
		close(m.joinWait)
	}
	wait := make(chan *kmsg.JoinGroupResponse, 1)
	m.joinWait = wait
	if g.state != statePreparing {
		co.startRebalance(g)
	}
	m.joined = true
	co.maybeComplete(g)
	co.mu.Unlock()

	select {
	case jr, ok := <-wait:
		if !ok {
			resp.MemberID = id
			return fail(kerr.UnknownMemberID.Code)
		}
		jr.SetVersion(r.Version)
		return jr
	case <-ctx.Done():
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
}

// checkJoin checks a JoinGroup request (group name, the right to read the
// group, session timeout, protocols, this node coordinating) and returns
// its session and rebalance timeouts, or the error code to answer.
func (c *conn) checkJoin(r *kmsg.JoinGroupRequest) (session, rebalance time.Duration, code int16) {
	if !core.ValidGroupName(r.Group) {
		return 0, 0, kerr.InvalidGroupID.Code
	}
	if !c.groupAllowed("JoinGroup", r.Group, auth.Read) {
		return 0, 0, kerr.GroupAuthorizationFailed.Code
	}
	session = time.Duration(r.SessionTimeoutMillis) * time.Millisecond
	if session < 500*time.Millisecond || session > 30*time.Minute {
		return 0, 0, kerr.InvalidSessionTimeout.Code
	}
	rebalance = time.Duration(r.RebalanceTimeoutMillis) * time.Millisecond
	if r.Version == 0 || rebalance <= 0 {
		rebalance = session
	}
	if len(r.Protocols) == 0 || r.ProtocolType == "" {
		return 0, 0, kerr.InconsistentGroupProtocol.Code
	}
	if c.notCoordinator() {
		return 0, 0, kerr.NotCoordinator.Code
	}
	return session, rebalance, 0
}

func (c *conn) syncGroup(ctx context.Context, r *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(code int16) *kmsg.SyncGroupResponse { resp.ErrorCode = code; return resp }
	if !c.groupAllowed("SyncGroup", r.Group, auth.Read) {
		return fail(kerr.GroupAuthorizationFailed.Code)
	}
	if c.notCoordinator() {
		return fail(kerr.NotCoordinator.Code)
	}
	co := c.s.groups
	co.mu.Lock()
	g := co.groups[r.Group]
	var m *member
	if g != nil {
		m = g.members[r.MemberID]
	}
	switch {
	case m == nil:
		co.mu.Unlock()
		return fail(kerr.UnknownMemberID.Code)
	case r.Generation != g.generation:
		co.mu.Unlock()
		return fail(kerr.IllegalGeneration.Code)
	case g.state == statePreparing:
		co.mu.Unlock()
		return fail(kerr.RebalanceInProgress.Code)
	case g.state == stateStable:
		a := m.assignment
		co.mu.Unlock()
		resp.MemberAssignment, resp.Protocol, resp.ProtocolType = a, kmsg.StringPtr(g.protocol), kmsg.StringPtr(g.protocolType)
		return resp
	}
	m.lastSeen = co.now()
	wait := make(chan syncAnswer, 1)
	if m.syncWait != nil {
		m.syncWait <- syncAnswer{code: kerr.RebalanceInProgress.Code}
	}
	m.syncWait = wait
	if r.MemberID == g.leader {
		for _, a := range r.GroupAssignment {
			if o := g.members[a.MemberID]; o != nil {
				o.assignment = a.MemberAssignment
			}
		}
		g.state = stateStable
		for _, o := range g.members {
			if o.syncWait != nil {
				o.syncWait <- syncAnswer{protocol: g.protocol, assignment: o.assignment}
				o.syncWait = nil
			}
		}
	}
	pt := g.protocolType
	co.mu.Unlock()
	select {
	case a := <-wait:
		resp.ErrorCode = a.code
		if a.code == 0 {
			resp.MemberAssignment, resp.Protocol, resp.ProtocolType = a.assignment, kmsg.StringPtr(a.protocol), kmsg.StringPtr(pt)
		}
		return resp
	case <-ctx.Done():
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
}

// memberCheck validates a member and generation; it renews the session.
func (co *coordinator) memberCheck(group, memberID string, generation int32) int16 {
	g := co.groups[group]
	if g == nil {
		return kerr.UnknownMemberID.Code
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	m.lastSeen = co.now()
	if generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	if g.state == statePreparing {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

func (c *conn) heartbeat(r *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
	if !c.groupAllowed("Heartbeat", r.Group, auth.Read) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
	if c.notCoordinator() {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	co := c.s.groups
	co.mu.Lock()
	defer co.mu.Unlock()
	resp.ErrorCode = co.memberCheck(r.Group, r.MemberID, r.Generation)
	return resp
}

func (c *conn) leaveGroup(r *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
	if !c.groupAllowed("LeaveGroup", r.Group, auth.Read) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
	if c.notCoordinator() {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	ids := []string{r.MemberID}
	if r.Version >= 3 {
		ids = ids[:0]
		for _, m := range r.Members {
			ids = append(ids, m.MemberID)
		}
	}
	co := c.s.groups
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.groups[r.Group]
	left := false
	for _, id := range ids {
		lm := kmsg.NewLeaveGroupResponseMember()
		lm.MemberID = id
		if g == nil || g.members[id] == nil {
			lm.ErrorCode = kerr.UnknownMemberID.Code
		} else {
			co.removeMember(g, id)
			left = true
		}
		resp.Members = append(resp.Members, lm)
	}
	if r.Version < 3 && len(resp.Members) == 1 {
		resp.ErrorCode = resp.Members[0].ErrorCode
		resp.Members = nil
	}
	if left {
		if g.state == statePreparing {
			co.maybeComplete(g)
		} else {
			co.startRebalance(g)
		}
	}
	return resp
}

func (c *conn) offsetCommit(ctx context.Context, r *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
	code := int16(0)
	if !c.groupAllowed("OffsetCommit", r.Group, auth.Read) {
		code = kerr.GroupAuthorizationFailed.Code
	} else if (r.Generation >= 0 || r.MemberID != "") && c.notCoordinator() {
		code = kerr.NotCoordinator.Code
	} else if r.Generation >= 0 || r.MemberID != "" {
		co := c.s.groups
		co.mu.Lock()
		code = co.memberCheck(r.Group, r.MemberID, r.Generation)
		co.mu.Unlock()
	}
	var offs []core.GroupOffset
	for _, t := range r.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		tcode := code
		if tcode == 0 && !c.allowed("OffsetCommit", auth.Topic, t.Topic, auth.Read) {
			tcode = kerr.TopicAuthorizationFailed.Code
		}
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, tcode
			if tcode == 0 {
				offs = append(offs, core.GroupOffset{Topic: t.Topic, Partition: int(p.Partition), Offset: p.Offset})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(offs) > 0 {
		if err := c.s.broker.CommitOffsets(ctx, r.Group, offs); err != nil {
			ec := errCode(err)
			if ec == kerr.InvalidRequest.Code {
				ec = kerr.InvalidCommitOffsetSize.Code
			}
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					if resp.Topics[i].Partitions[j].ErrorCode == 0 {
						resp.Topics[i].Partitions[j].ErrorCode = ec
					}
				}
			}
		}
	}
	return resp
}

// committed returns a group's committed offsets by topic and partition.
func (c *conn) committed(group string) map[string]map[int32]int64 {
	out := map[string]map[int32]int64{}
	for _, o := range c.s.broker.GroupOffsets(group, "") {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][int32(o.Partition)] = o.Offset
	}
	return out
}

func (c *conn) offsetFetch(ctx context.Context, r *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
	fetchOne := func(group string, topics []kmsg.OffsetFetchRequestTopic, all bool) (int16, []kmsg.OffsetFetchResponseTopic) {
		if !c.groupAllowed("OffsetFetch", group, auth.Describe) {
			return kerr.GroupAuthorizationFailed.Code, nil
		}
		// Never answer from a lagging copy: a consumer resumes from this.
		if err := c.s.broker.Store().CatalogSync(ctx); err != nil {
			return errCode(err), nil
		}
		have := c.committed(group)
		var out []kmsg.OffsetFetchResponseTopic
		if all {
			names := make([]string, 0, len(have))
			for t := range have {
				names = append(names, t)
			}
			sort.Strings(names)
			for _, t := range names {
				ft := kmsg.OffsetFetchRequestTopic{Topic: t}
				for p := range have[t] {
					ft.Partitions = append(ft.Partitions, p)
				}
				sort.Slice(ft.Partitions, func(i, j int) bool { return ft.Partitions[i] < ft.Partitions[j] })
				topics = append(topics, ft)
			}
		}
		for _, t := range topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
				if off, ok := have[t.Topic][p]; ok {
					rp.Offset = off
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			out = append(out, rt)
		}
		return 0, out
	}
	if r.Version >= 8 {
		for _, g := range r.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group = g.Group
			var topics []kmsg.OffsetFetchRequestTopic
			for _, t := range g.Topics {
				topics = append(topics, kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions})
			}
			code, ts := fetchOne(g.Group, topics, g.Topics == nil)
			rg.ErrorCode = code
			for _, t := range ts {
				gt := kmsg.NewOffsetFetchResponseGroupTopic()
				gt.Topic = t.Topic
				for _, p := range t.Partitions {
					gp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					gp.Partition, gp.Offset, gp.LeaderEpoch = p.Partition, p.Offset, -1
					gt.Partitions = append(gt.Partitions, gp)
				}
				rg.Topics = append(rg.Topics, gt)
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}
	resp.ErrorCode, resp.Topics = fetchOne(r.Group, r.Topics, r.Topics == nil)
	return resp
}

func (c *conn) describeGroups(r *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
	co := c.s.groups
	for _, name := range r.Groups {
		dg := kmsg.NewDescribeGroupsResponseGroup()
		dg.Group = name
		if !c.groupAllowed("DescribeGroups", name, auth.Describe) {
			dg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, dg)
			continue
		}
		co.mu.Lock()
		g := co.groups[name]
		if g == nil {
			dg.State = "Dead"
		} else {
			dg.State, dg.ProtocolType, dg.Protocol = g.state, g.protocolType, g.protocol
			ids := make([]string, 0, len(g.members))
			for id := range g.members {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				m := g.members[id]
				dm := kmsg.NewDescribeGroupsResponseGroupMember()
				dm.MemberID, dm.ClientID, dm.ClientHost, dm.MemberAssignment = id, m.clientID, m.host, m.assignment
				if m.instanceID != "" {
					dm.InstanceID = kmsg.StringPtr(m.instanceID)
				}
				for _, p := range m.protocols {
					if p.Name == g.protocol {
						dm.ProtocolMetadata = p.Metadata
					}
				}
				dg.Members = append(dg.Members, dm)
			}
		}
		co.mu.Unlock()
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (c *conn) listGroups(r *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := r.ResponseKind().(*kmsg.ListGroupsResponse)
	co := c.s.groups
	co.mu.Lock()
	defer co.mu.Unlock()
	names := make([]string, 0, len(co.groups))
	for n := range co.groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		g := co.groups[n]
		if !c.allowedQuiet(auth.Group, n, auth.Describe) {
			continue
		}
		if len(r.StatesFilter) > 0 {
			ok := false
			for _, s := range r.StatesFilter {
				ok = ok || s == g.state
			}
			if !ok {
				continue
			}
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState = n, g.protocolType, g.state
		resp.Groups = append(resp.Groups, lg)
	}
	return resp
}
