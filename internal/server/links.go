package server

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway"
	"github.com/weir-broker/weir/internal/link"
	"github.com/weir-broker/weir/internal/telemetry"
)

// Cluster links (geo-replication, docs/geo-replication.md): the link
// service behind /v1/links, and the runner that mirrors the links' topics
// into this cluster. Start calls startLinks once the broker exists and
// runs the returned loop with the node's other loops.

// startLinks gives the gateway the link service and observer, registers
// the weir_link_lag metrics, and returns the runner's loop (it returns
// once the runner's pullers have stopped).
func startLinks(cfg Config, broker *core.Broker, gc *gateway.Config, tel *telemetry.Telemetry) func(context.Context) {
	lc := cfg.Links
	lc.Logger = cfg.Logger
	links := core.NewLinks(broker.Store())
	r := link.New(broker, links, lc)
	gc.Links, gc.LinkObserver = links, r
	if err := observeLinks(tel, r); err != nil {
		cfg.Logger.Warn("link metrics", "err", err)
	}
	return r.Run
}

// observeLinks exports the lag of the mirror partitions this node pulls:
// weir_link_lag (records) and weir_link_lag_time_seconds.
func observeLinks(tel *telemetry.Telemetry, r *link.Runner) error {
	mp := tel.MeterProvider()
	if mp == nil {
		return nil
	}
	m := mp.Meter("github.com/weir-broker/weir/internal/link")
	records, err := m.Int64ObservableGauge("weir.link.lag", metric.WithUnit("{record}"),
		metric.WithDescription("Records of the source partition not yet mirrored, per link and mirror partition (on its leader)"))
	if err != nil {
		return err
	}
	secs, err := m.Float64ObservableGauge("weir.link.lag.time", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest source record not yet mirrored, per link and mirror partition (on its leader)"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, lg := range r.Lags() {
			attrs := metric.WithAttributes(attribute.String("link", lg.Link), attribute.String("topic", lg.Topic),
				attribute.Int("partition", lg.Partition))
			o.ObserveInt64(records, lg.Records, attrs)
			o.ObserveFloat64(secs, lg.Seconds, attrs)
		}
		return nil
	}, records, secs)
	return err
}
