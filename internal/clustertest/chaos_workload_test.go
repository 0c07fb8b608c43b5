//go:build chaos

package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/weir-broker/weir/internal/history"
)

// The chaos run's clients. Each records every request into one
// history.Recorder (invocation, then OK, Fail or Info), as Jepsen's Kafka
// workload does; history.Check judges the record after a final drain.

// hclient is an HTTP client that gives up on a node after a few seconds (a
// stopped or cut-off node may never answer), as a real client would.
type hclient struct{ c *http.Client }

func newHClient() hclient { return hclient{&http.Client{Timeout: 5 * time.Second}} }

// answer is an HTTP answer, or the error that stood in for one.
type answer struct {
	status int
	body   []byte
	err    error
}

func (h hclient) do(ctx context.Context, method, url string, body any, hdr map[string]string) answer {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return answer{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{status: resp.StatusCode, err: err}
	}
	return answer{status: resp.StatusCode, body: b}
}

// outcome files a completed request under OK (the caller decodes the body),
// Fail (certainly not done) or Info (unknown). A request refused before
// anything was sent, or answered with a client error, did not happen; a
// timeout, a reset or a 5xx may have.
func (a answer) definitelyFailed() bool {
	if a.err != nil {
		return errors.Is(a.err, syscall.ECONNREFUSED)
	}
	switch a.status {
	case 400, 404, 409, 413, 415, 422:
		return true
	}
	return false
}

func (a answer) error() error {
	if a.err != nil {
		return a.err
	}
	b := a.body
	if len(b) > 200 {
		b = b[:200]
	}
	return fmt.Errorf("HTTP %d %s", a.status, bytes.TrimSpace(b))
}

// workload is the producers and consumers of the chaos run, on topic
// "h" (partitions parts), through nodes urls.
type workload struct {
	rec   *history.Recorder
	urls  []string
	topic string
	parts int

	stop chan struct{}
	wg   sync.WaitGroup
}

func startWorkload(rec *history.Recorder, urls []string, topic string, parts, producers, consumers int, seed uint64) *workload {
	w := &workload{rec: rec, urls: urls, topic: topic, parts: parts, stop: make(chan struct{})}
	for i := 0; i < producers; i++ {
		w.wg.Add(1)
		go w.producer(fmt.Sprintf("p%d", i), rand.New(rand.NewPCG(seed, uint64(i))))
	}
	for i := 0; i < consumers; i++ {
		w.wg.Add(1)
		go w.consumer(fmt.Sprintf("c%d", i), rand.New(rand.NewPCG(seed, uint64(1000+i))))
	}
	// chaos_apps_test.go: queue consumers of subscription chaosq, and the
	// producer of the exactly-once pipeline's input.
	for i := 0; i < 2; i++ {
		w.wg.Add(1)
		go w.queueConsumer(fmt.Sprintf("q%d", i), rand.New(rand.NewPCG(seed, uint64(2000+i))))
	}
	w.wg.Add(1)
	go w.pipeProducer("pp", rand.New(rand.NewPCG(seed, 3000)))
	return w
}

// Stop ends the clients and waits for them; requests in flight end as Info.
func (w *workload) Stop() {
	close(w.stop)
	w.wg.Wait()
}

