package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/sdk/client"
)

// benchQueueFlags are the flags of `weir bench queue`.
type benchQueueFlags struct {
	topic                                 string
	partitions, messages, size, consumers int
	batch, producers                      int
	duration                              time.Duration
	keep, priority, prioHeaders           bool
	ordering                              string
}

// newBenchQueueCmd is `weir bench queue`: competing consumers on one
// subscription, each receiving a batch and acknowledging it.
func newBenchQueueCmd() *cobra.Command {
	var o benchQueueFlags
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Queue throughput: competing consumers receive batches from one subscription and ack each message",
		Long: `Creates a fresh subscription (start=latest) on the topic, fills it with --messages
records, then runs --consumers competing consumers that each loop: receive up to
--batch messages, acknowledge all of them in one ack call. Reports messages/s and
the latency of receive, of ack, and of the receive-to-ack round trip (from sending
the receive to the ack's answer) per batch.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base, _ := cmd.Flags().GetString("server")
			base = strings.TrimRight(base, "/")
			out := cmd.OutOrStdout()
			if err := ensureTopic(cmd, o.topic, o.partitions); err != nil {
				return err
			}
			c := clientFor(cmd)
			sub := fmt.Sprintf("bench-%d", time.Now().UnixNano())
			cfg := client.SubscriptionConfig{Name: sub, Start: client.Latest, Ordering: o.ordering, VisibilityTimeoutMs: 60000, Priority: o.priority}
			if _, err := c.CreateSubscription(cmd.Context(), o.topic, cfg); err != nil {
				return err
			}
			if !o.keep {
				defer c.DeleteSubscription(cmd.Context(), o.topic, sub)
			}
			hc := &fasthttp.Client{MaxConnsPerHost: (o.consumers + o.producers) * 2, ReadTimeout: time.Minute, WriteTimeout: time.Minute}
			t0 := time.Now()
			n, err := fillQueue(hc, base, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "queue: filled %d messages of %d B into %s/%d partitions in %.1fs\n", n, o.size, o.topic, o.partitions, time.Since(t0).Seconds())
			start := time.Now()
			res := consumeQueue(hc, base+subPath(o.topic, sub), n, o)
			res.report(out, o, time.Since(start))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.topic, "topic", "qbench", "topic (created if missing)")
	f.IntVar(&o.partitions, "partitions", 4, "partitions when creating the topic")
	f.IntVar(&o.messages, "messages", 200000, "messages to fill the subscription with (rounded up to 100)")
	f.IntVar(&o.size, "record-size", 100, "value bytes per message")
	f.IntVar(&o.producers, "producers", 8, "concurrent producers for the fill")
	f.IntVar(&o.consumers, "consumers", 8, "competing consumers")
	f.IntVar(&o.batch, "batch", 10, "max messages per receive")
	f.DurationVar(&o.duration, "duration", 2*time.Minute, "stop consuming after this long even if messages are left")
	f.BoolVar(&o.keep, "keep", false, "keep the benchmark's subscription afterwards")
	f.StringVar(&o.ordering, "ordering", "none", "subscription ordering: none or key (keys k0..k1023)")
	f.BoolVar(&o.priority, "priority", false, "a priority subscription (compare with the same data: --priority-headers with and without it)")
	f.BoolVar(&o.prioHeaders, "priority-headers", false, "give the records weir-priority headers 0-9 (mixed)")
	return cmd
}

// queueFillBatch is the records per produce request of the fill.
const queueFillBatch = 100

// queueFillBody is the i-th produce request of the fill: keys k0..k1023,
// priorities 0-9 mixed with o.prioHeaders.
func queueFillBody(i int, o benchQueueFlags) []byte {
	var b bytes.Buffer
	b.WriteString(`{"records":[`)
	val := strings.Repeat("x", o.size)
	for j := 0; j < queueFillBatch; j++ {
		if j > 0 {
			b.WriteByte(',')
		}
		n := i*queueFillBatch + j
		hdrs := ""
		if o.prioHeaders {
			hdrs = fmt.Sprintf(`,"headers":{"weir-priority":"%d"}`, n*7%10)
		}
		fmt.Fprintf(&b, `{"key":"k%d","value":"%s"%s}`, n%1024, val, hdrs)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// fillQueue produces o.messages (rounded up to 100) records from
// o.producers producers and returns how many it produced.
func fillQueue(hc *fasthttp.Client, base string, o benchQueueFlags) (int64, error) {
	var produced atomic.Int64
	var perr atomic.Value
	var wg sync.WaitGroup
	for p := 0; p < o.producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for i := p; int64(i*queueFillBatch) < int64(o.messages); i += o.producers {
				setPostJSON(req, base+"/v1/topics/"+url.PathEscape(o.topic)+"/records", queueFillBody(i, o))
				if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					perr.Store(fmt.Errorf("produce: status %d %v %s", resp.StatusCode(), err, resp.Body()))
					return
				}
				produced.Add(queueFillBatch)
			}
		}()
	}
	wg.Wait()
	if e, ok := perr.Load().(error); ok {
		return 0, e
	}
	return produced.Load(), nil
}

// queueLatencies are one consumer's latencies per batch: receive, ack, and
// the round trip from sending the receive to the ack's answer.
type queueLatencies struct{ recv, ack, rt []time.Duration }

// queueResult is what the consumers of `weir bench queue` measured.
type queueResult struct {
	acked, failures, redelivered atomic.Int64
	lats                         []queueLatencies
}

// consumeQueue runs o.consumers competing consumers on the subscription at
// subURL until n messages were acknowledged or o.duration passed.
func consumeQueue(hc *fasthttp.Client, subURL string, n int64, o benchQueueFlags) *queueResult {
	res := &queueResult{lats: make([]queueLatencies, o.consumers)}
	deadline := time.Now().Add(o.duration)
	var wg sync.WaitGroup
	for ci := 0; ci < o.consumers; ci++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.consume(hc, subURL, &res.lats[ci], o.batch, func() bool { return res.acked.Load() < n && time.Now().Before(deadline) })
		}()
	}
	wg.Wait()
	return res
}

// consume is one consumer: receive up to batch messages, acknowledge them
// in one call, while more reports true.
func (res *queueResult) consume(hc *fasthttp.Client, subURL string, l *queueLatencies, batch int, more func() bool) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	recvBody := []byte(fmt.Sprintf(`{"max_records":%d,"wait_ms":1000}`, batch))
	post := func(u string, body []byte) bool {
		setPostJSON(req, u, body)
		if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			res.failures.Add(1)
			return false
		}
		return true
	}
	var ab bytes.Buffer
	for more() {
		r0 := time.Now()
		if !post(subURL+"/receive", recvBody) {
			continue
		}
		var rr struct {
			Messages []struct {
				Receipt string `json:"receipt"`
				Attempt int    `json:"attempt"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(resp.Body(), &rr); err != nil {
			res.failures.Add(1)
			continue
		}
		r1 := time.Now()
		if len(rr.Messages) == 0 {
			continue
		}
		ab.Reset()
		ab.WriteString(`{"receipts":[`)
		for i, m := range rr.Messages {
			if i > 0 {
				ab.WriteByte(',')
			}
			ab.WriteByte('"')
			ab.WriteString(m.Receipt)
			ab.WriteByte('"')
			if m.Attempt > 1 {
				res.redelivered.Add(1)
			}
		}
		ab.WriteString(`]}`)
		if !post(subURL+"/ack", ab.Bytes()) {
			continue
		}
		r2 := time.Now()
		if bytes.Contains(resp.Body(), []byte(`"status":"error"`)) {
			res.failures.Add(1)
		}
		l.recv = append(l.recv, r1.Sub(r0))
		l.ack = append(l.ack, r2.Sub(r1))
		l.rt = append(l.rt, r2.Sub(r0))
		res.acked.Add(int64(len(rr.Messages)))
	}
}

// report prints throughput and latency percentiles of a run of el.
func (res *queueResult) report(out io.Writer, o benchQueueFlags, el time.Duration) {
	var recv, ack, rt []time.Duration
	for _, l := range res.lats {
		recv, ack, rt = append(recv, l.recv...), append(ack, l.ack...), append(rt, l.rt...)
	}
	pct := func(d []time.Duration, q float64) time.Duration {
		sortDurations(d)
		return percentile(d, q).Round(10 * time.Microsecond)
	}
	acked := res.acked.Load()
	fmt.Fprintf(out, "queue: %d consumers, receive batches of %d, ack each batch: %d messages acked in %.2fs\n", o.consumers, o.batch, acked, el.Seconds())
	fmt.Fprintf(out, "  throughput: %.0f messages/s\n", float64(acked)/el.Seconds())
	fmt.Fprintf(out, "  receive latency:          p50 %s, p99 %s, max %s\n", pct(recv, .5), pct(recv, .99), pct(recv, 1))
	fmt.Fprintf(out, "  ack latency:              p50 %s, p99 %s, max %s\n", pct(ack, .5), pct(ack, .99), pct(ack, 1))
	fmt.Fprintf(out, "  receive-to-ack round trip: p50 %s, p99 %s, max %s\n", pct(rt, .5), pct(rt, .99), pct(rt, 1))
	if r := res.redelivered.Load(); r > 0 {
		fmt.Fprintf(out, "  redelivered: %d\n", r)
	}
	if f := res.failures.Load(); f > 0 {
		fmt.Fprintf(out, "  failed requests: %d\n", f)
	}
}

// subPath is the path of a subscription (or of a topic's subscriptions
// when name is empty), for the benchmark's own HTTP client.
func subPath(topic, name string) string {
	p := "/v1/topics/" + url.PathEscape(topic) + "/subscriptions"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}
