package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

type versions struct{ min, max int16 }

// supported is every API this listener answers with its version range
// (docs/kafka.md has the same table). Produce starts at v3 and Fetch at v4:
// only record batches v2 (magic 2) are supported. Fetch stops at v12 and
// Metadata carries topic names (Fetch v13+ addresses topics by id).
var supported = map[int16]versions{
	0:  {3, 11}, // Produce
	1:  {4, 12}, // Fetch
	2:  {1, 8},  // ListOffsets
	3:  {1, 12}, // Metadata
	8:  {2, 9},  // OffsetCommit
	9:  {1, 8},  // OffsetFetch
	10: {0, 4},  // FindCoordinator
	11: {0, 9},  // JoinGroup
	12: {0, 4},  // Heartbeat
	13: {0, 5},  // LeaveGroup
	14: {0, 5},  // SyncGroup
	15: {0, 5},  // DescribeGroups
	16: {0, 4},  // ListGroups
	17: {0, 1},  // SaslHandshake
	18: {0, 3},  // ApiVersions
	19: {0, 7},  // CreateTopics
	20: {0, 6},  // DeleteTopics
	22: {0, 4},  // InitProducerId
	32: {0, 4},  // DescribeConfigs
	36: {0, 2},  // SaslAuthenticate
	37: {0, 3},  // CreatePartitions
}

func (c *conn) apiVersions(v int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(v)
	keys := make([]int, 0, len(supported))
	for k := range supported {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	for _, k := range keys {
		vr := supported[int16(k)]
		ak := kmsg.NewApiVersionsResponseApiKey()
		ak.ApiKey, ak.MinVersion, ak.MaxVersion = int16(k), vr.min, vr.max
		resp.ApiKeys = append(resp.ApiKeys, ak)
	}
	return resp
}

// errCode maps a core error to a Kafka error code (the one table).
func errCode(err error) int16 {
	var ke *kerr.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, core.ErrTopicNotFound), errors.Is(err, core.ErrPartitionNotFound):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, core.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, core.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, core.ErrTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, core.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, core.ErrNotLeader):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, core.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	case errors.Is(err, core.ErrRateLimited):
		return kerr.ThrottlingQuotaExceeded.Code
	case errors.Is(err, core.ErrForbidden):
		return kerr.TopicAuthorizationFailed.Code
	case errors.Is(err, core.ErrMirrorTopic): // a read-only mirror (docs/geo-replication.md)
		return kerr.PolicyViolation.Code
	case errors.As(err, new(*core.RecordError)):
		return kerr.InvalidRecord.Code
	case errors.Is(err, core.ErrBadRequest):
		return kerr.InvalidRequest.Code
	}
	return kerr.UnknownServerError.Code
}

func errMsg(err error) *string {
	if err == nil {
		return nil
	}
	m := err.Error()
	return &m
}

// allowed checks an ACL for the connection's principal and audits a denial.
func (c *conn) allowed(api string, rt auth.ResourceType, name string, op auth.Operation) bool {
	sec := c.s.cfg.Auth
	if !sec.Enabled() {
		return true
	}
	if sec.Allowed(c.principal, rt, name, op) {
		return true
	}
	sec.Audit(auth.Event{Principal: c.principal.Name, Via: c.principal.Via, Action: "kafka " + api,
		Resource: string(rt) + ":" + name, Operation: string(op), Result: "denied", Source: c.addr,
		Reason: fmt.Sprintf("principal %q may not %s %s %q", c.principal.Name, op, rt, name)})
	return false
}

// audited records the outcome of an allowed admin action (a topic
// created, deleted or grown), as the HTTP API records its audited rows
// (docs/security.md, "Audit log"): result ok, or error with the Kafka
// error as the reason.
func (c *conn) audited(api string, name string, op auth.Operation, code int16, msg *string) {
	sec := c.s.cfg.Auth
	if !sec.Enabled() {
		return
	}
	ev := auth.Event{Principal: c.principal.Name, Via: c.principal.Via, Action: "kafka " + api,
		Resource: string(auth.Topic) + ":" + name, Operation: string(op), Result: "ok", Source: c.addr}
	if code != 0 {
		ev.Result, ev.Reason = "error", kerr.ErrorForCode(code).Error()
		if msg != nil {
			ev.Reason += ": " + *msg
		}
	}
	sec.Audit(ev)
}

func (c *conn) saslHandshake(r *kmsg.SASLHandshakeRequest) *kmsg.SASLHandshakeResponse {
	resp := r.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = []string{"PLAIN", "OAUTHBEARER"}
	switch r.Mechanism {
	case "PLAIN", "OAUTHBEARER":
		c.mechanism = r.Mechanism
	default:
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
	}
	return resp
}

