// Command window is a Weir transform that aggregates JSON metrics
// {"name":"cpu","value":0.5} per name in event-time windows, with the
// SDK's windows (transform.OnWindows): tumbling windows of config.size_ms,
// or hopping ones when config.slide_ms is set too. Event time is the
// record's timestamp.
//
// The partition's watermark is the largest timestamp seen minus
// config.lateness_ms; once the partition has been idle for
// config.idle_timeout_ms (default 10 s; negative: never) it also moves on
// with processing time, so the last window of a quiet stream closes.
// When the watermark reaches a window's end, the window is emitted to the
// first output, one record per name, keyed by name, with headers
// weir-window-start and weir-window-end:
//
//	{"name":"cpu","window_start":60000,"window_end":61000,"count":3,"sum":1.5,"min":0.1,"max":0.9}
//
// A late record (behind the watermark) and a value that is not such an
// object are dead-lettered with the reason. The open windows, the
// watermark and the timers are the pipeline's state, so an exactly-once
// pipeline commits them with its outputs.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/weir-broker/weir/sdk/transform"
)

func init() { transform.OnWindows(setup) }

func main() {}

type agg struct {
	Name  string  `json:"name"`
	Start int64   `json:"window_start"`
	End   int64   `json:"window_end"`
	Count int64   `json:"count"`
	Sum   float64 `json:"sum"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
}

type metric struct {
	Name  *string  `json:"name"`
	Value *float64 `json:"value"`
}

var errShape = errors.New(`window: value is not {"name":string,"value":number}`)

// ms reads a config value in milliseconds.
func ms(ctx *transform.Context, key string, def int64, positive bool) (time.Duration, error) {
	s, ok := ctx.LookupConfig(key)
	if !ok {
		return time.Duration(def) * time.Millisecond, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || (positive && v <= 0) {
		return 0, fmt.Errorf("window: config.%s must be a positive integer, got %q", key, s)
	}
	return time.Duration(v) * time.Millisecond, nil
}

func setup(ctx *transform.Context) (transform.Windows, error) {
	var w transform.Windows
	var err error
	if w.Size, err = ms(ctx, "size_ms", 0, true); err != nil || w.Size == 0 {
		return w, fmt.Errorf("window: config.size_ms must be a positive integer, got %q", ctx.Config("size_ms"))
	}
	if w.Slide, err = ms(ctx, "slide_ms", 0, true); err != nil {
		return w, err
	}
	if w.Time.AllowedLateness, err = ms(ctx, "lateness_ms", 0, false); err != nil || w.Time.AllowedLateness < 0 {
		return w, fmt.Errorf("window: config.lateness_ms must be a non-negative integer, got %q", ctx.Config("lateness_ms"))
	}
	if w.Time.IdleTimeout, err = ms(ctx, "idle_timeout_ms", transform.DefaultIdleTimeout.Milliseconds(), false); err != nil {
		return w, err
	}
	w.Key = func(r transform.Record) (string, error) {
		var m metric
		if err := json.Unmarshal(r.Value, &m); err != nil || m.Name == nil || m.Value == nil {
			return "", errShape
		}
		return *m.Name, nil
	}
	w.Add = add
	w.Emit = func(win transform.Window, acc []byte, ctx *transform.Context) error {
		var a agg
		if err := json.Unmarshal(acc, &a); err != nil {
			return fmt.Errorf("window: corrupt state: %v", err)
		}
		a.Name, a.Start, a.End = win.Key, win.Start.UnixMilli(), win.End.UnixMilli()
		v, err := json.Marshal(&a)
		if err != nil {
			return err
		}
		return ctx.Emit(win.Record(v))
	}
	return w, nil
}

// add folds a metric into a window's aggregate (JSON in state).
func add(acc []byte, r transform.Record) ([]byte, error) {
	var m metric
	if err := json.Unmarshal(r.Value, &m); err != nil || m.Value == nil {
		return nil, errShape // Key accepted it: cannot happen
	}
	a := agg{Min: *m.Value, Max: *m.Value}
	if acc != nil {
		if err := json.Unmarshal(acc, &a); err != nil {
			return nil, fmt.Errorf("window: corrupt state: %v", err)
		}
	}
	a.Count++
	a.Sum += *m.Value
	a.Min = min(a.Min, *m.Value)
	a.Max = max(a.Max, *m.Value)
	return json.Marshal(&a)
}
