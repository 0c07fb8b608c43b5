// Package telemetry sets up OpenTelemetry for a Weir node: the tracer
// provider and its exporter (OTLP over HTTP or gRPC, chosen by the standard
// OTEL_* variables; off when none is set), the meter provider with a
// Prometheus exporter behind GET /metrics (and OTLP when configured), the
// node-level observers (consumer lag, Raft leader changes, disk use), and a
// slog handler that adds trace and span ids to log records.
//
// core only sees the OTel API through core.Telemetry; this package is the
// one place that imports the SDK, and it implements core.Metrics, the hook
// core hands its counts and durations to (metrics.go). internal/server
// wires it:
//
//	tel, err := telemetry.New(ctx, cfg.Telemetry)
//	broker, err := core.NewBroker(store, core.BrokerConfig{Telemetry: tel.Core()})
//	tel.Observe(telemetry.Sources{Broker: broker, Groups: host.CommittedGroups, WebSocket: gw.WSCounters})
//	gw.Handle(gateway.Route{Path: "/metrics", Handler: ...tel.MetricsHandler()})
//	defer tel.Shutdown(ctx)
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-broker/weir/core"
)

const scope = "github.com/weir-broker/weir/internal/telemetry"

// Telemetry is one node's OpenTelemetry setup. Close it with Shutdown.
type Telemetry struct {
	cfg     Config
	core    *core.Telemetry
	metrics *metrics                 // core's counts and durations (metrics.go)
	tp      *sdktrace.TracerProvider // nil: tracing off
	mp      *sdkmetric.MeterProvider
	reg     *promclient.Registry

	disk atomic.Int64 // bytes under DataDir at the last walk; -1 before the first

	leadMu  sync.Mutex
	leaders map[partKey]*leaderTrack

	observeOnce sync.Once
	stop        chan struct{}
	wg          sync.WaitGroup
}

type partKey struct {
	topic     string
	partition int
}

type leaderTrack struct {
	leader  uint64
	changes int64
	attrs   metric.ObserveOption
}

// New builds the providers and exporters from cfg. It fails on a variable
// it cannot honour (an unknown sampler or protocol), never on an
// unreachable collector: export errors are logged later.
func New(ctx context.Context, cfg Config) (*Telemetry, error) {
	cfg.setDefaults()
	e, err := cfg.parseEnv()
	if err != nil {
		return nil, err
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", e.serviceName)}
	if cfg.NodeID != 0 {
		attrs = append(attrs, attribute.String("service.instance.id", "node-"+strconv.FormatUint(cfg.NodeID, 10)))
	}
	for k, v := range e.resourceAttrs {
		if k != "service.name" {
			attrs = append(attrs, attribute.String(k, v))
		}
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		res = resource.NewSchemaless(attrs...)
	}
	t := &Telemetry{cfg: cfg, leaders: map[partKey]*leaderTrack{}, stop: make(chan struct{})}
	t.disk.Store(-1)

	// Traces.
	if cfg.SpanExporter != nil || e.traces {
		sampler := cfg.Sampler
		if sampler == nil {
			sampler = e.sampler
		}
		opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(sampler)}
		if cfg.SpanExporter != nil {
			opts = append(opts, sdktrace.WithSyncer(cfg.SpanExporter))
		} else {
			exp, err := newSpanExporter(ctx, e)
			if err != nil {
				return nil, err
			}
			opts = append(opts, sdktrace.WithBatcher(exp))
		}
		t.tp = sdktrace.NewTracerProvider(opts...)
	}

	// Metrics: Prometheus always, OTLP when asked for.
	t.reg = promclient.NewRegistry()
	t.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pexp, err := otelprom.New(otelprom.WithRegisterer(t.reg), otelprom.WithoutScopeInfo())
	if err != nil {
		t.shutdownProviders(ctx)
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(pexp)}
	if e.metricsOTLP && !e.sdkDisabled {
		mexp, err := newMetricExporter(ctx, e)
		if err != nil {
			t.shutdownProviders(ctx)
			return nil, err
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp, sdkmetric.WithInterval(e.metricInterval))))
	}
	t.mp = sdkmetric.NewMeterProvider(mopts...)

	if t.metrics, err = newMetrics(t.mp.Meter(core.InstrumentationScope)); err != nil {
		t.shutdownProviders(ctx)
		return nil, err
	}
	cc := core.TelemetryConfig{Metrics: t.metrics}
	if t.tp != nil {
		cc.TracerProvider = t.tp
	}
	t.core = core.NewTelemetry(cc)
	if t.tp != nil {
		cfg.Logger.Info("tracing on", "exporter", exporterName(cfg, e), "endpoint", e.traceEndpoint, "sampler", sampledBy(cfg, e))
	}
	return t, nil
}