func (w *workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// ctx is canceled when the workload stops.
func (w *workload) ctx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-w.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

func (w *workload) pause(rng *rand.Rand) {
	select {
	case <-w.stop:
	case <-time.After(time.Duration(20+rng.IntN(80)) * time.Millisecond):
	}
}

// producer sends one record per request, each with a unique value, to a
// random partition through a random node. It never retries a value: an
// unknown outcome stays unknown (Info), and no retry can duplicate.
func (w *workload) producer(id string, rng *rand.Rand) {
	defer w.wg.Done()
	ctx, cancel := w.ctx()
	defer cancel()
	cl := newHClient()
	for n := 0; !w.stopped(); n++ {
		part := rng.IntN(w.parts)
		value := fmt.Sprintf("%s-%d", id, n)
		url := w.urls[rng.IntN(len(w.urls))] + "/v1/topics/" + w.topic + "/records"
		op := w.rec.Invoke(history.Op{Kind: history.Produce, Process: id,
			Partition: history.Partition{Topic: w.topic, ID: int32(part)}, Value: value})
		a := cl.do(ctx, "POST", url, map[string]any{"records": []map[string]any{{"value": value, "partition": part}}}, nil)
		if a.err == nil && a.status == 200 {
			var o struct {
				Offsets []struct {
					Partition int32 `json:"partition"`
					Offset    int64 `json:"offset"`
				} `json:"offsets"`
			}
			if err := json.Unmarshal(a.body, &o); err == nil && len(o.Offsets) == 1 {
				op.OK(history.Record{Partition: history.Partition{Topic: w.topic, ID: o.Offsets[0].Partition}, Offset: o.Offsets[0].Offset, Value: value})
				continue
			}
			op.Info(fmt.Errorf("undecodable answer %q", a.body))
			continue
		}
		if a.definitelyFailed() {
			op.Fail(a.error())
		} else {
			op.Info(a.error())
		}
		w.pause(rng)
	}
}

// member is a consumer's membership of the group.
type member struct {
	id         string
	generation int64
}

type position struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// consumer is a member of group "chaos": it polls (recording each poll with
// the generation it was made in), then commits the positions after the
// records it processed. It sends back the positions each answer gave, as
// groups.md asks; a new generation starts from the group's commits again.
func (w *workload) consumer(id string, rng *rand.Rand) {
	defer w.wg.Done()
	ctx, cancel := w.ctx()
	defer cancel()
	cl := newHClient()
	const group = "chaos"
	var m *member
	pos := map[int32]int64{}
	node := func() string { return w.urls[rng.IntN(len(w.urls))] }
	for !w.stopped() {
		if m == nil {
			a := cl.do(ctx, "POST", node()+"/v1/groups/"+group+"/members",
				map[string]any{"topic": w.topic, "client_id": id, "from": "earliest", "session_timeout_ms": 8000}, nil)
			var j struct {
				MemberID   string `json:"member_id"`
				Generation int64  `json:"generation"`
			}
			if a.err != nil || a.status != 201 || json.Unmarshal(a.body, &j) != nil {
				w.pause(rng)
				continue
			}
			m = &member{id: j.MemberID, generation: j.Generation}
			clear(pos)
		}
		var ps []position
		for p, o := range pos {
			ps = append(ps, position{w.topic, p, o})
		}
		op := w.rec.Invoke(history.Op{Kind: history.Poll, Process: id, Group: group, Generation: m.generation})
		a := cl.do(ctx, "POST", node()+"/v1/groups/"+group+"/members/"+m.id+"/poll",
			map[string]any{"positions": ps, "generation": m.generation, "max_records": 200, "wait_ms": 300}, nil)
		if a.err != nil || a.status != 200 {
			if a.definitelyFailed() {
				op.Fail(a.error())
			} else {
				op.Info(a.error())
			}
			switch {
			case a.status == 404: // expired or gone: join again
				m = nil
			case a.status == 409: // a rebalance: learn the generation, start again from the commits
				if g, ok := w.heartbeat(ctx, cl, node(), group, m.id); ok {
					m.generation = g
				} else {
					m = nil
				}
				clear(pos)
			default:
				w.pause(rng)
			}
			continue
		}
		var res struct {
			Generation int64 `json:"generation"`
			Records    []struct {
				Partition int32  `json:"partition"`
				Offset    int64  `json:"offset"`
				Value     string `json:"value"`
			} `json:"records"`
			Positions []position `json:"positions"`
		}
		if err := json.Unmarshal(a.body, &res); err != nil {
			op.Info(fmt.Errorf("undecodable poll %q", a.body))
			continue
		}
		recs := make([]history.Record, len(res.Records))
		got := map[int32]int64{}
		for i, r := range res.Records {
			recs[i] = history.Record{Partition: history.Partition{Topic: w.topic, ID: r.Partition}, Offset: r.Offset, Value: r.Value}
			got[r.Partition] = r.Offset + 1
		}
		op.OK(recs...)
		if res.Generation != m.generation { // not expected with a generation sent; start over if it happens
			m.generation = res.Generation
			clear(pos)
			continue
		}
		// As the API asks: send back the positions the answer gave (a
		// partition it did not name goes on after its last record).
		for p, o := range got {
			pos[p] = o
		}
		for _, p := range res.Positions {
			pos[p.Partition] = p.Offset
		}
		// Processed: commit the partitions that delivered records.
		if len(got) > 0 {
			w.commit(ctx, cl, node(), group, id, m, got)
		}
	}
	if m != nil {
		cl.do(context.Background(), "DELETE", w.urls[0]+"/v1/groups/"+group+"/members/"+m.id, nil, nil)
	}
}

func (w *workload) heartbeat(ctx context.Context, cl hclient, url, group, member string) (int64, bool) {
	a := cl.do(ctx, "POST", url+"/v1/groups/"+group+"/members/"+member+"/heartbeat", nil, nil)
	var j struct {
		Generation int64 `json:"generation"`
	}
	if a.err != nil || a.status != 200 || json.Unmarshal(a.body, &j) != nil {
		return 0, false
	}
	return j.Generation, true
}

// commit commits next offsets (partition → next offset to read), each
// recorded as a Commit of the group.
func (w *workload) commit(ctx context.Context, cl hclient, url, group, id string, m *member, next map[int32]int64) {
	var offs []position
	var ops []*history.Pending
	for p, o := range next {
		offs = append(offs, position{w.topic, p, o})
		ops = append(ops, w.rec.Invoke(history.Op{Kind: history.Commit, Process: id, Group: group,
			Partition: history.Partition{Topic: w.topic, ID: p}, Offset: o}))
	}
	a := cl.do(ctx, "POST", url+"/v1/groups/"+group+"/members/"+m.id+"/commit",
		map[string]any{"generation": m.generation, "offsets": offs}, nil)
	for _, op := range ops {
		switch {
		case a.err == nil && a.status == 204:
			op.OK()
		case a.definitelyFailed():
			op.Fail(a.error())
		default:
			op.Info(a.error())
		}
	}
}

// drain reads partition part of the topic from offset 0 on the node at url,
// from its own replica (Weir-Hops: 1), recording every fetch, until it has
// read up to target. It reports the offset it reached.
func drain(ctx context.Context, rec *history.Recorder, url, process, topic string, part int, target int64) (int64, error) {
	cl := newHClient()
	next := int64(0)
	for next < target {
		if err := ctx.Err(); err != nil {
			return next, fmt.Errorf("stopped at offset %d of %d: %w", next, target, err)
		}
		op := rec.Invoke(history.Op{Kind: history.Fetch, Process: process,
			Partition: history.Partition{Topic: topic, ID: int32(part)}, Offset: next})
		u := fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=%d&max_records=2000&max_bytes=8388608", url, topic, part, next)
		a := cl.do(ctx, "GET", u, nil, map[string]string{"Weir-Hops": "1"})
		if a.err != nil || a.status != 200 {
			op.Info(a.error()) // a read changes nothing: its outcome does not matter
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var f struct {
			Records []struct {
				Offset int64  `json:"offset"`
				Value  string `json:"value"`
			} `json:"records"`
			NextOffset int64 `json:"next_offset"`
		}
		if err := json.Unmarshal(a.body, &f); err != nil {
			op.Info(err)
			continue
		}
		recs := make([]history.Record, len(f.Records))
		for i, r := range f.Records {
			recs[i] = history.Record{Partition: history.Partition{Topic: topic, ID: int32(part)}, Offset: r.Offset, Value: r.Value}
		}
		op.OK(recs...)
		if len(f.Records) == 0 {
			time.Sleep(50 * time.Millisecond) // the replica has not applied target yet: poll again
			continue
		}
		next = f.Records[len(f.Records)-1].Offset + 1
	}
	return next, nil
}

// highWatermark asks the node at url for the partition's high watermark
// (through the leader: no Weir-Hops).
func highWatermark(ctx context.Context, url, topic string, part int) (int64, error) {
	a := newHClient().do(ctx, "GET", fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=latest", url, topic, part), nil, nil)
	if a.err != nil || a.status != 200 {
		return 0, a.error()
	}
	var f struct {
		HighWatermark int64 `json:"high_watermark"`
	}
	if err := json.Unmarshal(a.body, &f); err != nil {
		return 0, err
	}
	return f.HighWatermark, nil
}