func (c *conn) saslAuthenticate(r *kmsg.SASLAuthenticateRequest) (kmsg.Response, error) {
	resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	fail := func(msg string) (kmsg.Response, error) {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = &msg
		c.s.cfg.Auth.Audit(auth.Event{Action: "kafka SaslAuthenticate", Resource: "cluster:cluster", Result: "unauthenticated", Source: c.addr, Reason: msg})
		return resp, nil
	}
	var cred string
	switch c.mechanism {
	case "PLAIN":
		// authzid NUL authcid NUL password; the password is a Weir token.
		parts := strings.Split(string(r.SASLAuthBytes), "\x00")
		if len(parts) != 3 {
			return fail("malformed PLAIN message")
		}
		cred = parts[2]
	case "OAUTHBEARER":
		// gs2-header ^A auth=Bearer <jwt> ^A ^A (RFC 7628).
		for _, kv := range strings.Split(string(r.SASLAuthBytes), "\x01") {
			if v, ok := strings.CutPrefix(kv, "auth="); ok {
				if tok, ok := strings.CutPrefix(v, "Bearer "); ok {
					cred = strings.TrimSpace(tok)
				}
			}
		}
		if cred == "" {
			return fail("malformed OAUTHBEARER message: no auth=Bearer token")
		}
	default:
		return fail("SaslAuthenticate before SaslHandshake")
	}
	if !c.s.cfg.Auth.Enabled() {
		return resp, nil // nothing to check: the port is open like the HTTP API
	}
	p, err := c.s.cfg.Auth.Authenticate(cred)
	if err != nil {
		return fail(err.Error())
	}
	c.principal, c.authenticated = p, true
	return resp, nil
}

