package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/sdk/client"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure produce and consume throughput and latency over HTTP"}
	var (
		topic                                       string
		records, size, batch, producers, partitions int
		rate                                        int
		duration                                    time.Duration
	)
	produce := &cobra.Command{
		Use:   "produce",
		Short: "Produce fixed-size records in batches from several producers; report records/s, MB/s and ack latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base, _ := cmd.Flags().GetString("server")
			base = strings.TrimRight(base, "/")
			if err := ensureTopic(cmd, topic, partitions); err != nil {
				return err
			}
			body := benchBody(size, batch)
			hc := &fasthttp.Client{MaxConnsPerHost: producers * 2, ReadTimeout: time.Minute, WriteTimeout: time.Minute, TLSConfig: tlsConfigOf(cmd)}
			token := tokenOf(cmd)
			target := base + "/v1/topics/" + url.PathEscape(topic) + "/records"
			var sent atomic.Int64
			var failures atomic.Int64
			lat := make([][]time.Duration, producers)
			deadline := time.Now().Add(duration)
			var interval time.Duration
			if rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(batch) * float64(producers) / float64(rate))
			}
			start := time.Now()
			var wg sync.WaitGroup
			for p := 0; p < producers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
					defer fasthttp.ReleaseRequest(req)
					defer fasthttp.ReleaseResponse(resp)
					next := time.Now()
					for {
						n := sent.Add(int64(batch))
						if (records > 0 && n > int64(records)) || (records == 0 && time.Now().After(deadline)) {
							return
						}
						if interval > 0 {
							if d := time.Until(next); d > 0 {
								time.Sleep(d)
							}
							next = next.Add(interval)
						}
						req.SetRequestURI(target)
						req.Header.SetMethod("POST")
						req.Header.SetContentType("application/json")
						req.SetBodyRaw(body)
						if token != "" {
							req.Header.Set("Authorization", "Bearer "+token)
						}
						t0 := time.Now()
						err := hc.Do(req, resp)
						if err != nil || resp.StatusCode() != 200 {
							failures.Add(1)
							continue
						}
						lat[p] = append(lat[p], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			n := int64(len(all)) * int64(batch)
			sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
			pct := func(q float64) time.Duration {
				if len(all) == 0 {
					return 0
				}
				return all[min(len(all)-1, int(q*float64(len(all))))]
			}
			rps := float64(n) / el.Seconds()
			fmt.Fprintf(cmd.OutOrStdout(), "produce: %d records of %d B in batches of %d, %d producers, %.1fs\n", n, size, batch, producers, el.Seconds())
			fmt.Fprintf(cmd.OutOrStdout(), "  throughput: %.0f records/s, %.1f MB/s\n", rps, rps*float64(size)/1e6)
			fmt.Fprintf(cmd.OutOrStdout(), "  publish-ack latency per request: p50 %s, p99 %s, max %s\n", pct(0.50), pct(0.99), pct(1))
			if f := failures.Load(); f > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "  failed requests: %d\n", f)
			}
			return nil
		},
	}
	pf := produce.Flags()
	pf.StringVar(&topic, "topic", "bench", "topic (created if missing)")
	pf.IntVar(&partitions, "partitions", 4, "partitions when creating the topic")
	pf.IntVar(&records, "records", 0, "records to send in total (0: run for --duration)")
	pf.DurationVar(&duration, "duration", 10*time.Second, "how long to run when --records is 0")
	pf.IntVar(&size, "record-size", 1024, "value bytes per record")
	pf.IntVar(&batch, "batch", 100, "records per request")
	pf.IntVar(&producers, "producers", 16, "concurrent producers")
	pf.IntVar(&rate, "rate", 0, "target records/s over all producers (0: as fast as possible)")

	var ctopic string
	consume := &cobra.Command{
		Use:   "consume",
		Short: "Read a topic from the start with one reader per partition; report records/s and MB/s",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			meta, err := clientFor(cmd).Topic(cmd.Context(), ctopic)
			if err != nil {
				return err
			}
			base, _ := cmd.Flags().GetString("server")
			hc := &fasthttp.Client{ReadTimeout: time.Minute, MaxResponseBodySize: 64 << 20, TLSConfig: tlsConfigOf(cmd)}
			var total, bytesRead atomic.Int64
			start := time.Now()
			var wg sync.WaitGroup
			var firstErr atomic.Value
			for _, p := range meta.Partitions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					off := int64(0)
					first := true
					for off < p.HighWatermark {
						u := fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=%d&max_records=5000&max_bytes=8388608", strings.TrimRight(base, "/"), url.PathEscape(ctopic), p.Partition, off)
						if first {
							u = strings.Replace(u, "offset=0", "offset=earliest", 1)
							first = false
						}
						status, body, err := hc.Get(nil, u)
						if err != nil || status != 200 {
							firstErr.Store(fmt.Errorf("fetch: status %d, %v", status, err))
							return
						}
						var out struct {
							Records    []json.RawMessage `json:"records"`
							NextOffset int64             `json:"next_offset"`
						}
						if err := json.Unmarshal(body, &out); err != nil {
							firstErr.Store(err)
							return
						}
						if out.NextOffset <= off {
							return
						}
						total.Add(int64(len(out.Records)))
						bytesRead.Add(int64(len(body)))
						off = out.NextOffset
					}
				}()
			}
			wg.Wait()
			if e, ok := firstErr.Load().(error); ok {
				return e
			}
			el := time.Since(start)
			fmt.Fprintf(cmd.OutOrStdout(), "consume: %d records in %.2fs: %.0f records/s, %.1f MB/s of JSON\n",
				total.Load(), el.Seconds(), float64(total.Load())/el.Seconds(), float64(bytesRead.Load())/el.Seconds()/1e6)
			return nil
		},
	}
	consume.Flags().StringVar(&ctopic, "topic", "bench", "topic to read")
	cmd.AddCommand(produce, consume, newBenchPipelineCmd())
	cmd.AddCommand(extraBenchCommands()...) // extra.go
	return cmd
}

func ensureTopic(cmd *cobra.Command, topic string, partitions int) error {
	_, err := clientFor(cmd).CreateTopic(cmd.Context(), client.TopicConfig{Name: topic, Partitions: partitions})
	if errors.Is(err, client.CodeTopicExists) {
		return nil
	}
	return err
}

// benchBody is a JSON produce request of n records with values of size bytes.
func benchBody(size, n int) []byte {
	val := bytes.Repeat([]byte("x"), size)
	var b bytes.Buffer
	b.WriteString(`{"records":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"value":"`)
		b.Write(val)
		b.WriteString(`"}`)
	}
	b.WriteString(`]}`)
	_ = strconv.Itoa
	return b.Bytes()
}
