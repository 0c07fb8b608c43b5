package server

import (
	"context"

	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway"
	"github.com/weir-broker/weir/internal/telemetry"
	"github.com/weir-broker/weir/raftlog"
)

// newTelemetry builds the node's telemetry from cfg.Telemetry, filling
// the node identity from the node's own configuration.
func newTelemetry(cfg Config) (*telemetry.Telemetry, error) {
	tc := cfg.Telemetry
	if tc.NodeID == 0 {
		tc.NodeID = cfg.NodeID
	}
	if tc.DataDir == "" {
		tc.DataDir = cfg.DataDir
	}
	if tc.Logger == nil {
		tc.Logger = cfg.Logger
	}
	return telemetry.New(context.Background(), tc)
}

// wireTelemetry starts the node-level observers and mounts GET /metrics
// and the node's part of GET /v1/stats on the gateway.
// pipeLags reports pipeline lag once the pipeline service has started.
func wireTelemetry(tel *telemetry.Telemetry, nodeID uint64, host *raftlog.Host, broker *core.Broker, gw *gateway.Server, pipeLags func() []core.PipelineLag, queuePending func() []core.QueuePending) error {
	if err := tel.Observe(telemetry.Sources{Broker: broker, Groups: host.CommittedGroups, PipelineLags: pipeLags, QueuePending: queuePending,
		Tiered: host.TieredStats, WebSocket: gw.WSCounters}); err != nil {
		return err
	}
	gw.Handle(gateway.Route{Path: "/metrics", Handler: fasthttpadaptor.NewFastHTTPHandler(tel.MetricsHandler())})
	gw.SetStatsSource(gateway.StatsSource{
		NodeID: nodeID,
		Nodes: func() []gateway.NodeStats {
			var out []gateway.NodeStats
			for _, n := range host.Nodes() {
				out = append(out, gateway.NodeStats{ID: n.ID, RaftAddr: n.RaftAddr, HTTPAddr: n.HTTPAddr})
			}
			return out
		},
		Groups:        host.CommittedGroups,
		DiskBytes:     tel.DiskBytes,
		LeaderChanges: tel.LeaderChanges,
		Tracing:       tel.Tracing(),

		TopicCounters:    tel.TopicCounters,
		PipelineCounters: tel.PipelineCounters,
	})
	return nil
}
