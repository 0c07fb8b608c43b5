package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/spf13/cobra"
	"github.com/valyala/fasthttp"
)

// benchWSFlags are the flags of `weir bench ws`.
type benchWSFlags struct {
	topic                                      string
	partitions, subscribers, rate, size, batch int
	credit, idle, serverPID                    int
	duration, warmup                           time.Duration
}

// newBenchWSCmd is `weir bench ws`: WebSocket fan-out throughput and
// delivery latency, and the server's memory per idle connection.
func newBenchWSCmd() *cobra.Command {
	var o benchWSFlags
	cmd := &cobra.Command{
		Use:   "ws",
		Short: "WebSocket fan-out: N subscribers on one topic; delivered records/s, delivery latency, memory per idle connection",
		Long: `Open --subscribers WebSocket connections that each subscribe to --topic from
latest, produce --rate records/s over HTTP (each value carries its send time),
and report the records/s delivered to all subscribers together and the
delivery latency (send to receipt, the first record of each frame) after
--warmup. With --server-pid (a server on this machine) it first opens --idle
idle connections and reports the server's resident memory per connection,
bare and with one idle subscription each.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.size < 19 || o.rate <= 0 || o.batch <= 0 || o.subscribers <= 0 || o.credit <= 0 {
				return fmt.Errorf("--size must be ≥ 19; --rate, --batch, --subscribers and --credit ≥ 1")
			}
			base, _ := cmd.Flags().GetString("server")
			base = strings.TrimRight(base, "/")
			if err := ensureTopic(cmd, o.topic, o.partitions); err != nil {
				return err
			}
			dialer := &websocket.Dialer{ReadBufferSize: 4096, WriteBufferSize: 512, HandshakeTimeout: 30 * time.Second}
			wsBase := "ws" + strings.TrimPrefix(base, "http")
			if o.serverPID > 0 && o.idle > 0 {
				if err := measureIdleMemory(cmd.OutOrStdout(), dialer, wsBase, o); err != nil {
					return err
				}
			}
			return runFanout(cmd, dialer, base, wsBase, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.topic, "topic", "bench-ws", "topic (created when missing)")
	f.IntVar(&o.partitions, "partitions", 1, "partitions of a new topic")
	f.IntVar(&o.subscribers, "subscribers", 1000, "WebSocket subscribers, one connection each")
	f.IntVar(&o.rate, "rate", 400, "records produced per second (each is delivered to every subscriber)")
	f.IntVar(&o.size, "size", 100, "value size in bytes (≥ 19)")
	f.IntVar(&o.batch, "batch", 20, "records per produce request")
	f.IntVar(&o.credit, "credit", 1000, "credit window per subscription")
	f.DurationVar(&o.duration, "duration", 20*time.Second, "measured time")
	f.DurationVar(&o.warmup, "warmup", 3*time.Second, "time before measuring")
	f.IntVar(&o.idle, "idle", 1000, "idle connections for the memory measurement (needs --server-pid)")
	f.IntVar(&o.serverPID, "server-pid", 0, "pid of a server on this machine, to read its resident memory (/proc/PID/status)")
	return cmd
}

// measureIdleMemory reports the server's resident memory per idle
// connection, bare and with one idle subscription each.
func measureIdleMemory(out io.Writer, dialer *websocket.Dialer, wsBase string, o benchWSFlags) error {
	settle := func() int64 { time.Sleep(2 * time.Second); return rssBytes(o.serverPID) }
	rss0 := settle()
	conns, err := dialAll(dialer, wsBase, o.idle)
	if err != nil {
		return err
	}
	rss1 := settle()
	for _, c := range conns {
		if err := benchSubscribe(c, o.topic, 1000); err != nil {
			closeAll(conns)
			return err
		}
	}
	rss2 := settle()
	closeAll(conns)
	fmt.Fprintf(out, "idle connections: %d; server RSS %.1f MB → %.1f MB: %.1f KiB per connection; with one idle subscription each %.1f MB: %.1f KiB per connection\n",
		o.idle, mb(rss0), mb(rss1), kib(rss1-rss0)/float64(o.idle), mb(rss2), kib(rss2-rss0)/float64(o.idle))
	return nil
}

// fanout is what the subscribers of `weir bench ws` count: records
// delivered, those delivered while measuring, and their latencies.
type fanout struct {
	measuring atomic.Bool
	delivered atomic.Int64
	measured  atomic.Int64
	mu        sync.Mutex // guards lats
	lats      []time.Duration
}

// runFanout subscribes o.subscribers connections, produces at o.rate, and
// reports delivery throughput and latency.
func runFanout(cmd *cobra.Command, dialer *websocket.Dialer, base, wsBase string, o benchWSFlags) error {
	conns, err := dialAll(dialer, wsBase, o.subscribers)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	for _, c := range conns {
		if err := benchSubscribe(c, o.topic, o.credit); err != nil {
			return err
		}
	}
	var fo fanout
	var readers sync.WaitGroup
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	for _, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			fo.read(ctx, c, o.credit)
		}()
	}
	pr := produceAtRate(base, o, &fo.measuring)
	// Let the subscribers drain what was produced.
	want := pr.produced * int64(o.subscribers)
	drain := time.Now().Add(10 * time.Second)
	for fo.delivered.Load() < want && time.Now().Before(drain) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	closeAll(conns)
	readers.Wait()

	sortDurations(fo.lats)
	sortDurations(pr.acks)
	pctOf := func(ds []time.Duration, p float64) time.Duration {
		return percentile(ds, p).Round(100 * time.Microsecond)
	}
	pct := func(p float64) time.Duration { return pctOf(fo.lats, p) }
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "fan-out: %d subscribers, %d records/s produced in %d-record batches of %d-byte values, measured %s after %s of warm-up\n",
		o.subscribers, o.rate, o.batch, o.size, pr.window.Round(time.Millisecond), o.warmup)
	fmt.Fprintf(out, "delivered: %.0f records/s to all subscribers together; %d of %d records delivered by the end (%d produce failures)\n",
		float64(fo.measured.Load())/pr.window.Seconds(), fo.delivered.Load(), want, pr.failures)
	fmt.Fprintf(out, "delivery latency (send → receipt of each frame's first record, %d frames): p50 %s  p90 %s  p99 %s  max %s\n",
		len(fo.lats), pct(0.50), pct(0.90), pct(0.99), pct(1))
	fmt.Fprintf(out, "produce acknowledgement (part of the above: committed and fsynced): p50 %s  p99 %s\n",
		pctOf(pr.acks, 0.50), pctOf(pr.acks, 0.99))
	return nil
}

// read counts the records of c's frames until c fails or ctx ends, with
// the latency of each frame's first record while measuring, and gives the
// subscription credit back every credit/2 records.
func (fo *fanout) read(ctx context.Context, c *websocket.Conn, credit int) {
	var local []time.Duration
	defer func() { fo.mu.Lock(); fo.lats = append(fo.lats, local...); fo.mu.Unlock() }()
	var buf bytes.Buffer
	consumed := 0
	for {
		_, r, err := c.NextReader()
		if err != nil {
			return
		}
		buf.Reset()
		if _, err := io.Copy(&buf, r); err != nil {
			return
		}
		now := time.Now()
		frame := buf.Bytes()
		n := bytes.Count(frame, []byte(`{"topic":`))
		if n == 0 {
			continue
		}
		fo.delivered.Add(int64(n))
		if fo.measuring.Load() {
			fo.measured.Add(int64(n))
			// The first record of the frame is its oldest.
			if i := bytes.Index(frame, []byte(`"value":"`)); i >= 0 && len(frame) >= i+9+19 {
				if ns, err := strconv.ParseInt(string(frame[i+9:i+9+19]), 10, 64); err == nil {
					local = append(local, now.Sub(time.Unix(0, ns)))
				}
			}
		}
		if consumed += n; consumed >= credit/2 {
			c.WriteMessage(websocket.TextMessage, []byte(`{"op":"credit","sub":"b","records":`+strconv.Itoa(consumed)+`}`))
			consumed = 0
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// produced is what produceAtRate did: records acknowledged, failed
// requests, acknowledgement latencies while measuring, and the measured
// window.
type produced struct {
	produced, failures int64
	acks               []time.Duration
	window             time.Duration
}

// produceAtRate produces o.rate records/s in batches of o.batch for
// o.warmup, then sets measuring for o.duration; each value starts with its
// send time in nanoseconds.
func produceAtRate(base string, o benchWSFlags, measuring *atomic.Bool) produced {
	hc := &fasthttp.Client{MaxConnsPerHost: 16, ReadTimeout: time.Minute, WriteTimeout: time.Minute}
	target := base + "/v1/topics/" + url.PathEscape(o.topic) + "/records"
	interval := time.Duration(float64(time.Second) * float64(o.batch) / float64(o.rate))
	pad := strings.Repeat("x", o.size-19)
	var sent, failures atomic.Int64
	var ackMu sync.Mutex
	var acks []time.Duration
	start := time.Now()
	warmEnd := start.Add(o.warmup)
	end := warmEnd.Add(o.duration)
	var producers sync.WaitGroup
	ticker := time.NewTicker(interval)
	for time.Now().Before(end) {
		<-ticker.C
		if !measuring.Load() && time.Now().After(warmEnd) {
			measuring.Store(true)
		}
		var b bytes.Buffer
		b.WriteString(`{"records":[`)
		now := time.Now().UnixNano()
		for i := 0; i < o.batch; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"value":"%019d%s"}`, now, pad)
		}
		b.WriteString(`]}`)
		producers.Add(1)
		go func(body []byte) {
			defer producers.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			setPostJSON(req, target, body)
			t0 := time.Now()
			if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				failures.Add(1)
				return
			}
			if measuring.Load() {
				ackMu.Lock()
				acks = append(acks, time.Since(t0))
				ackMu.Unlock()
			}
			sent.Add(int64(o.batch))
		}(b.Bytes())
	}
	ticker.Stop()
	measuring.Store(false)
	window := time.Since(warmEnd)
	producers.Wait()
	return produced{produced: sent.Load(), failures: failures.Load(), acks: acks, window: window}
}

// dialAll opens n connections to wsBase/v1/ws, 32 at a time.
func dialAll(d *websocket.Dialer, wsBase string, n int) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := d.Dial(wsBase+"/v1/ws", nil)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

// benchSubscribe subscribes a connection from latest and waits for the answer.
func benchSubscribe(c *websocket.Conn, topic string, credit int) error {
	if err := c.WriteJSON(map[string]any{"op": "subscribe", "id": "b", "topic": topic, "from": "latest", "credit": credit}); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var m struct {
		Op    string `json:"op"`
		Error *struct {
			Code, Message string
		} `json:"error"`
	}
	if err := c.ReadJSON(&m); err != nil {
		return err
	}
	if m.Op != "subscribed" {
		return fmt.Errorf("subscribe: %s %+v", m.Op, m.Error)
	}
	return nil
}

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// rssBytes reads VmRSS of a process on this machine (0 when unknown).
func rssBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mb(b int64) float64  { return float64(b) / (1 << 20) }
func kib(b int64) float64 { return float64(b) / 1024 }
