package transform_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/sdk/transform"
	"github.com/weir-broker/weir/sdk/transform/transformtest"
)

// counting windows: key = record key, accumulator = a decimal count, output
// "key@start-end=count".
func counting(w transform.Windows) transform.Handlers {
	w.Key = func(r transform.Record) (string, error) {
		if r.Key == nil {
			return "", fmt.Errorf("no key")
		}
		return string(r.Key), nil
	}
	w.Add = func(acc []byte, _ transform.Record) ([]byte, error) {
		n, _ := strconv.Atoi(string(acc))
		return []byte(strconv.Itoa(n + 1)), nil
	}
	w.Merge = func(a, b []byte) ([]byte, error) {
		x, _ := strconv.Atoi(string(a))
		y, _ := strconv.Atoi(string(b))
		return []byte(strconv.Itoa(x + y)), nil
	}
	w.Emit = func(win transform.Window, acc []byte, ctx *transform.Context) error {
		v := fmt.Sprintf("%s@%d-%d=%s", win.Key, win.Start.UnixMilli(), win.End.UnixMilli(), acc)
		return ctx.Emit(win.Record([]byte(v)))
	}
	return transform.WindowHandlers(func(*transform.Context) (transform.Windows, error) { return w, nil })
}

func at(ms int64, key string) transform.Record {
	r := transformtest.KV(key, "")
	r.Timestamp = ms
	return r
}

