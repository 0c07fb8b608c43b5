// Command window is a Weir transform that aggregates JSON metrics
// {"name":"cpu","value":0.5} in tumbling event-time windows of
// config.size_ms milliseconds (event time = the record's timestamp).
//
// The partition's watermark is the largest timestamp seen minus
// config.lateness_ms. When the watermark reaches a window's end, the window
// is emitted to the first output, one record per name, keyed by name:
//
//	{"name":"cpu","window_start":60000,"count":3,"sum":1.5,"min":0.1,"max":0.9}
//
// Windows closed by the same record are emitted by window start, then name.
// A record whose window is already closed is late and is dead-lettered;
// so is a record that is not such a JSON object. Records are processed one
// by one, so the results do not depend on how the input is batched.
//
// The open windows and the watermark live in the pipeline's state under one
// key ("window"), so an exactly-once pipeline restores them after a leader
// change.
package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/weir-broker/weir/sdk/transform"
)

func init() { transform.OnBatch(window) }

func main() {}

const stateKey = "window"

type agg struct {
	Name  string  `json:"name"`
	Start int64   `json:"window_start"`
	Count int64   `json:"count"`
	Sum   float64 `json:"sum"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
}

type state struct {
	HasMax bool   `json:"has_max"`
	MaxTS  int64  `json:"max_ts"`
	Open   []*agg `json:"open"`
}

type metric struct {
	Name  *string  `json:"name"`
	Value *float64 `json:"value"`
}

func window(b *transform.Batch, ctx *transform.Context) error {
	size, err := strconv.ParseInt(ctx.Config("size_ms"), 10, 64)
	if err != nil || size <= 0 {
		return fmt.Errorf("window: config.size_ms must be a positive integer, got %q", ctx.Config("size_ms"))
	}
	var lateness int64
	if s, ok := ctx.LookupConfig("lateness_ms"); ok {
		if lateness, err = strconv.ParseInt(s, 10, 64); err != nil || lateness < 0 {
			return fmt.Errorf("window: config.lateness_ms must be a non-negative integer, got %q", s)
		}
	}
	var st state
	if v, ok := ctx.State().Get(stateKey); ok {
		if err := json.Unmarshal(v, &st); err != nil {
			return fmt.Errorf("window: corrupt state: %v", err)
		}
	}
	open := make(map[[2]any]*agg, len(st.Open))
	for _, a := range st.Open {
		open[[2]any{a.Start, a.Name}] = a
	}
	for i, r := range b.Records {
		var m metric
		if err := json.Unmarshal(r.Value, &m); err != nil || m.Name == nil || m.Value == nil {
			if err := ctx.DeadLetterAt(i, `window: value is not {"name":string,"value":number}`); err != nil {
				return err
			}
			continue
		}
		start := floorDiv(r.Timestamp, size) * size
		if st.HasMax && start+size <= st.MaxTS-lateness {
			if err := ctx.DeadLetterAt(i, fmt.Sprintf("window: late record (window %d closed)", start)); err != nil {
				return err
			}
			continue
		}
		k := [2]any{start, *m.Name}
		a := open[k]
		if a == nil {
			a = &agg{Name: *m.Name, Start: start, Min: *m.Value, Max: *m.Value}
			open[k] = a
		}
		a.Count++
		a.Sum += *m.Value
		a.Min = min(a.Min, *m.Value)
		a.Max = max(a.Max, *m.Value)
		if !st.HasMax || r.Timestamp > st.MaxTS {
			st.HasMax, st.MaxTS = true, r.Timestamp
			if err := closeWindows(ctx, open, st.MaxTS-lateness, size); err != nil {
				return err
			}
		}
	}
	st.Open = sorted(open)
	v, err := json.Marshal(&st)
	if err != nil {
		return err
	}
	return ctx.State().Put(stateKey, v)
}

// closeWindows emits and forgets every window whose end is at or before the
// watermark.
func closeWindows(ctx *transform.Context, open map[[2]any]*agg, watermark, size int64) error {
	var done []*agg
	for k, a := range open {
		if a.Start+size <= watermark {
			done = append(done, a)
			delete(open, k)
		}
	}
	sortAggs(done)
	for _, a := range done {
		v, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if err := ctx.Emit(transform.Record{Key: []byte(a.Name), Value: v, Timestamp: a.Start}); err != nil {
			return err
		}
	}
	return nil
}

func sorted(open map[[2]any]*agg) []*agg {
	out := make([]*agg, 0, len(open))
	for _, a := range open {
		out = append(out, a)
	}
	sortAggs(out)
	return out
}

func sortAggs(s []*agg) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Start != s[j].Start {
			return s[i].Start < s[j].Start
		}
		return s[i].Name < s[j].Name
	})
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
