package main

import (
	"slices"
	"testing"
	"time"

	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

func event(ts int64, v string) transformtest.Record {
	r := transformtest.KV("", v)
	r.Timestamp = ts
	return r
}

func TestSessionize(t *testing.T) {
	h := transformtest.New(transformtest.Options{Config: map[string]string{"lateness_ms": "2000"}})
	h.SetTime(time.UnixMilli(1_000_000))
	res, err := h.Registered(
		event(1000, `{"user":"alice"}`),
		event(3000, `{"user":"bob"}`),
		event(2000, `{"user":"alice"}`), // out of order, within the lateness
		event(4000, `{"page":"/"}`),     // no user
		event(9000, `not json`),
		event(11500, `{"user":"alice"}`), // watermark 9500
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Emitted) != 0 || len(res.Dead) != 2 || res.Dead[0].Reason != errNoUser.Error() {
		t.Fatalf("first batch: %q dead %+v", res.Values(), res.Dead)
	}
	res, err = h.Registered(
		event(12500, `{"user":"bob"}`), // watermark 10500: [0,10000) closes
		event(7000, `{"user":"bob"}`),  // late
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"user":"alice","window_start":0,"window_end":10000,"count":2}`,
		`{"user":"bob","window_start":0,"window_end":10000,"count":1}`,
	}
	if got := res.Values(); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if len(res.Dead) != 1 || res.Dead[0].Index != 1 || res.Dead[0].Reason != "late: event time 7000 ms is before the watermark 10500 ms" {
		t.Fatalf("late: %+v", res.Dead)
	}
	// The stream goes quiet: after the idle timeout a tick closes the last
	// window, with no new record.
	h.Advance(10 * time.Second)
	res, err = h.Tick()
	want = []string{
		`{"user":"alice","window_start":10000,"window_end":20000,"count":1}`,
		`{"user":"bob","window_start":10000,"window_end":20000,"count":1}`,
	}
	if err != nil || !slices.Equal(res.Values(), want) || res.Pending {
		t.Fatalf("idle tick: %q pending %v %v", res.Values(), res.Pending, err)
	}
	if string(res.Emitted[0].Record.Key) != "alice" || res.Emitted[0].Record.Timestamp != 19999 {
		t.Fatalf("window record %+v", res.Emitted[0].Record)
	}
}

func TestSessionizeConfig(t *testing.T) {
	h := transformtest.New(transformtest.Options{Config: map[string]string{"size_ms": "ten"}})
	if _, err := h.Registered(event(1, `{"user":"a"}`)); err == nil {
		t.Fatal("bad size_ms accepted")
	}
}
