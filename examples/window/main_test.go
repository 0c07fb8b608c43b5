package main

import (
	"slices"
	"testing"

	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

func metricAt(ts int64, v string) transformtest.Record {
	r := transformtest.KV("", v)
	r.Timestamp = ts
	return r
}

func TestWindow(t *testing.T) {
	h := transformtest.New(transformtest.Options{Config: map[string]string{"size_ms": "1000", "lateness_ms": "500"}})
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
		`{"name":"cpu","window_start":0,"count":3,"sum":6,"min":1,"max":3}`,
		`{"name":"mem","window_start":0,"count":1,"sum":10,"min":10,"max":10}`,
	}
	if got := res.Values(); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if string(res.Emitted[1].Record.Key) != "mem" || res.Emitted[0].Record.Timestamp != 0 {
		t.Fatalf("key/timestamp: %+v", res.Emitted[1].Record)
	}
	if len(res.Dead) != 2 || res.Dead[0].Index != 2 || res.Dead[1].Index != 3 {
		t.Fatalf("dead %+v", res.Dead)
	}
	res, err = h.Registered(metricAt(2500, `{"name":"x","value":0}`)) // watermark 2000
	if err != nil {
		t.Fatal(err)
	}
	want = []string{`{"name":"cpu","window_start":1000,"count":2,"sum":12,"min":5,"max":7}`}
	if got := res.Values(); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// The result does not depend on batch boundaries.
func TestWindowBatchingInvariant(t *testing.T) {
	var recs []transformtest.Record
	for i := int64(0); i < 40; i++ {
		recs = append(recs, metricAt(i*137%3000, `{"name":"n`+string(rune('a'+i%3))+`","value":`+string(rune('0'+i%10))+`}`))
	}
	run := func(batch int) []string {
		h := transformtest.New(transformtest.Options{Config: map[string]string{"size_ms": "250", "lateness_ms": "100"}})
		var out []string
		for i := 0; i < len(recs); i += batch {
			res, err := h.Registered(recs[i:min(i+batch, len(recs))]...)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, res.Values()...)
		}
		return out
	}
	one, all := run(1), run(len(recs))
	if !slices.Equal(one, all) || len(one) == 0 {
		t.Fatalf("batch 1: %q\nbatch all: %q", one, all)
	}
}

func TestWindowConfig(t *testing.T) {
	h := transformtest.New(transformtest.Options{Config: map[string]string{"size_ms": "0"}})
	if _, err := h.Registered(metricAt(1, `{"name":"a","value":1}`)); err == nil {
		t.Fatal("size_ms 0 accepted")
	}
}
