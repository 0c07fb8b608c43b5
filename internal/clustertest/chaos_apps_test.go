//go:build chaos

package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"time"

	"github.com/weir-broker/weir/internal/history"
)

// The queue and exactly-once pipeline workloads of the chaos run.

const (
	chaosSub      = "chaosq"      // a subscription of topic h
	chaosPipeline = "chaos-count" // examples/count, exactly once, pin → pout
	pipeIn        = "pin"
	pipeOut       = "pout"
	pipeKeys      = 8
)

// queueTopic names the subscription's messages in the history (offset =
// message id within partition ID).
func queueTopic(topic string) string { return topic + "~" + chaosSub }

// queueConsumer receives from subscription chaosq of the workload's topic
// through a random node, and acks (most) or nacks each message, recording
// every receive and every settlement. history.Check flags a message a
// receive got after an ack of it had returned.
func (w *workload) queueConsumer(id string, rng *rand.Rand) {
	defer w.wg.Done()
	ctx, cancel := w.ctx()
	defer cancel()
	cl := newHClient()
	base := func() string {
		return w.urls[rng.IntN(len(w.urls))] + "/v1/topics/" + w.topic + "/subscriptions/" + chaosSub
	}
	for !w.stopped() {
		op := w.rec.Invoke(history.Op{Kind: history.QueueReceive, Process: id, Partition: history.Partition{Topic: queueTopic(w.topic)}})
		a := cl.do(ctx, "POST", base()+"/receive", map[string]any{"max_records": 20, "wait_ms": 500, "visibility_timeout_ms": 10000}, nil)
		if a.err != nil || a.status != 200 {
			if a.definitelyFailed() {
				op.Fail(a.error())
			} else {
				op.Info(a.error())
			}
			w.pause(rng)
			continue
		}
		var res struct {
			Messages []struct {
				Receipt   string `json:"receipt"`
				Partition int32  `json:"partition"`
				Offset    int64  `json:"offset"`
				Value     string `json:"value"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(a.body, &res); err != nil {
			op.Info(fmt.Errorf("undecodable receive %q", a.body))
			continue
		}
		recs := make([]history.Record, len(res.Messages))
		for i, m := range res.Messages {
			recs[i] = history.Record{Partition: history.Partition{Topic: queueTopic(w.topic), ID: m.Partition}, Offset: m.Offset, Value: m.Value}
		}
		op.OK(recs...)
		if len(recs) == 0 {
			continue
		}
		// Settle: ack most, nack some (redelivered at once: the
		// subscription's backoff is zero).
		var acks, nacks []int
		for i := range recs {
			if rng.IntN(8) == 0 {
				nacks = append(nacks, i)
			} else {
				acks = append(acks, i)
			}
		}
		for _, set := range []struct {
			kind history.Kind
			path string
			idx  []int
		}{{history.QueueAck, "/ack", acks}, {history.QueueNack, "/nack", nacks}} {
			if len(set.idx) == 0 {
				continue
			}
			receipts := make([]string, len(set.idx))
			ops := make([]*history.Pending, len(set.idx))
			for j, i := range set.idx {
				receipts[j] = res.Messages[i].Receipt
				ops[j] = w.rec.Invoke(history.Op{Kind: set.kind, Process: id, Partition: recs[i].Partition, Records: []history.Record{recs[i]}})
			}
			body := map[string]any{"receipts": receipts}
			if set.kind == history.QueueNack {
				body["delay_ms"] = 0
			}
			a := cl.do(ctx, "POST", base()+set.path, body, nil)
			var out struct {
				Results []struct {
					Status string `json:"status"`
					Error  *struct {
						Code string `json:"code"`
					} `json:"error"`
				} `json:"results"`
			}
			if a.err == nil && a.status == 200 && json.Unmarshal(a.body, &out) == nil && len(out.Results) == len(ops) {
				for j, r := range out.Results {
					if r.Status == "ok" {
						ops[j].OK()
					} else {
						code := ""
						if r.Error != nil {
							code = r.Error.Code
						}
						ops[j].Fail(fmt.Errorf("%s", code))
					}
				}
				continue
			}
			for _, op := range ops {
				if a.definitelyFailed() {
					op.Fail(a.error())
				} else {
					op.Info(a.error())
				}
			}
		}
	}
}

// pipeProducer sends keyed records (key k0…k7, unique values) to the
// pipeline's input, each key to one partition, recorded as produces of
// topic pin.
func (w *workload) pipeProducer(id string, rng *rand.Rand) {
	defer w.wg.Done()
	ctx, cancel := w.ctx()
	defer cancel()
	cl := newHClient()
	for n := 0; !w.stopped(); n++ {
		k := rng.IntN(pipeKeys)
		part := k % w.parts // a key in one partition: its count (state of that partition) counts all its inputs
		key := fmt.Sprintf("k%d", k)
		value := fmt.Sprintf("%s-%d", id, n)
		u := w.urls[rng.IntN(len(w.urls))] + "/v1/topics/" + pipeIn + "/records"
		op := w.rec.Invoke(history.Op{Kind: history.Produce, Process: id,
			Partition: history.Partition{Topic: pipeIn, ID: int32(part)}, Key: key, Value: value})
		a := cl.do(ctx, "POST", u, map[string]any{"records": []map[string]any{{"key": key, "value": value, "partition": part}}}, nil)
		if a.err == nil && a.status == 200 {
			var o struct {
				Offsets []struct {
					Partition int32 `json:"partition"`
					Offset    int64 `json:"offset"`
				} `json:"offsets"`
			}
			if err := json.Unmarshal(a.body, &o); err == nil && len(o.Offsets) == 1 {
				op.OK(history.Record{Partition: history.Partition{Topic: pipeIn, ID: o.Offsets[0].Partition}, Offset: o.Offsets[0].Offset, Value: value})
			} else {
				op.Info(fmt.Errorf("undecodable answer %q", a.body))
			}
		} else if a.definitelyFailed() {
			op.Fail(a.error())
		} else {
			op.Info(a.error())
		}
		w.pause(rng)
	}
}

// kv is a record's key and value as read.
type kv struct{ key, value string }

// readKV reads topic/part from offset 0 up to target through the node at
// base (its leader answers), keys included.
func readKV(ctx context.Context, base, topic string, part int, target int64) ([]kv, error) {
	cl := newHClient()
	var out []kv
	next := int64(0)
	for next < target {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("%s/%d stopped at offset %d of %d: %w", topic, part, next, target, err)
		}
		u := fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=%d&max_records=2000&max_bytes=8388608", base, topic, part, next)
		a := cl.do(ctx, "GET", u, nil, nil)
		var f struct {
			Records []struct {
				Offset int64   `json:"offset"`
				Key    *string `json:"key"`
				Value  string  `json:"value"`
			} `json:"records"`
		}
		if a.err != nil || a.status != 200 || json.Unmarshal(a.body, &f) != nil || len(f.Records) == 0 {
			time.Sleep(50 * time.Millisecond) // not caught up yet, or a transient error: the ctx bounds it
			continue
		}
		for _, r := range f.Records {
			k := ""
			if r.Key != nil {
				k = *r.Key
			}
			out = append(out, kv{k, r.Value})
		}
		next = f.Records[len(f.Records)-1].Offset + 1
	}
	return out, nil
}

// pipelineCaughtUp reports whether the pipeline's position on every input
// partition reached that partition's high watermark, with no output
// pending, as the node at base sees it.
func pipelineCaughtUp(ctx context.Context, base string, hw []int64) (bool, string) {
	a := newHClient().do(ctx, "GET", base+"/v1/pipelines/"+url.PathEscape(chaosPipeline), nil, nil)
	if a.err != nil || a.status != 200 {
		return false, a.error().Error()
	}
	var st struct {
		State      string `json:"state"`
		Partitions []struct {
			Partition    int    `json:"partition"`
			Position     int64  `json:"position"`
			Pending      int    `json:"pending_outbox"`
			DeadLettered int64  `json:"dead_lettered"`
			LastError    string `json:"last_error"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal(a.body, &st); err != nil {
		return false, err.Error()
	}
	if len(st.Partitions) != len(hw) {
		return false, fmt.Sprintf("%d partitions in the status", len(st.Partitions))
	}
	for _, p := range st.Partitions {
		if p.Position < hw[p.Partition] || p.Pending > 0 {
			return false, fmt.Sprintf("state %s, %s/%d at %d of %d, %d outputs pending, last error %q",
				st.State, pipeIn, p.Partition, p.Position, hw[p.Partition], p.Pending, p.LastError)
		}
	}
	return true, ""
}

// recordPipelineCounts records, per key, how many inputs the pipeline's
// input holds and how many outputs (and what final count) its output
// holds: with exactly once they are equal.
func recordPipelineCounts(rec *history.Recorder, in, out []kv) {
	inputs, outputs, last := map[string]int{}, map[string]int{}, map[string]int{}
	for _, r := range in {
		inputs[r.key]++
	}
	for _, r := range out {
		outputs[r.key]++
		if n, err := strconv.Atoi(r.value); err == nil && n > last[r.key] {
			last[r.key] = n
		}
	}
	for k := range pipeKeys {
		key := fmt.Sprintf("k%d", k)
		rec.Invoke(history.Op{Kind: history.PipelineCount, Process: "final", Pipeline: chaosPipeline, Key: key,
			Inputs: inputs[key], Outputs: outputs[key]}).OK()
		rec.Invoke(history.Op{Kind: history.PipelineCount, Process: "final", Pipeline: chaosPipeline + " (state count)", Key: key,
			Inputs: inputs[key], Outputs: last[key]}).OK()
	}
}
