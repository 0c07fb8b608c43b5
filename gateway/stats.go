package gateway

import (
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"github.com/weir-broker/weir/core"
)

// StatsSource supplies the parts of GET /v1/stats that core does not know;
// internal/server fills it. Every field may be zero.
type StatsSource struct {
	NodeID uint64
	// Nodes lists the cluster's members.
	Nodes func() []NodeStats
	// Groups lists the consumer groups that committed offsets.
	Groups func() []string
	// DiskBytes is this node's disk use (−1: not measured yet).
	DiskBytes func() int64
	// LeaderChanges counts leader changes per "topic/partition".
	LeaderChanges func() map[string]int64
	// Tracing says whether spans are exported.
	Tracing bool
	// TopicCounters and PipelineCounters return this node's totals per
	// topic and per pipeline (internal/telemetry keeps them; nil: none).
	TopicCounters    func() map[string]core.TopicCounters
	PipelineCounters func() map[string]core.PipelineCounters
}

// NodeStats is one cluster member in GET /v1/stats.
type NodeStats struct {
	ID       uint64 `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// WSCounters returns the open WebSocket connections and the clients
// dropped so far for reading too slowly (the weir.ws.connections and
// weir.ws.dropped metrics; internal/telemetry observes them).
func (s *Server) WSCounters() (connections, dropped int64) {
	return s.ws.open.Load(), s.ws.dropped.Load()
}

// SetStatsSource supplies the node-level parts of GET /v1/stats. Call it
// before Serve.
func (s *Server) SetStatsSource(src StatsSource) { s.stats = src }

type statsPartitionJSON struct {
	partitionJSON
	LeaderChanges int64 `json:"leader_changes"`
}

type statsTopicJSON struct {
	Name              string               `json:"name"`
	ReplicationFactor int                  `json:"replication_factor"`
	Partitions        []statsPartitionJSON `json:"partitions"`
	RecordsIn         int64                `json:"records_in"`
	BytesIn           int64                `json:"bytes_in"`
	RecordsOut        int64                `json:"records_out"`
	BytesOut          int64                `json:"bytes_out"`
	HighWatermark     int64                `json:"high_watermark"` // sum over partitions
}

type statsGroupJSON struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	Lag       int64  `json:"lag"`
}

type statsPipelineJSON struct {
	Name         string `json:"name"`
	State        string `json:"state,omitempty"` // running or paused
	Processed    int64  `json:"processed"`
	Failed       int64  `json:"failed"`
	DeadLettered int64  `json:"dead_lettered"`
	Lag          int64  `json:"lag"`
	LastError    string `json:"last_error,omitempty"`
	WasmCalls    int64  `json:"wasm_calls"` // on this node
}

type statsJSON struct {
	Time int64 `json:"time"`
	Node struct {
		ID        uint64 `json:"id"`
		Ready     bool   `json:"ready"`
		DiskBytes int64  `json:"disk_bytes"`
		Tracing   bool   `json:"tracing"`
	} `json:"node"`
	Nodes     []NodeStats         `json:"nodes"`
	Topics    []statsTopicJSON    `json:"topics"`
	Groups    []statsGroupJSON    `json:"groups"`
	Pipelines []statsPipelineJSON `json:"pipelines"`
	WebSocket struct {
		Connections int64 `json:"connections"`
		Dropped     int64 `json:"dropped"`
	} `json:"websocket"`
}

// statsPipelines reports every pipeline with its progress: from the
// replicated state when the pipeline service is mounted (cluster-wide
// counts: processed records, failed attempts, dead-lettered records, lag),
// else from this node's counters (records of failed batches).
func (s *Server) statsPipelines(local map[string]core.PipelineCounters) []statsPipelineJSON {
	out := []statsPipelineJSON{}
	if s.pipes != nil {
		for _, spec := range s.pipes.List() {
			_, parts, err := s.pipes.Status(spec.Name)
			if err != nil {
				continue
			}
			pj := statsPipelineJSON{Name: spec.Name, State: "running", WasmCalls: local[spec.Name].WasmCalls}
			if spec.Paused {
				pj.State = "paused"
			}
			for _, p := range parts {
				pj.Processed += p.Processed
				pj.Failed += p.Failed
				pj.DeadLettered += p.DeadLettered
				pj.Lag += p.Lag
				if pj.LastError == "" {
					pj.LastError = p.LastError
				}
			}
			out = append(out, pj)
		}
		return out
	}
	for _, name := range core.PipelineNames(s.broker.Store()) {
		if _, ok := local[name]; !ok {
			local[name] = core.PipelineCounters{}
		}
	}
	for name, c := range local {
		out = append(out, statsPipelineJSON{Name: name, Processed: c.Processed, Failed: c.Failed, DeadLettered: c.DeadLettered, WasmCalls: c.WasmCalls})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// getStats serves GET /v1/stats: one JSON snapshot of this node's view of
// the cluster for the dashboard (docs/observability.md).
func (s *Server) getStats(c *call, _ *clusterReq) {
	ctx := c.ctx
	src := s.stats
	st := s.broker.Store()
	tel := s.broker.Telemetry()
	var out statsJSON
	out.Time = time.Now().UnixMilli()
	out.Node.ID = src.NodeID
	out.Node.Ready = st.Ready()
	out.Node.DiskBytes = -1
	if src.DiskBytes != nil {
		out.Node.DiskBytes = src.DiskBytes()
	}
	out.Node.Tracing = src.Tracing || tel.Tracing()
	out.Nodes = []NodeStats{}
	if src.Nodes != nil {
		out.Nodes = append(out.Nodes, src.Nodes()...)
	}
	var lc map[string]int64
	if src.LeaderChanges != nil {
		lc = src.LeaderChanges()
	}
	var counters map[string]core.TopicCounters
	if src.TopicCounters != nil {
		counters = src.TopicCounters()
	}
	out.Topics = []statsTopicJSON{}
	for _, t := range st.Topics() {
		_, parts, err := s.broker.Topic(t.Name)
		if err != nil {
			continue
		}
		c := counters[t.Name]
		tj := statsTopicJSON{Name: t.Name, ReplicationFactor: t.ReplicationFactor, Partitions: []statsPartitionJSON{},
			RecordsIn: c.RecordsIn, BytesIn: c.BytesIn, RecordsOut: c.RecordsOut, BytesOut: c.BytesOut}
		for _, p := range parts {
			pj := statsPartitionJSON{partitionJSON: partitionJSON{Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, LogStart: p.LogStart, HighWatermark: p.HighWatermark}}
			if pj.Replicas == nil {
				pj.Replicas = []uint64{}
			}
			pj.LeaderChanges = lc[t.Name+"/"+strconv.Itoa(p.Partition)]
			tj.HighWatermark += p.HighWatermark
			tj.Partitions = append(tj.Partitions, pj)
		}
		out.Topics = append(out.Topics, tj)
	}
	out.Groups = []statsGroupJSON{}
	if src.Groups != nil {
		for _, g := range src.Groups() {
			for _, o := range s.broker.GroupOffsets(g, "") {
				out.Groups = append(out.Groups, statsGroupJSON{g, o.Topic, o.Partition, o.Offset, o.Lag})
			}
		}
	}
	pipes := map[string]core.PipelineCounters{}
	if src.PipelineCounters != nil {
		pipes = src.PipelineCounters()
	}
	out.Pipelines = s.statsPipelines(pipes)
	out.WebSocket.Connections, out.WebSocket.Dropped = s.WSCounters()
	b, _ := json.Marshal(out)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, 200, append(b, '\n'))
}