func exporterName(cfg Config, e env) string {
	if cfg.SpanExporter != nil {
		return "custom"
	}
	if e.traceExporter == "otlp" {
		return "otlp " + e.traceProtocol
	}
	return e.traceExporter
}

func sampledBy(cfg Config, e env) string {
	if cfg.Sampler != nil {
		return cfg.Sampler.Description()
	}
	return e.sampler.Description()
}

func newSpanExporter(ctx context.Context, e env) (sdktrace.SpanExporter, error) {
	switch {
	case e.traceExporter == "console":
		return stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	case e.traceProtocol == "grpc":
		var opts []otlptracegrpc.Option
		if e.traceEndpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(e.traceEndpoint))
		}
		return otlptracegrpc.New(ctx, opts...)
	default:
		var opts []otlptracehttp.Option
		if e.traceEndpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(e.traceEndpoint))
		}
		return otlptracehttp.New(ctx, opts...)
	}
}

func newMetricExporter(ctx context.Context, e env) (sdkmetric.Exporter, error) {
	if e.metricProtocol == "grpc" {
		var opts []otlpmetricgrpc.Option
		if e.metricEndpoint != "" {
			opts = append(opts, otlpmetricgrpc.WithEndpointURL(e.metricEndpoint))
		}
		return otlpmetricgrpc.New(ctx, opts...)
	}
	var opts []otlpmetrichttp.Option
	if e.metricEndpoint != "" {
		opts = append(opts, otlpmetrichttp.WithEndpointURL(e.metricEndpoint))
	}
	return otlpmetrichttp.New(ctx, opts...)
}

// Core returns the API-only view the domain, gateway and pipelines use.
func (t *Telemetry) Core() *core.Telemetry { return t.core }

// TopicCounters returns every topic's totals on this node since it
// started (topics deleted since keep theirs): GET /v1/stats.
func (t *Telemetry) TopicCounters() map[string]core.TopicCounters { return t.metrics.topicCounters() }

// PipelineCounters returns every pipeline's totals on this node.
func (t *Telemetry) PipelineCounters() map[string]core.PipelineCounters {
	return t.metrics.pipelineCounters()
}

// Tracing reports whether spans are recorded and exported.
func (t *Telemetry) Tracing() bool { return t.tp != nil }

// TracerProvider returns the SDK tracer provider, or nil with tracing off.
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if t.tp == nil {
		return nil
	}
	return t.tp
}

// MeterProvider returns the SDK meter provider.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.mp }

// MetricsHandler serves the Prometheus text format (GET /metrics).
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// DiskBytes is the size of the files under DataDir at the last walk, or -1
// before the first walk (or without a DataDir).
func (t *Telemetry) DiskBytes() int64 { return t.disk.Load() }