func run(t *testing.T, h *transformtest.Harness, hs transform.Handlers, recs ...transform.Record) *transformtest.Result {
	t.Helper()
	res, err := h.Run(hs, recs...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func tick(t *testing.T, h *transformtest.Harness, hs transform.Handlers) *transformtest.Result {
	t.Helper()
	res, err := h.TickHandlers(hs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func want(t *testing.T, res *transformtest.Result, values ...string) {
	t.Helper()
	if got := res.Values(); !slices.Equal(got, values) && !(len(got) == 0 && len(values) == 0) {
		t.Fatalf("emitted %q, want %q", got, values)
	}
}

func TestTumblingWindowsOutOfOrderAndLate(t *testing.T) {
	hs := counting(transform.Windows{Size: 10 * time.Second, Time: transform.TimeOptions{AllowedLateness: 2 * time.Second}})
	h := transformtest.New(transformtest.Options{})
	h.SetTime(time.UnixMilli(1_000_000))
	// Out of order within the lateness: all counted. Watermark 9000.
	want(t, run(t, h, hs, at(3000, "a"), at(1000, "a"), at(11000, "a"), at(9500, "b")))
	// 13000 moves the watermark to 11000: window [0,10000) closes. 8000
	// then is late (before the watermark); 12000 is on time.
	res := run(t, h, hs, at(13000, "a"), at(8000, "a"), at(12000, "b"))
	want(t, res, "a@0-10000=2", "b@0-10000=1")
	if len(res.Dead) != 1 || res.Dead[0].Index != 1 || !strings.HasPrefix(res.Dead[0].Reason, "late: event time 8000 ms is before the watermark 11000 ms") {
		t.Fatalf("dead %+v", res.Dead)
	}
	e := res.Emitted[0].Record
	if string(e.Key) != "a" || e.Timestamp != 9999 {
		t.Fatalf("window record %+v", e)
	}
	if s, _ := e.Header(transform.HeaderWindowStart); s != "0" {
		t.Fatalf("start header %q", s)
	}
	if s, _ := e.Header(transform.HeaderWindowEnd); s != "10000" {
		t.Fatalf("end header %q", s)
	}
	// A record without a key is dead-lettered by Key's error.
	res = run(t, h, hs, at(14000, ""), at(22000, "c"))
	want(t, res, "a@10000-20000=2", "b@10000-20000=1")
	if len(res.Dead) != 1 || res.Dead[0].Reason != "no key" {
		t.Fatalf("dead %+v", res.Dead)
	}
}

// The watermark of an idle partition moves with processing time, and a
// tick closes its last window with no new input.
func TestIdlePartitionClosesByTick(t *testing.T) {
	hs := counting(transform.Windows{Size: 10 * time.Second, Time: transform.TimeOptions{AllowedLateness: time.Second, IdleTimeout: 5 * time.Second}})
	h := transformtest.New(transformtest.Options{})
	h.SetTime(time.UnixMilli(500_000))
	want(t, run(t, h, hs, at(4000, "a"), at(6000, "a")))
	h.Advance(4 * time.Second) // not idle long enough
	res := tick(t, h, hs)
	want(t, res)
	if !res.Pending {
		t.Fatal("a tick with an open window is not pending")
	}
	// Idle, but short of the window's end: the watermark moved, nothing
	// closed, and the tick writes nothing (no commit per tick).
	hl := counting(transform.Windows{Size: time.Hour, Time: transform.TimeOptions{IdleTimeout: time.Second}})
	hh := transformtest.New(transformtest.Options{})
	hh.SetTime(time.UnixMilli(0))
	run(t, hh, hl, at(1000, "a"))
	hh.Advance(time.Minute)
	if res := tick(t, hh, hl); len(res.Changes) != 0 || len(res.Emitted) != 0 || !res.Pending {
		t.Fatalf("idle tick short of the window's end: %+v", res)
	}
	hh.Advance(time.Hour)
	if res := tick(t, hh, hl); len(res.Emitted) != 1 || res.Pending {
		t.Fatalf("idle tick past the window's end: %+v", res)
	}
	h.Advance(1 * time.Second) // idle 5 s: watermark 6000+5000-1000 = 10000
	res = tick(t, h, hs)
	want(t, res, "a@0-10000=2")
	if res.Pending {
		t.Fatal("pending with no window open")
	}
	// The window closed for good: another tick emits nothing, a late
	// record is late.
	want(t, tick(t, h, hs))
	res = run(t, h, hs, at(9000, "a"))
	if len(res.Dead) != 1 {
		t.Fatalf("late record after the idle close: %+v", res)
	}
}

func TestHoppingWindows(t *testing.T) {
	hs := counting(transform.Windows{Size: 10 * time.Second, Slide: 5 * time.Second})
	h := transformtest.New(transformtest.Options{})
	h.SetTime(time.UnixMilli(0))
	want(t, run(t, h, hs, at(7000, "k"), at(12000, "k")), "k@0-10000=1")
	want(t, run(t, h, hs, at(15000, "k")), "k@5000-15000=2")
	want(t, run(t, h, hs, at(30000, "k")), "k@10000-20000=2", "k@15000-25000=1")
}

func TestSessionWindows(t *testing.T) {
	hs := counting(transform.Windows{Gap: 5 * time.Second})
	h := transformtest.New(transformtest.Options{})
	h.SetTime(time.UnixMilli(0))
	// a's [0,5000) and b's [1000,6000) close at watermark 8000, where a's
	// second session starts.
	want(t, run(t, h, hs, at(0, "a"), at(1000, "b"), at(8000, "a")), "a@0-5000=1", "b@1000-6000=1")
	// a's 11000 extends its session to [8000,16000); b opens [9000,14000).
	want(t, run(t, h, hs, at(9000, "b"), at(11000, "a")))
	want(t, run(t, h, hs, at(12000, "b"), at(12500, "a")))
	want(t, run(t, h, hs, at(40000, "z")), "b@9000-17000=2", "a@8000-17500=3")
}

// A record that falls between two sessions of its key merges them.
func TestSessionWindowsMerge(t *testing.T) {
	hs := counting(transform.Windows{Gap: 5 * time.Second, Time: transform.TimeOptions{AllowedLateness: 10 * time.Second}})
	h := transformtest.New(transformtest.Options{})
	h.SetTime(time.UnixMilli(0))
	want(t, run(t, h, hs, at(0, "a"), at(8000, "a"), at(4000, "a")))
	want(t, run(t, h, hs, at(30000, "z")), "a@0-13000=3")
}

func TestLateOutput(t *testing.T) {
	hs := counting(transform.Windows{Size: time.Second, Time: transform.TimeOptions{LateOutput: "late"}})
	h := transformtest.New(transformtest.Options{Outputs: []string{"out", "late"}})
	h.SetTime(time.UnixMilli(0))
	res := run(t, h, hs, at(5000, "a"), at(100, "a"))
	if len(res.Dead) != 0 || len(res.Emitted) != 1 || res.Emitted[0].Output != "late" {
		t.Fatalf("late record: %+v", res)
	}
	if v, ok := res.Emitted[0].Record.Header(transform.HeaderLate); !ok || !strings.HasPrefix(v, "late: ") {
		t.Fatalf("late header %q", v)
	}
}

// Window results do not depend on how the input is batched.
func TestWindowsBatchingInvariant(t *testing.T) {
	var recs []transform.Record
	for i := int64(0); i < 60; i++ {
		recs = append(recs, at(i*137%4000+i*50, string(rune('a'+i%3))))
	}
	for _, w := range []transform.Windows{
		{Size: 250 * time.Millisecond, Time: transform.TimeOptions{AllowedLateness: 300 * time.Millisecond}},
		{Size: 500 * time.Millisecond, Slide: 250 * time.Millisecond, Time: transform.TimeOptions{AllowedLateness: 300 * time.Millisecond}},
		{Gap: 100 * time.Millisecond, Time: transform.TimeOptions{AllowedLateness: 300 * time.Millisecond}},
	} {
		var first []string
		for _, size := range []int{1, 7, 60} {
			hs := counting(w)
			h := transformtest.New(transformtest.Options{})
			h.SetTime(time.UnixMilli(0))
			var out, dead []string
			for i := 0; i < len(recs); i += size {
				res := run(t, h, hs, recs[i:min(i+size, len(recs))]...)
				out = append(out, res.Values()...)
				for _, d := range res.Dead {
					dead = append(dead, "dead "+strconv.Itoa(i+d.Index))
				}
			}
			h.Advance(time.Hour)
			// Windows close in order of their ends whatever the batches;
			// dead letters are listed after them.
			out = append(append(out, tick(t, h, hs).Values()...), dead...)
			if len(out) == 0 {
				t.Fatal("no output")
			}
			if first == nil {
				first = out
			} else if !slices.Equal(out, first) {
				t.Fatalf("%+v batch %d: %q\nbatch 1: %q", w, size, out, first)
			}
		}
	}
}

func TestTimers(t *testing.T) {
	var fired []string
	hs := transform.Handlers{
		Time: func(*transform.Context) (transform.TimeOptions, error) {
			return transform.TimeOptions{IdleTimeout: -1}, nil
		},
		Batch: transform.PerRecord(func(r transform.Record, ctx *transform.Context) error {
			if err := ctx.Timers().Set("e-"+string(r.Value), ctx.EventTime().Add(time.Second)); err != nil {
				return err
			}
			return ctx.Timers().SetProcessing("p-"+string(r.Value), ctx.ProcessingTime().Add(time.Minute))
		}),
		Timer: func(tm transform.Timer, ctx *transform.Context) error {
			wm, _ := ctx.Watermark()
			fired = append(fired, fmt.Sprintf("%s@%d wm=%d proc=%v", tm.Name, tm.At.UnixMilli(), wm.UnixMilli(), tm.Processing))
			return ctx.Emit(transform.Record{Value: []byte(tm.Name)})
		},
	}
	h := transformtest.New(transformtest.Options{})
	h.SetTime(time.UnixMilli(100_000))
	rec := func(ms int64, v string) transform.Record { r := at(ms, "k"); r.Value = []byte(v); return r }
	want(t, run(t, h, hs, rec(1000, "x"), rec(1500, "y")))
	want(t, run(t, h, hs, rec(2000, "z")), "e-x") // watermark 2000: x's timer at 2000 fires
	// Ticks do not move the watermark (IdleTimeout < 0): only processing timers fire.
	h.Advance(time.Minute)
	res := tick(t, h, hs)
	want(t, res, "p-x", "p-y", "p-z")
	if !res.Pending {
		t.Fatal("event timers left, not pending")
	}
	want(t, run(t, h, hs, rec(10_000, "w")), "e-y", "e-z")
	if len(fired) != 6 || fired[0] != "e-x@2000 wm=2000 proc=false" {
		t.Fatalf("fired %q", fired)
	}
	// A timer a handler deletes before its turn does not fire.
	h2 := transformtest.New(transformtest.Options{})
	h2.SetTime(time.UnixMilli(0))
	var order []string
	del := transform.Handlers{
		Time: hs.Time,
		Batch: transform.PerRecord(func(r transform.Record, ctx *transform.Context) error {
			for _, n := range []string{"a", "b"} {
				if err := ctx.Timers().Set(n, time.UnixMilli(5)); err != nil {
					return err
				}
			}
			return nil
		}),
		Timer: func(tm transform.Timer, ctx *transform.Context) error {
			order = append(order, tm.Name)
			return ctx.Timers().Delete("b", time.UnixMilli(5), false)
		},
	}
	run(t, h2, del, rec(1, "x"))
	run(t, h2, del, rec(10, "y"))
	if !slices.Equal(order, []string{"a"}) {
		t.Fatalf("fired %q, want only a", order)
	}
	// A failed call leaves the timers to fire again.
	boom := hs
	boom.Timer = func(transform.Timer, *transform.Context) error { return fmt.Errorf("boom") }
	h.Advance(time.Hour)
	if _, err := h.TickHandlers(boom); err == nil {
		t.Fatal("a failing timer handler did not fail the tick")
	}
	want(t, tick(t, h, hs), "p-w")
}

func TestStateKeys(t *testing.T) {
	h := transformtest.New(transformtest.Options{})
	put := transform.PerRecord(func(r transform.Record, ctx *transform.Context) error {
		for i := range 40 {
			if err := ctx.State().Put(fmt.Sprintf("u/%02d", i), nil); err != nil {
				return err
			}
		}
		return ctx.State().Put("v/1", nil)
	})
	if _, err := h.Batch(put, at(0, "k")); err != nil {
		t.Fatal(err)
	}
	var listed []string
	_, err := h.Records(func(r transform.Record, ctx *transform.Context) error {
		// This batch's writes and deletes count.
		if err := ctx.State().Delete("u/03"); err != nil {
			return err
		}
		if err := ctx.State().Put("u/99", []byte("x")); err != nil {
			return err
		}
		for k := range ctx.State().Keys("u/") {
			listed = append(listed, k)
		}
		n := 0
		for range ctx.State().Keys("u/") {
			if n++; n == 3 {
				break
			}
		}
		return nil
	}, at(0, "k"))
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 40 || listed[0] != "u/00" || listed[3] != "u/04" || listed[39] != "u/99" {
		t.Fatalf("listed %d: %q", len(listed), listed)
	}
	// The SDK's own keys stay out of a listing of everything.
	hs := counting(transform.Windows{Size: time.Second})
	run(t, h, hs, at(0, "a"))
	var all []string
	if _, err := h.Records(func(r transform.Record, ctx *transform.Context) error {
		for k := range ctx.State().Keys("") {
			all = append(all, k)
		}
		return nil
	}, at(0, "k")); err != nil {
		t.Fatal(err)
	}
	if len(all) != 41 || all[40] != "v/1" {
		t.Fatalf("all keys %d: %q", len(all), all)
	}
}
