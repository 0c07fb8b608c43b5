package core

import (
	"testing"
	"time"
)

func TestTickSchedule(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tk := newTickSchedule(PipelineSpec{TickIntervalMs: 200}, t0)
	step := func(at time.Duration, wantWait time.Duration, wantDue bool) {
		t.Helper()
		w, due := tk.wait(t0.Add(at))
		if w != wantWait || due != wantDue {
			t.Fatalf("at %v: wait %v due %v, want %v %v", at, w, due, wantWait, wantDue)
		}
	}
	step(0, 200*time.Millisecond, false) // pending after a start: ask once
	step(200*time.Millisecond, 0, true)
	tk.ticked(t0.Add(200*time.Millisecond), false) // no timers: idle until a batch
	step(time.Hour, time.Second, false)
	tk.ran(t0.Add(time.Hour), false) // wrote no state: set no timer
	step(time.Hour+time.Minute, time.Second, false)
	tk.ran(t0.Add(2*time.Hour), true) // wrote state: may have set timers
	step(2*time.Hour+50*time.Millisecond, 150*time.Millisecond, false)
	step(2*time.Hour+200*time.Millisecond, 0, true)
	tk.ticked(t0.Add(2*time.Hour+200*time.Millisecond), true)
	step(2*time.Hour+300*time.Millisecond, 100*time.Millisecond, false)
	// Long intervals still look for records every second.
	long := newTickSchedule(PipelineSpec{TickIntervalMs: 60_000}, t0)
	if w, due := long.wait(t0); w != time.Second || due {
		t.Fatalf("long interval: %v %v", w, due)
	}
	if d := newTickSchedule(PipelineSpec{}, t0); d.interval != DefaultTickIntervalMs*time.Millisecond {
		t.Fatalf("default interval %v", d.interval)
	}
}

func TestTickIntervalValidation(t *testing.T) {
	for _, ms := range []int64{-1, 5, TickIntervalMsMax + 1} {
		s := PipelineSpec{Name: "p", Module: "m", Inputs: []string{"a"}, Outputs: []string{"b"}, TickIntervalMs: ms}
		if err := s.Validate(); err == nil {
			t.Fatalf("tick_interval_ms %d accepted", ms)
		}
	}
	s := PipelineSpec{Name: "p", Module: "m", Inputs: []string{"a"}, Outputs: []string{"b"}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	s.setDefaults()
	if s.TickIntervalMs != DefaultTickIntervalMs {
		t.Fatalf("default %d", s.TickIntervalMs)
	}
}
