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
	cmd.AddCommand(newBenchProduceCmd(), newBenchConsumeCmd(), newBenchPipelineCmd(), newBenchQueueCmd(), newBenchWSCmd())
	return cmd
}

// benchProduceFlags are the flags of `weir bench produce`.
type benchProduceFlags struct {
	topic                                       string
	records, size, batch, producers, partitions int
	rate                                        int
	duration                                    time.Duration
}

func newBenchProduceCmd() *cobra.Command {
	var o benchProduceFlags
	produce := &cobra.Command{
		Use:   "produce",
		Short: "Produce fixed-size records in batches from several producers; report records/s, MB/s and ack latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ensureTopic(cmd, o.topic, o.partitions); err != nil {
				return err
			}
			start := time.Now()
			lat, failures := runBenchProducers(cmd, o)
			el := time.Since(start)
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			n := int64(len(all)) * int64(o.batch)
			sortDurations(all)
			rps := float64(n) / el.Seconds()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "produce: %d records of %d B in batches of %d, %d producers, %.1fs\n", n, o.size, o.batch, o.producers, el.Seconds())
			fmt.Fprintf(out, "  throughput: %.0f records/s, %.1f MB/s\n", rps, rps*float64(o.size)/1e6)
			fmt.Fprintf(out, "  publish-ack latency per request: p50 %s, p99 %s, max %s\n", percentile(all, 0.50), percentile(all, 0.99), percentile(all, 1))
			if failures > 0 {
				fmt.Fprintf(out, "  failed requests: %d\n", failures)
			}
			return nil
		},
	}
	pf := produce.Flags()
	pf.StringVar(&o.topic, "topic", "bench", "topic (created if missing)")
	pf.IntVar(&o.partitions, "partitions", 4, "partitions when creating the topic")
	pf.IntVar(&o.records, "records", 0, "records to send in total (0: run for --duration)")
	pf.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run when --records is 0")
	pf.IntVar(&o.size, "record-size", 1024, "value bytes per record")
	pf.IntVar(&o.batch, "batch", 100, "records per request")
	pf.IntVar(&o.producers, "producers", 16, "concurrent producers")
	pf.IntVar(&o.rate, "rate", 0, "target records/s over all producers (0: as fast as possible)")
	return produce
}

// runBenchProducers runs o.producers producers until o.records were sent
// or o.duration passed, and returns each producer's ack latencies and the
// count of failed requests.
func runBenchProducers(cmd *cobra.Command, o benchProduceFlags) ([][]time.Duration, int64) {
	base, _ := cmd.Flags().GetString("server")
	body := benchBody(o.size, o.batch)
	hc := &fasthttp.Client{MaxConnsPerHost: o.producers * 2, ReadTimeout: time.Minute, WriteTimeout: time.Minute, TLSConfig: tlsConfigOf(cmd)}
	token := tokenOf(cmd)
	target := strings.TrimRight(base, "/") + "/v1/topics/" + url.PathEscape(o.topic) + "/records"
	var sent, failures atomic.Int64
	lat := make([][]time.Duration, o.producers)
	deadline := time.Now().Add(o.duration)
	var interval time.Duration
	if o.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(o.batch) * float64(o.producers) / float64(o.rate))
	}
	var wg sync.WaitGroup
	for p := 0; p < o.producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			next := time.Now()
			for {
				n := sent.Add(int64(o.batch))
				if (o.records > 0 && n > int64(o.records)) || (o.records == 0 && time.Now().After(deadline)) {
					return
				}
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(interval)
				}
				setPostJSON(req, target, body)
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
	return lat, failures.Load()
}

func newBenchConsumeCmd() *cobra.Command {
	var topic string
	consume := &cobra.Command{
		Use:   "consume",
		Short: "Read a topic from the start with one reader per partition; report records/s and MB/s",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			meta, err := clientFor(cmd).Topic(cmd.Context(), topic)
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
					n, b, err := readPartition(hc, strings.TrimRight(base, "/"), topic, p.Partition, p.HighWatermark)
					total.Add(n)
					bytesRead.Add(b)
					if err != nil {
						firstErr.Store(err)
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
	consume.Flags().StringVar(&topic, "topic", "bench", "topic to read")
	return consume
}

// readPartition fetches a partition from its start up to hwm and returns
// the records and response bytes read.
func readPartition(hc *fasthttp.Client, base, topic string, partition int, hwm int64) (records, bytesRead int64, err error) {
	off := int64(0)
	first := true
	for off < hwm {
		u := fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=%d&max_records=5000&max_bytes=8388608", base, url.PathEscape(topic), partition, off)
		if first {
			u = strings.Replace(u, "offset=0", "offset=earliest", 1)
			first = false
		}
		status, body, err := hc.Get(nil, u)
		if err != nil || status != 200 {
			return records, bytesRead, fmt.Errorf("fetch: status %d, %v", status, err)
		}
		var out struct {
			Records    []json.RawMessage `json:"records"`
			NextOffset int64             `json:"next_offset"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			return records, bytesRead, err
		}
		if out.NextOffset <= off {
			return records, bytesRead, nil
		}
		records += int64(len(out.Records))
		bytesRead += int64(len(body))
		off = out.NextOffset
	}
	return records, bytesRead, nil
}

// setPostJSON makes req a POST of the JSON body to target (the benches
// reuse one request per goroutine).
func setPostJSON(req *fasthttp.Request, target string, body []byte) {
	req.SetRequestURI(target)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(body)
}

// sortDurations sorts d in increasing order, for percentile.
func sortDurations(d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
}

// percentile returns the q-quantile (0 to 1; 1 is the maximum) of sorted,
// or 0 when it is empty.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
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
