package telemetry

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Config configures a node's telemetry. The zero value has tracing off and
// metrics on /metrics only.
type Config struct {
	// Env looks up the standard OTEL_* variables (cmd/weir passes
	// os.LookupEnv). Nil: none is set. See docs/observability.md for the
	// variables read; the OTLP exporters also read their own
	// OTEL_EXPORTER_OTLP_* settings (headers, timeout, TLS, compression)
	// from the process environment.
	Env func(string) (string, bool)
	// ServiceName is service.name when OTEL_SERVICE_NAME is not set;
	// default "weir".
	ServiceName string
	// NodeID becomes service.instance.id "node-<id>" and the node label of
	// weir.disk.used.
	NodeID uint64
	// DataDir is walked every DiskInterval to report disk use; empty: not
	// reported.
	DataDir string
	// DiskInterval between walks of DataDir; default 15 s.
	DiskInterval time.Duration
	// LeaderInterval between checks of partition leadership (for
	// weir.raft.leader.changes); default 1 s.
	LeaderInterval time.Duration
	// SpanExporter, when set, turns tracing on and receives every span
	// synchronously as it ends, instead of the exporter the environment
	// names (tests pass tracetest.NewInMemoryExporter()).
	SpanExporter sdktrace.SpanExporter
	// Sampler overrides OTEL_TRACES_SAMPLER; nil: from the environment,
	// default parentbased_always_on.
	Sampler sdktrace.Sampler
	Logger  *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Env == nil {
		c.Env = func(string) (string, bool) { return "", false }
	}
	if c.ServiceName == "" {
		c.ServiceName = "weir"
	}
	if c.DiskInterval <= 0 {
		c.DiskInterval = 15 * time.Second
	}
	if c.LeaderInterval <= 0 {
		c.LeaderInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// MapEnv returns an Env function over a fixed map (tests, and callers that
// assemble the variables themselves).
func MapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// env is the parsed view of the OTEL_* variables.
type env struct {
	sdkDisabled bool

	traces         bool   // tracing on
	traceExporter  string // otlp, console
	traceProtocol  string // http/protobuf, grpc
	traceEndpoint  string // full URL, "" for the exporter's default
	sampler        sdktrace.Sampler
	serviceName    string
	resourceAttrs  map[string]string
	metricsOTLP    bool
	metricProtocol string
	metricEndpoint string
	metricInterval time.Duration
}

func (c *Config) get(k string) string {
	v, _ := c.Env(k)
	return strings.TrimSpace(v)
}

func (c *Config) has(k string) bool {
	v, ok := c.Env(k)
	return ok && strings.TrimSpace(v) != ""
}

// parseEnv reads the standard variables. Tracing is on when any variable
// that asks for traces is set: OTEL_TRACES_EXPORTER (other than none),
// OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_TRACES_SAMPLER.
func (c *Config) parseEnv() (env, error) {
	var e env
	e.sdkDisabled = strings.EqualFold(c.get("OTEL_SDK_DISABLED"), "true")
	e.serviceName = c.ServiceName
	if v := c.get("OTEL_SERVICE_NAME"); v != "" {
		e.serviceName = v
	}
	e.resourceAttrs = map[string]string{}
	if v := c.get("OTEL_RESOURCE_ATTRIBUTES"); v != "" {
		for _, kv := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return e, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %q is not key=value", kv)
			}
			if dv, err := url.PathUnescape(strings.TrimSpace(val)); err == nil {
				val = dv
			}
			e.resourceAttrs[strings.TrimSpace(k)] = val
		}
	}
	if e.sdkDisabled {
		return e, nil
	}

	exp := strings.ToLower(c.get("OTEL_TRACES_EXPORTER"))
	switch exp {
	case "", "otlp", "console", "none":
	default:
		return e, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: this build supports otlp, console and none", exp)
	}
	e.traceExporter = exp
	if exp == "" {
		e.traceExporter = "otlp"
	}
	e.traces = exp != "none" && (exp != "" || c.has("OTEL_EXPORTER_OTLP_ENDPOINT") || c.has("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || c.has("OTEL_TRACES_SAMPLER"))
	var err error
	if e.traceProtocol, err = c.protocol("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); err != nil {
		return e, err
	}
	e.traceEndpoint = c.endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/v1/traces", e.traceProtocol)
	if e.sampler, err = c.samplerFromEnv(); err != nil {
		return e, err
	}

	mexp := strings.ToLower(c.get("OTEL_METRICS_EXPORTER"))
	for _, m := range strings.Split(mexp, ",") {
		switch strings.TrimSpace(m) {
		case "", "none", "prometheus":
		case "otlp":
			e.metricsOTLP = true
		default:
			return e, fmt.Errorf("OTEL_METRICS_EXPORTER=%q: this build supports otlp, prometheus (always on /metrics) and none", mexp)
		}
	}
	if mexp == "" && (c.has("OTEL_EXPORTER_OTLP_ENDPOINT") || c.has("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")) {
		e.metricsOTLP = true
	}
	if e.metricProtocol, err = c.protocol("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"); err != nil {
		return e, err
	}
	e.metricEndpoint = c.endpoint("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "/v1/metrics", e.metricProtocol)
	e.metricInterval = 60 * time.Second
	if v := c.get("OTEL_METRIC_EXPORT_INTERVAL"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			return e, fmt.Errorf("OTEL_METRIC_EXPORT_INTERVAL=%q: want milliseconds > 0", v)
		}
		e.metricInterval = time.Duration(ms) * time.Millisecond
	}
	return e, nil
}

// protocol reads the signal's protocol variable, else OTEL_EXPORTER_OTLP_PROTOCOL.
func (c *Config) protocol(signalVar string) (string, error) {
	p := c.get(signalVar)
	if p == "" {
		p = c.get("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch p {
	case "", "http/protobuf":
		return "http/protobuf", nil
	case "grpc":
		return "grpc", nil
	}
	return "", fmt.Errorf("OTLP protocol %q: this build supports http/protobuf and grpc", p)
}

// endpoint returns the signal's endpoint URL: the signal variable as is, or
// OTEL_EXPORTER_OTLP_ENDPOINT with the signal's path appended (HTTP only),
// or "" to let the exporter use its default (localhost:4318 / :4317).
func (c *Config) endpoint(signalVar, path, protocol string) string {
	if v := c.get(signalVar); v != "" {
		return v
	}
	base := c.get("OTEL_EXPORTER_OTLP_ENDPOINT")
	if base == "" || protocol == "grpc" {
		return base
	}
	return strings.TrimRight(base, "/") + path
}

func (c *Config) samplerFromEnv() (sdktrace.Sampler, error) {
	name := strings.ToLower(c.get("OTEL_TRACES_SAMPLER"))
	arg := c.get("OTEL_TRACES_SAMPLER_ARG")
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio between 0 and 1", arg)
		}
		return r, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		r, err := ratio()
		return sdktrace.TraceIDRatioBased(r), err
	case "parentbased_traceidratio":
		r, err := ratio()
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), err
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio or their parentbased_ forms", name)
}