func (c *conn) metadata(r *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	resp := r.ResponseKind().(*kmsg.MetadataResponse)
	self := int32(c.s.cfg.NodeID)
	brokers := c.s.brokers()
	ids := make([]uint64, 0, len(brokers))
	for id := range brokers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		host, port, _ := splitHostPort(brokers[id].Addr)
		br := kmsg.NewMetadataResponseBroker()
		br.NodeID, br.Host, br.Port = int32(id), host, port
		resp.Brokers = append(resp.Brokers, br)
	}
	resp.ClusterID = &c.s.cfg.ClusterID
	resp.ControllerID = self
	if id, ok := c.s.coordinator(brokers); ok {
		resp.ControllerID = int32(id)
	}
	var names []string
	if r.Topics == nil {
		for _, t := range c.s.broker.Store().Topics() {
			if c.allowedQuiet(auth.Topic, t.Name, auth.Describe) {
				names = append(names, t.Name)
			}
		}
		sort.Strings(names)
	} else {
		for _, t := range r.Topics {
			if t.Topic != nil {
				names = append(names, *t.Topic)
			}
		}
	}
	for _, name := range names {
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic = kmsg.StringPtr(name)
		if !c.allowed("Metadata", auth.Topic, name, auth.Describe) {
			mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		_, parts, err := c.s.broker.Topic(name)
		if err != nil {
			mt.ErrorCode = errCode(err)
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		for _, pi := range parts {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition = int32(pi.Partition)
			mp.Leader, mp.LeaderEpoch = kafkaLeader(pi, self, brokers), -1
			for _, r := range pi.Replicas {
				if _, ok := brokers[r]; ok {
					mp.Replicas = append(mp.Replicas, int32(r))
				}
			}
			if len(mp.Replicas) == 0 {
				mp.Replicas = []int32{mp.Leader}
			}
			if pi.Leader == 0 {
				// No leader known here (an election, or this node just
				// restarted): say so, as Kafka does, and the client asks
				// again, rather than naming this node, whose replica may
				// be behind.
				mp.ErrorCode, mp.Leader = kerr.LeaderNotAvailable.Code, -1
			}
			mp.ISR = mp.Replicas
			mt.Partitions = append(mt.Partitions, mp)
		}
		resp.Topics = append(resp.Topics, mt)
	}
	return resp
}

// kafkaLeader is the broker Metadata names as a partition's leader: its
// Raft leader when that node has a Kafka listener, else this node (which
// then forwards writes through core).
func kafkaLeader(pi core.PartitionInfo, self int32, brokers map[uint64]Broker) int32 {
	if _, ok := brokers[pi.Leader]; ok && pi.Leader != 0 {
		return int32(pi.Leader)
	}
	return self
}

// allowedQuiet checks an ACL without auditing (listing filters what a
// principal cannot see, like the HTTP topic list).
func (c *conn) allowedQuiet(rt auth.ResourceType, name string, op auth.Operation) bool {
	sec := c.s.cfg.Auth
	return !sec.Enabled() || sec.Allowed(c.principal, rt, name, op)
}

func (c *conn) createTopics(ctx context.Context, r *kmsg.CreateTopicsRequest) *kmsg.CreateTopicsResponse {
	resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		rt.NumPartitions, rt.ReplicationFactor = t.NumPartitions, t.ReplicationFactor
		if !c.allowed("CreateTopics", auth.Topic, t.Topic, auth.Create) {
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		cfg := core.TopicConfig{Name: t.Topic, Partitions: max(0, int(t.NumPartitions)), ReplicationFactor: max(0, int(t.ReplicationFactor))}
		var bad error
		if len(t.ReplicaAssignment) > 0 {
			bad = errors.New("manual replica assignment is not supported: Weir places replicas")
		}
		for _, kv := range t.Configs {
			if kv.Value == nil {
				continue
			}
			if err := setTopicConfig(&cfg, kv.Name, *kv.Value); err != nil {
				bad = fmt.Errorf("config %s: %v", kv.Name, err)
			}
		}
		if bad != nil {
			rt.ErrorCode, rt.ErrorMessage = kerr.InvalidConfig.Code, errMsg(bad)
			c.audited("CreateTopics", t.Topic, auth.Create, rt.ErrorCode, rt.ErrorMessage)
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		if r.ValidateOnly {
			if !core.ValidTopicName(t.Topic) {
				rt.ErrorCode = kerr.InvalidTopicException.Code
			} else if _, err := c.s.broker.Store().Topic(t.Topic); err == nil {
				rt.ErrorCode = kerr.TopicAlreadyExists.Code
			}
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		info, err := c.s.broker.CreateTopic(ctx, cfg)
		if err != nil {
			rt.ErrorCode, rt.ErrorMessage = errCode(err), errMsg(err)
			if errors.Is(err, core.ErrBadRequest) {
				rt.ErrorCode = kerr.InvalidRequest.Code
				if !core.ValidTopicName(t.Topic) {
					rt.ErrorCode = kerr.InvalidTopicException.Code
				} else if t.NumPartitions != -1 && t.NumPartitions <= 0 || cfg.Partitions > c.s.broker.Config().MaxPartitions {
					rt.ErrorCode = kerr.InvalidPartitions.Code
				} else if t.ReplicationFactor != -1 && cfg.ReplicationFactor > c.s.broker.Store().NodeCount() {
					rt.ErrorCode = kerr.InvalidReplicationFactor.Code
				}
			}
		} else {
			rt.NumPartitions, rt.ReplicationFactor = int32(info.Partitions), int16(info.ReplicationFactor)
		}
		c.audited("CreateTopics", t.Topic, auth.Create, rt.ErrorCode, rt.ErrorMessage)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *conn) deleteTopics(ctx context.Context, r *kmsg.DeleteTopicsRequest) *kmsg.DeleteTopicsResponse {
	resp := r.ResponseKind().(*kmsg.DeleteTopicsResponse)
	names := r.TopicNames
	for _, t := range r.Topics {
		if t.Topic != nil {
			names = append(names, *t.Topic)
		}
	}
	for _, name := range names {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic = kmsg.StringPtr(name)
		if !c.allowed("DeleteTopics", auth.Topic, name, auth.Delete) {
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
		} else {
			if err := c.s.broker.DeleteTopic(ctx, name); err != nil {
				rt.ErrorCode, rt.ErrorMessage = errCode(err), errMsg(err)
			}
			c.audited("DeleteTopics", name, auth.Delete, rt.ErrorCode, rt.ErrorMessage)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// createPartitions grows topics (core.Broker.AddPartitions). Each topic's
// Count is its new partition count in all; manual assignments are refused
// (Weir places replicas); ValidateOnly checks without growing.
func (c *conn) createPartitions(ctx context.Context, r *kmsg.CreatePartitionsRequest) *kmsg.CreatePartitionsResponse {
	resp := r.ResponseKind().(*kmsg.CreatePartitionsResponse)
	named := map[string]int{}
	for _, t := range r.Topics {
		named[t.Topic]++
	}
	for _, t := range r.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		var err error
		switch {
		case named[t.Topic] > 1: // as Kafka answers a topic named twice
			rt.ErrorCode, err = kerr.InvalidRequest.Code, fmt.Errorf("topic %q is named more than once", t.Topic)
		case !c.allowed("CreatePartitions", auth.Topic, t.Topic, auth.Alter):
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
		default:
			rt.ErrorCode, err = c.growTopic(ctx, t, r.ValidateOnly)
			if !r.ValidateOnly {
				c.audited("CreatePartitions", t.Topic, auth.Alter, rt.ErrorCode, errMsg(err))
			}
		}
		rt.ErrorMessage = errMsg(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// growTopic grows one topic of a CreatePartitions request, or with
// validateOnly checks that it could, and returns the Kafka error code.
func (c *conn) growTopic(ctx context.Context, t kmsg.CreatePartitionsRequestTopic, validateOnly bool) (int16, error) {
	if len(t.Assignment) > 0 {
		return kerr.InvalidReplicaAssignment.Code, errors.New("manual replica assignment is not supported: Weir places replicas")
	}
	var err error
	if validateOnly {
		err = c.s.broker.CheckAddPartitions(t.Topic, int(t.Count))
	} else {
		_, err = c.s.broker.AddPartitions(ctx, t.Topic, int(t.Count))
	}
	if errors.Is(err, core.ErrBadRequest) { // the count, or too few nodes for the topic's replicas
		return kerr.InvalidPartitions.Code, err
	}
	return errCode(err), err
}

func (c *conn) describeConfigs(r *kmsg.DescribeConfigsRequest) *kmsg.DescribeConfigsResponse {
	resp := r.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, res := range r.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		var entries [][2]string
		switch res.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			if !c.allowed("DescribeConfigs", auth.Topic, res.ResourceName, auth.Describe) {
				rr.ErrorCode = kerr.TopicAuthorizationFailed.Code
				break
			}
			t, err := c.s.broker.Store().Topic(res.ResourceName)
			if err != nil {
				rr.ErrorCode, rr.ErrorMessage = errCode(err), errMsg(err)
				break
			}
			entries = [][2]string{
				{"retention.ms", strconv.FormatInt(t.RetentionMs, 10)},
				{"retention.bytes", strconv.FormatInt(t.RetentionBytes, 10)},
				{"cleanup.policy", "delete"},
				{"compression.type", t.StoredCompression()},
				{"max.message.bytes", strconv.Itoa(c.s.broker.Config().MaxRecordBytes)},
				{"message.timestamp.type", "CreateTime"},
				{"replication.factor", strconv.Itoa(t.ReplicationFactor)},
				{"remote.storage.enable", strconv.FormatBool(t.Tiered)},
				{"segment.bytes", strconv.FormatInt(t.SegmentBytes, 10)},
				{"local.retention.ms", strconv.FormatInt(t.LocalRetentionMs, 10)},
				{"local.retention.bytes", strconv.FormatInt(t.LocalRetentionBytes, 10)},
			}
		case kmsg.ConfigResourceTypeBroker:
			entries = [][2]string{
				{"broker.id", strconv.FormatUint(c.s.cfg.NodeID, 10)},
				{"log.retention.ms", strconv.FormatInt(c.s.broker.Config().DefaultRetentionMs, 10)},
				{"socket.request.max.bytes", strconv.Itoa(c.s.cfg.MaxRequestBytes)},
				{"auto.create.topics.enable", "false"},
			}
		default:
			rr.ErrorCode = kerr.InvalidRequest.Code
			rr.ErrorMessage = kmsg.StringPtr("only topic and broker configs are described")
		}
		want := map[string]bool{}
		for _, k := range res.ConfigNames {
			want[k] = true
		}
		for _, e := range entries {
			if len(want) > 0 && !want[e[0]] {
				continue
			}
			cfg := kmsg.NewDescribeConfigsResponseResourceConfig()
			cfg.Name, cfg.Value, cfg.ReadOnly = e[0], kmsg.StringPtr(e[1]), true
			cfg.Source = kmsg.ConfigSourceDefaultConfig
			if e[0] == "retention.ms" || e[0] == "retention.bytes" {
				cfg.Source = kmsg.ConfigSourceDynamicTopicConfig
			}
			rr.Configs = append(rr.Configs, cfg)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

// setTopicConfig applies one CreateTopics config Weir knows (others are
// ignored): retention, compression.type (producer, uncompressed or s2),
// and tiered storage as KIP-405 names it (remote.storage.enable,
// local.retention.*; Kafka's -2, "as retention", is Weir's -1), and
// segment.bytes.
func setTopicConfig(cfg *core.TopicConfig, name, value string) error {
	switch name {
	case "compression.type":
		switch value {
		case core.CompressionProducer, core.CompressionUncompressed, core.CompressionS2:
			cfg.Compression = value
			return nil
		}
		return fmt.Errorf("%q: Weir stores compressed batches with S2 only; use producer (the default), uncompressed or s2", value)
	case "remote.storage.enable":
		b, err := strconv.ParseBool(value)
		cfg.Tiered = b
		return err
	}
	v, err := strconv.ParseInt(value, 10, 64)
	local := v
	if local == -2 {
		local = -1
	}
	switch name {
	case "retention.ms":
		cfg.RetentionMs = v
	case "retention.bytes":
		cfg.RetentionBytes = v
	case "segment.bytes":
		cfg.SegmentBytes = v
	case "local.retention.ms":
		cfg.LocalRetentionMs = local
	case "local.retention.bytes":
		cfg.LocalRetentionBytes = local
	default:
		return nil
	}
	return err
}
