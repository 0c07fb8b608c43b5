package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/sdk/transform"
	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

func metricAt(ts int64, v string) transformtest.Record {
	r := transformtest.KV("", v)
	r.Timestamp = ts
	return r
}

func harness(cfg map[string]string) *transformtest.Harness {
	h := transformtest.New(transformtest.Options{Config: cfg})
	h.SetTime(time.UnixMilli(1_000_000)) // processing time: the test's clock
	return h
}

func TestWindow(t *testing.T) {
	h := harness(map[string]string{"size_ms": "1000", "lateness_ms": "500"})
	res, err := h.Registered(
		metricAt(100, `{"name":"cpu","value":1}`),
		metricAt(200, `{"name":"mem","value":10}`),
		metricAt(900, `{"name":"cpu","value":3}`),
		metricAt(1200, `{"name":"cpu","value":5}`), // watermark 700: nothing closes
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Emitted) != 0 {
		t.Fatalf("emitted too early: %q", res.Values())
	}
	// A second batch: the state carries the open windows over.
	res, err = h.Registered(
		metricAt(800, `{"name":"cpu","value":2}`),  // still on time (watermark 700)
		metricAt(1600, `{"name":"cpu","value":7}`), // watermark 1100: window 0 closes
		metricAt(300, `{"name":"cpu","value":9}`),  // late
		metricAt(1700, `garbage`),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"name":"cpu","window_start":0,"window_end":1000,"count":3,"sum":6,"min":1,"max":3}`,
		`{"name":"mem","window_start":0,"window_end":1000,"count":1,"sum":10,"min":10,"max":10}`,
	}
	if got := res.Values(); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	mem := res.Emitted[1].Record
	if string(mem.Key) != "mem" || mem.Timestamp != 999 {
		t.Fatalf("key/timestamp: %+v", mem)
	}
	if s, _ := mem.Header(transform.HeaderWindowStart); s != "0" {
		t.Fatalf("window start header %q", s)
	}
	if e, _ := mem.Header(transform.HeaderWindowEnd); e != "1000" {
		t.Fatalf("window end header %q", e)
	}
	if len(res.Dead) != 2 || res.Dead[0].Index != 2 || res.Dead[1].Index != 3 ||
		!strings.HasPrefix(res.Dead[0].Reason, "late: event time 300 ms is before the watermark 1100 ms") {
		t.Fatalf("dead %+v", res.Dead)
	}
	res, err = h.Registered(metricAt(2500, `{"name":"x","value":0}`)) // watermark 2000
	if err != nil {
		t.Fatal(err)
	}
	want = []string{`{"name":"cpu","window_start":1000,"window_end":2000,"count":2,"sum":12,"min":5,"max":7}`}
	if got := res.Values(); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// The last window of a quiet partition closes by processing time: the
// broker ticks the module, and the harness's Tick does the same.
func TestWindowIdleCloses(t *testing.T) {
	h := harness(map[string]string{"size_ms": "1000", "idle_timeout_ms": "5000"})
	if _, err := h.Registered(metricAt(1500, `{"name":"cpu","value":4}`)); err != nil {
		t.Fatal(err)
	}
	h.Advance(4999 * time.Millisecond)
	res, err := h.Tick()
	if err != nil || len(res.Emitted) != 0 || !res.Pending {
		t.Fatalf("before the idle timeout: %+v %v", res, err)
	}
	h.Advance(time.Millisecond) // idle 5 s: watermark 1500 + 5000
	res, err = h.Tick()
	want := []string{`{"name":"cpu","window_start":1000,"window_end":2000,"count":1,"sum":4,"min":4,"max":4}`}
	if err != nil || !slices.Equal(res.Values(), want) || res.Pending {
		t.Fatalf("idle close: %q pending %v %v", res.Values(), res.Pending, err)
	}
}

func TestWindowHopping(t *testing.T) {
	h := harness(map[string]string{"size_ms": "1000", "slide_ms": "500"})
	if _, err := h.Registered(metricAt(700, `{"name":"a","value":1}`), metricAt(1200, `{"name":"a","value":2}`)); err != nil {
		t.Fatal(err)
	}
	res, err := h.Registered(metricAt(5000, `{"name":"a","value":0}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"name":"a","window_start":500,"window_end":1500,"count":2,"sum":3,"min":1,"max":2}`,
		`{"name":"a","window_start":1000,"window_end":2000,"count":1,"sum":2,"min":2,"max":2}`,
	}
	if got := res.Values(); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// The result does not depend on batch boundaries.
func TestWindowBatchingInvariant(t *testing.T) {
	var recs []transformtest.Record
	for i := int64(0); i < 40; i++ {
		recs = append(recs, metricAt(i*137%3000, `{"name":"n`+string(rune('a'+i%3))+`","value":`+strconv.Itoa(int(i%10))+`}`))
	}
	run := func(batch int) []string {
		h := harness(map[string]string{"size_ms": "250", "lateness_ms": "100"})
		var out, dead []string
		for i := 0; i < len(recs); i += batch {
			res, err := h.Registered(recs[i:min(i+batch, len(recs))]...)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, res.Values()...)
			for _, d := range res.Dead {
				dead = append(dead, strconv.Itoa(i+d.Index))
			}
		}
		return append(out, dead...)
	}
	one, all := run(1), run(len(recs))
	if !slices.Equal(one, all) || len(one) == 0 {
		t.Fatalf("batch 1: %q\nbatch all: %q", one, all)
	}
}

func TestWindowConfig(t *testing.T) {
	for _, cfg := range []map[string]string{
		{"size_ms": "0"},
		{},
		{"size_ms": "10", "lateness_ms": "-1"},
		{"size_ms": "10", "slide_ms": "20"},
	} {
		h := harness(cfg)
		if _, err := h.Registered(metricAt(1, `{"name":"a","value":1}`)); err == nil {
			t.Fatalf("config %v accepted", cfg)
		}
	}
}