// Sources are the node's parts the observers read. Any may be nil.
type Sources struct {
	Broker *core.Broker
	// Groups lists the consumer groups that committed offsets (for lag).
	Groups func() []string
	// PipelineLags reports pipelines' lag on the input partitions this
	// node leads (core.Pipelines.Lags).
	PipelineLags func() []core.PipelineLag
	// QueuePending reports priority subscriptions' pending messages per
	// priority on the partitions this node leads (core.Queues.PendingByPriority).
	QueuePending func() []core.QueuePending
	// Tiered reports tiered storage counters and upload backlog (nil: off).
	Tiered func() core.TieredStats
	// WebSocket reports the gateway's open WebSocket connections and the
	// clients dropped for reading too slowly (gateway.Server.WSCounters).
	WebSocket func() (connections, dropped int64)
}

// Observe registers the node-level observers (consumer lag, leader changes,
// disk use) and starts the goroutine that walks the data directory and
// tracks leadership, until Shutdown. Call it once.
func (t *Telemetry) Observe(src Sources) error {
	var err error
	t.observeOnce.Do(func() { err = t.observe(src) })
	return err
}

func (t *Telemetry) observe(src Sources) error {
	m := t.mp.Meter(scope)
	ins, err := newNodeInstruments(m)
	if err != nil {
		return err
	}
	if ins.tiered, err = t.tieredInstruments(m); err != nil {
		return err
	}
	nodeAttr := metric.WithAttributes(attribute.String("node", strconv.FormatUint(t.cfg.NodeID, 10)))
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		t.observeNode(o, src, ins, nodeAttr)
		return nil
	}, append([]metric.Observable{ins.lag, ins.leaderChanges, ins.hwm, ins.pipeLag, ins.queuePending, ins.disk}, ins.tiered.all()...)...)
	if err != nil {
		return err
	}
	if src.WebSocket != nil {
		if err := observeWebSocket(t.mp.Meter(core.InstrumentationScope), src.WebSocket); err != nil {
			return err
		}
	}
	t.wg.Add(1)
	go t.loop(src)
	return nil
}

// nodeInstruments are the node-level gauges and counters Observe exports.
type nodeInstruments struct {
	lag, hwm, pipeLag, queuePending, disk metric.Int64ObservableGauge
	leaderChanges                         metric.Int64ObservableCounter
	tiered                                *tieredMetrics
}

func newNodeInstruments(m metric.Meter) (*nodeInstruments, error) {
	var err error
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		if err != nil {
			return nil
		}
		var g metric.Int64ObservableGauge
		g, err = m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return g
	}
	ins := &nodeInstruments{
		lag: gauge("weir.consumer.lag", "{record}",
			"High watermark minus a consumer group's committed offset, per group, topic and partition"),
		hwm: gauge("weir.partition.high_watermark", "{record}",
			"Next offset to be written, per topic and partition (this node's replica)"),
		pipeLag: gauge("weir.pipeline.lag", "{record}",
			"High watermark minus a pipeline's committed position, per pipeline, input topic and partition (reported by the partition's leader)"),
		queuePending: gauge("weir.queue.pending", "{message}",
			"Messages a priority subscription has indexed and not delivered yet, per topic, subscription and priority (partitions this node leads)"),
		disk: gauge("weir.disk.used", "By", "Bytes of files under the node's data directory"),
	}
	if err != nil {
		return nil, err
	}
	ins.leaderChanges, err = m.Int64ObservableCounter("weir.raft.leader.changes", metric.WithUnit("{change}"),
		metric.WithDescription("Leadership changes of a partition's Raft group seen by this node"))
	if err != nil {
		return nil, err
	}
	return ins, nil
}

