package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/quota"
)

// appendStore is one topic of one partition whose appends return at once,
// and a catalog holding fixed quotas: the gateway's own work is all that
// is left of a produce.
type appendStore struct {
	core.Store
	log     *appendLog
	quotas  map[string][]byte
	changed chan struct{} // never closed: the quotas do not change
}

func (s *appendStore) Topic(name string) (core.TopicInfo, error) {
	return core.TopicInfo{TopicConfig: core.TopicConfig{Name: name, Partitions: 1}}, nil
}
func (s *appendStore) Partition(string, int) (core.PartitionLog, error) { return s.log, nil }
func (s *appendStore) CatalogList(table string) map[string][]byte {
	if table != quota.Table {
		return nil
	}
	return s.quotas
}
func (s *appendStore) CatalogChanged() <-chan struct{} { return s.changed }

type appendLog struct {
	core.PartitionLog
	next atomic.Int64
}

func (l *appendLog) Append(_ context.Context, b *core.AppendBatch) (core.AppendResult, error) {
	return core.AppendResult{BaseOffset: l.next.Add(int64(len(b.Records))) - int64(len(b.Records))}, nil
}

// BenchmarkProduceQuota is the gateway's produce (route match, decode of a
// JSON batch of 100 records of 100 bytes, the broker, the answer) around
// an append that returns at once, on two gateways: one with no quota
// stored, one with a default quota so generous it is never hit. The two
// are called in turn (the order alternating), so that the load of a
// shared machine falls on both alike; it reports the median time of a
// request of each and the check's cost, quota-% (docs/benchmarks.md,
// "Quotas").
//
//	go test -run '^$' -bench ProduceQuota -count 3 ./gateway
func BenchmarkProduceQuota(b *testing.B) {
	var recs []string
	for i := range 100 {
		recs = append(recs, fmt.Sprintf(`{"key":"k%d","value":"%s"}`, i, strings.Repeat("v", 100)))
	}
	body := []byte(`{"records":[` + strings.Join(recs, ",") + `]}`)
	generous, _ := json.Marshal(quota.Quota{Principal: quota.Default, ProduceBytesPerSec: quota.MaxRate,
		FetchBytesPerSec: quota.MaxRate, RequestsPerSec: quota.MaxRate})
	none := benchProducer(b, body, nil)
	def := benchProducer(b, body, map[string][]byte{quota.Default: generous})
	took := [2][]time.Duration{make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for j := range 2 {
			k := (i + j) % 2
			start := time.Now()
			[]func(){none, def}[k]()
			took[k] = append(took[k], time.Since(start))
		}
	}
	b.StopTimer()
	// Medians: a stall of the shared machine lands on one call, not on
	// the figures.
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds())
	}
	n, q := med(took[0]), med(took[1])
	b.ReportMetric(n, "none-ns/op")
	b.ReportMetric(q, "quota-ns/op")
	b.ReportMetric(100*(q/n-1), "quota-%")
}

// benchProducer returns a function that sends body as one produce through
// a gateway over an appendStore with quotas.
func benchProducer(b *testing.B, body []byte, quotas map[string][]byte) func() {
	store := &appendStore{log: &appendLog{}, quotas: quotas, changed: make(chan struct{})}
	lim, err := quota.New(store, quota.Config{})
	if err != nil {
		b.Fatal(err)
	}
	s := newTestServer(b, store, Config{Quotas: lim})
	b.Cleanup(func() { s.Shutdown(context.Background()) })
	h := s.Handler()
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/v1/topics/bench/records")
	req.Header.SetContentType("application/json")
	req.SetBody(body)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	var ctx fasthttp.RequestCtx
	return func() {
		ctx.Init(&req, addr, nil)
		h(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("HTTP %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}
