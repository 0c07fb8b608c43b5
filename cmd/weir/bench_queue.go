package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/sdk/client"
)

// newBenchQueueCmd is `weir bench queue`: competing consumers on one
// subscription, each receiving a batch and acknowledging it.
func newBenchQueueCmd() *cobra.Command {
	var (
		topic                                 string
		partitions, messages, size, consumers int
		batch, producers                      int
		duration                              time.Duration
		keep, priority, prioHeaders           bool
		ordering                              string
	)
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
			if err := ensureTopic(cmd, topic, partitions); err != nil {
				return err
			}
			c := clientFor(cmd)
			sub := fmt.Sprintf("bench-%d", time.Now().UnixNano())
			cfg := client.SubscriptionConfig{Name: sub, Start: client.Latest, Ordering: ordering, VisibilityTimeoutMs: 60000, Priority: priority}
			if _, err := c.CreateSubscription(cmd.Context(), topic, cfg); err != nil {
				return err
			}
			if !keep {
				defer c.DeleteSubscription(cmd.Context(), topic, sub)
			}
			hc := &fasthttp.Client{MaxConnsPerHost: (consumers + producers) * 2, ReadTimeout: time.Minute, WriteTimeout: time.Minute}

			// Fill.
			t0 := time.Now()
			per := 100
			reqBody := func(i int) []byte {
				var b bytes.Buffer
				b.WriteString(`{"records":[`)
				val := strings.Repeat("x", size)
				for j := 0; j < per; j++ {
					if j > 0 {
						b.WriteByte(',')
					}
					n := i*per + j
					hdrs := ""
					if prioHeaders {
						hdrs = fmt.Sprintf(`,"headers":{"weir-priority":"%d"}`, n*7%10)
					}
					fmt.Fprintf(&b, `{"key":"k%d","value":"%s"%s}`, n%1024, val, hdrs)
				}
				b.WriteString(`]}`)
				return b.Bytes()
			}
			var produced atomic.Int64
			var perr atomic.Value
			var wg sync.WaitGroup
			for p := 0; p < producers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
					defer fasthttp.ReleaseRequest(req)
					defer fasthttp.ReleaseResponse(resp)
					for i := p; int64(i*per) < int64(messages); i += producers {
						req.SetRequestURI(base + "/v1/topics/" + url.PathEscape(topic) + "/records")
						req.Header.SetMethod("POST")
						req.Header.SetContentType("application/json")
						req.SetBodyRaw(reqBody(i))
						if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
							perr.Store(fmt.Errorf("produce: status %d %v %s", resp.StatusCode(), err, resp.Body()))
							return
						}
						produced.Add(int64(per))
					}
				}()
			}
			wg.Wait()
			if e, ok := perr.Load().(error); ok {
				return e
			}
			n := produced.Load()
			fmt.Fprintf(out, "queue: filled %d messages of %d B into %s/%d partitions in %.1fs\n", n, size, topic, partitions, time.Since(t0).Seconds())

			// Consume.
			recvURL := base + subPath(topic, sub) + "/receive"
			ackURL := base + subPath(topic, sub) + "/ack"
			recvBody := []byte(fmt.Sprintf(`{"max_records":%d,"wait_ms":1000}`, batch))
			var acked, failures, redelivered atomic.Int64
			type lat struct{ recv, ack, rt []time.Duration }
			lats := make([]lat, consumers)
			deadline := time.Now().Add(duration)
			start := time.Now()
			for ci := 0; ci < consumers; ci++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
					defer fasthttp.ReleaseRequest(req)
					defer fasthttp.ReleaseResponse(resp)
					l := &lats[ci]
					var ab bytes.Buffer
					for acked.Load() < n && time.Now().Before(deadline) {
						r0 := time.Now()
						req.SetRequestURI(recvURL)
						req.Header.SetMethod("POST")
						req.Header.SetContentType("application/json")
						req.SetBodyRaw(recvBody)
						if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
							failures.Add(1)
							continue
						}
						var rr struct {
							Messages []struct {
								Receipt string `json:"receipt"`
								Attempt int    `json:"attempt"`
							} `json:"messages"`
						}
						if err := json.Unmarshal(resp.Body(), &rr); err != nil {
							failures.Add(1)
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
								redelivered.Add(1)
							}
						}
						ab.WriteString(`]}`)
						req.SetRequestURI(ackURL)
						req.Header.SetMethod("POST")
						req.Header.SetContentType("application/json")
						req.SetBodyRaw(ab.Bytes())
						if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
							failures.Add(1)
							continue
						}
						r2 := time.Now()
						if bytes.Contains(resp.Body(), []byte(`"status":"error"`)) {
							failures.Add(1)
						}
						l.recv = append(l.recv, r1.Sub(r0))
						l.ack = append(l.ack, r2.Sub(r1))
						l.rt = append(l.rt, r2.Sub(r0))
						acked.Add(int64(len(rr.Messages)))
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			var recv, ack, rt []time.Duration
			for _, l := range lats {
				recv, ack, rt = append(recv, l.recv...), append(ack, l.ack...), append(rt, l.rt...)
			}
			pct := func(d []time.Duration, q float64) time.Duration {
				if len(d) == 0 {
					return 0
				}
				sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
				return d[min(len(d)-1, int(q*float64(len(d))))].Round(10 * time.Microsecond)
			}
			fmt.Fprintf(out, "queue: %d consumers, receive batches of %d, ack each batch: %d messages acked in %.2fs\n", consumers, batch, acked.Load(), el.Seconds())
			fmt.Fprintf(out, "  throughput: %.0f messages/s\n", float64(acked.Load())/el.Seconds())
			fmt.Fprintf(out, "  receive latency:          p50 %s, p99 %s, max %s\n", pct(recv, .5), pct(recv, .99), pct(recv, 1))
			fmt.Fprintf(out, "  ack latency:              p50 %s, p99 %s, max %s\n", pct(ack, .5), pct(ack, .99), pct(ack, 1))
			fmt.Fprintf(out, "  receive-to-ack round trip: p50 %s, p99 %s, max %s\n", pct(rt, .5), pct(rt, .99), pct(rt, 1))
			if r := redelivered.Load(); r > 0 {
				fmt.Fprintf(out, "  redelivered: %d\n", r)
			}
			if f := failures.Load(); f > 0 {
				fmt.Fprintf(out, "  failed requests: %d\n", f)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&topic, "topic", "qbench", "topic (created if missing)")
	f.IntVar(&partitions, "partitions", 4, "partitions when creating the topic")
	f.IntVar(&messages, "messages", 200000, "messages to fill the subscription with (rounded up to 100)")
	f.IntVar(&size, "record-size", 100, "value bytes per message")
	f.IntVar(&producers, "producers", 8, "concurrent producers for the fill")
	f.IntVar(&consumers, "consumers", 8, "competing consumers")
	f.IntVar(&batch, "batch", 10, "max messages per receive")
	f.DurationVar(&duration, "duration", 2*time.Minute, "stop consuming after this long even if messages are left")
	f.BoolVar(&keep, "keep", false, "keep the benchmark's subscription afterwards")
	f.StringVar(&ordering, "ordering", "none", "subscription ordering: none or key (keys k0..k1023)")
	f.BoolVar(&priority, "priority", false, "a priority subscription (compare with the same data: --priority-headers with and without it)")
	f.BoolVar(&prioHeaders, "priority-headers", false, "give the records weir-priority headers 0-9 (mixed)")
	return cmd
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