// observeNode observes the node-level instruments from src.
func (t *Telemetry) observeNode(o metric.Observer, src Sources, ins *nodeInstruments, nodeAttr metric.ObserveOption) {
	if b := src.Broker; b != nil {
		for _, ti := range b.Store().Topics() {
			for p := 0; p < ti.Partitions; p++ {
				if pi, err := b.Store().PartitionInfo(ti.Name, p); err == nil {
					o.ObserveInt64(ins.hwm, pi.HighWatermark, metric.WithAttributes(attribute.String("topic", ti.Name), attribute.Int("partition", p)))
				}
			}
		}
		if src.Groups != nil {
			for _, g := range src.Groups() {
				for _, gl := range b.GroupOffsets(g, "") {
					o.ObserveInt64(ins.lag, gl.Lag, metric.WithAttributes(attribute.String("group", g), attribute.String("topic", gl.Topic), attribute.Int("partition", gl.Partition)))
				}
			}
		}
	}
	if src.PipelineLags != nil {
		for _, pl := range src.PipelineLags() {
			o.ObserveInt64(ins.pipeLag, pl.Lag, metric.WithAttributes(attribute.String("pipeline", pl.Pipeline), attribute.String("topic", pl.Topic), attribute.Int("partition", pl.Partition)))
		}
	}
	if src.QueuePending != nil {
		for _, qp := range src.QueuePending() {
			o.ObserveInt64(ins.queuePending, qp.Pending, metric.WithAttributes(attribute.String("topic", qp.Topic),
				attribute.String("subscription", qp.Subscription), attribute.String("priority", strconv.Itoa(qp.Priority))))
		}
	}
	t.leadMu.Lock()
	for _, lt := range t.leaders {
		o.ObserveInt64(ins.leaderChanges, lt.changes, lt.attrs)
	}
	t.leadMu.Unlock()
	if d := t.disk.Load(); d >= 0 {
		o.ObserveInt64(ins.disk, d, nodeAttr)
	}
	if src.Tiered != nil {
		ins.tiered.observe(o, src.Tiered(), nodeAttr)
	}
}

// observeWebSocket exports the gateway's WebSocket counters.
func observeWebSocket(m metric.Meter, counters func() (connections, dropped int64)) error {
	conns, err := m.Int64ObservableUpDownCounter("weir.ws.connections", metric.WithUnit("{connection}"), metric.WithDescription("Open WebSocket connections"))
	if err != nil {
		return err
	}
	dropped, err := m.Int64ObservableCounter("weir.ws.dropped", metric.WithUnit("{connection}"), metric.WithDescription("WebSocket connections closed because the client read too slowly"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		c, d := counters()
		o.ObserveInt64(conns, c)
		o.ObserveInt64(dropped, d)
		return nil
	}, conns, dropped)
	return err
}

// loop walks the data directory and checks leadership until Shutdown.
func (t *Telemetry) loop(src Sources) {
	defer t.wg.Done()
	leaderTick := time.NewTicker(t.cfg.LeaderInterval)
	defer leaderTick.Stop()
	diskTick := time.NewTicker(t.cfg.DiskInterval)
	defer diskTick.Stop()
	t.walkDisk()
	for {
		t.checkLeaders(src.Broker)
		select {
		case <-t.stop:
			return
		case <-diskTick.C:
			t.walkDisk()
		case <-leaderTick.C:
		}
	}
}

func (t *Telemetry) walkDisk() {
	if t.cfg.DataDir == "" {
		return
	}
	var n int64
	filepath.WalkDir(t.cfg.DataDir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // files come and go (segments, snapshots) while we walk
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	t.disk.Store(n)
}

// checkLeaders counts, per partition, every time its leader is seen to
// differ from the last one seen (the first election counts).
func (t *Telemetry) checkLeaders(b *core.Broker) {
	if b == nil {
		return
	}
	seen := map[partKey]bool{}
	for _, ti := range b.Store().Topics() {
		for p := 0; p < ti.Partitions; p++ {
			pi, err := b.Store().PartitionInfo(ti.Name, p)
			if err != nil || pi.Leader == 0 {
				continue
			}
			k := partKey{ti.Name, p}
			seen[k] = true
			t.leadMu.Lock()
			lt := t.leaders[k]
			if lt == nil {
				lt = &leaderTrack{attrs: metric.WithAttributes(attribute.String("topic", ti.Name), attribute.Int("partition", p))}
				t.leaders[k] = lt
			}
			if lt.leader != pi.Leader {
				lt.leader = pi.Leader
				lt.changes++
			}
			t.leadMu.Unlock()
		}
	}
	t.leadMu.Lock()
	for k := range t.leaders {
		if !seen[k] {
			if _, err := b.Store().Topic(k.topic); errors.Is(err, core.ErrTopicNotFound) {
				delete(t.leaders, k) // the topic is gone
			}
		}
	}
	t.leadMu.Unlock()
}

// LeaderChanges returns the leader changes counted so far per "topic/partition".
func (t *Telemetry) LeaderChanges() map[string]int64 {
	t.leadMu.Lock()
	defer t.leadMu.Unlock()
	out := make(map[string]int64, len(t.leaders))
	for k, lt := range t.leaders {
		out[k.topic+"/"+strconv.Itoa(k.partition)] = lt.changes
	}
	return out
}

// ForceFlush exports every finished span now (tests; shutdown does it too).
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	if t.tp == nil {
		return nil
	}
	return t.tp.ForceFlush(ctx)
}

// Shutdown stops the observers, flushes and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	select {
	case <-t.stop:
		return nil
	default:
		close(t.stop)
	}
	t.wg.Wait()
	return t.shutdownProviders(ctx)
}

func (t *Telemetry) shutdownProviders(ctx context.Context) error {
	var errs []error
	if t.tp != nil {
		errs = append(errs, t.tp.Shutdown(ctx))
	}
	if t.mp != nil {
		errs = append(errs, t.mp.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// tieredMetrics are the tiered storage instruments (docs/tiered-storage.md).
type tieredMetrics struct {
	backlogBytes, backlogSegments    metric.Int64ObservableGauge
	uploads, uploadedBytes, failures metric.Int64ObservableCounter
}

func (t *Telemetry) tieredInstruments(m metric.Meter) (*tieredMetrics, error) {
	var tm tieredMetrics
	var errs [5]error
	tm.backlogBytes, errs[0] = m.Int64ObservableGauge("weir.tiered.backlog.bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes of closed segments not yet uploaded to object storage, per tiered topic and partition this node leads"))
	tm.backlogSegments, errs[1] = m.Int64ObservableGauge("weir.tiered.backlog.segments", metric.WithUnit("{segment}"),
		metric.WithDescription("Closed segments not yet uploaded to object storage, per tiered topic and partition this node leads"))
	tm.uploads, errs[2] = m.Int64ObservableCounter("weir.tiered.uploads", metric.WithUnit("{segment}"),
		metric.WithDescription("Segments this node uploaded to object storage and recorded in a manifest"))
	tm.uploadedBytes, errs[3] = m.Int64ObservableCounter("weir.tiered.uploaded", metric.WithUnit("By"),
		metric.WithDescription("Bytes this node uploaded to object storage"))
	tm.failures, errs[4] = m.Int64ObservableCounter("weir.tiered.upload.failures", metric.WithUnit("{upload}"),
		metric.WithDescription("Uploads to object storage that failed (retried with backoff)"))
	return &tm, errors.Join(errs[:]...)
}

func (tm *tieredMetrics) all() []metric.Observable {
	return []metric.Observable{tm.backlogBytes, tm.backlogSegments, tm.uploads, tm.uploadedBytes, tm.failures}
}

func (tm *tieredMetrics) observe(o metric.Observer, st core.TieredStats, node metric.ObserveOption) {
	o.ObserveInt64(tm.uploads, st.Uploads, node)
	o.ObserveInt64(tm.uploadedBytes, st.UploadedBytes, node)
	o.ObserveInt64(tm.failures, st.UploadFailures, node)
	for _, b := range st.Backlog {
		attrs := metric.WithAttributes(attribute.String("topic", b.Topic), attribute.Int("partition", b.Partition))
		o.ObserveInt64(tm.backlogBytes, b.Bytes, attrs)
		o.ObserveInt64(tm.backlogSegments, int64(b.Segments), attrs)
	}
}
