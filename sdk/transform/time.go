package transform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Event time: each input partition has a watermark, the event time up to
// which its input is taken to be complete. The watermark, the timers and
// window contents live in the pipeline's keyed state under reserved keys,
// so an exactly-once pipeline commits them with the outputs and the input
// position: a restart neither loses a window close nor emits it twice.

// DefaultIdleTimeout is TimeOptions.IdleTimeout's default.
const DefaultIdleTimeout = 10 * time.Second

// TimeOptions configure event time (EventTime, Windows.Time).
type TimeOptions struct {
	// AllowedLateness: the watermark is the largest event time seen minus
	// AllowedLateness. A record whose event time is before the watermark
	// is late. Default 0: any record older than the newest is late.
	AllowedLateness time.Duration
	// IdleTimeout: once a partition has had no record for IdleTimeout of
	// processing time, its watermark moves on with processing time: it is
	// at least the largest event time seen plus the processing time since
	// the last record, minus AllowedLateness. This is what closes the last
	// windows of a quiet partition (ticks run without input). 0 takes
	// DefaultIdleTimeout; negative: the watermark moves with records only.
	IdleTimeout time.Duration
	// LateOutput names the output late records go to, unchanged but for a
	// "weir-late" header holding the reason. Empty: late records go to the
	// pipeline's dead-letter topic, with the reason in weir-last-error
	// ("late: …").
	LateOutput string
	// EventTime returns a record's event time. nil: the record's
	// timestamp. An error dead-letters the record with the error's text.
	EventTime func(r *Record) (time.Time, error)
}

// HeaderLate is the header a late record carries on TimeOptions.LateOutput.
const HeaderLate = "weir-late"

// Timer is a timer that fired: the Name and At it was set with.
// Processing timers fire once the processing time reaches At, event-time
// timers once the partition's watermark reaches it.
type Timer struct {
	Name       string
	At         time.Time
	Processing bool
}

// TimerHandler handles a timer that fired. It may emit, use state and set
// timers; an error fails the batch or tick that fired it (which then runs
// again: the timer fires again).
type TimerHandler func(t Timer, ctx *Context) error

// EventTime turns event time on for an OnRecord or OnBatch module: setup
// (nil: the zero TimeOptions) is called at the start of every batch and
// tick and may read the pipeline's config. An OnRecord handler then never
// sees late records.
func EventTime(setup func(ctx *Context) (TimeOptions, error)) {
	if setup == nil {
		setup = func(*Context) (TimeOptions, error) { return TimeOptions{}, nil }
	}
	registered.Time = setup
}

// OnTimer registers the module's timer handler; it turns event time on
// with the zero TimeOptions unless EventTime set them.
func OnTimer(h TimerHandler) {
	registered.Timer = h
	if registered.Time == nil {
		EventTime(nil)
	}
}

// Reserved state keys.
const (
	timeKey       = reservedPrefix + "time"
	timerPrefix   = reservedPrefix + "t/"
	eventTimers   = timerPrefix + "e/"
	procTimers    = timerPrefix + "p/"
	noWatermark   = math.MinInt64
	timeStateSize = 1 + 3*8
)

// timeState is a partition's event-time bookkeeping, kept under timeKey.
type timeState struct {
	opts      TimeOptions
	timer     TimerHandler
	seen      bool  // a record was observed
	procSet   bool  // processing-time timers may exist (saves listing them)
	touched   bool  // a timer was set or deleted since fire last listed them
	maxEvent  int64 // ms
	watermark int64 // ms; noWatermark before the first record
	arrival   int64 // processing time (ms) of the last batch with records
	loaded    [timeStateSize]byte
	observed  bool // a per-record handler observed this batch's records
	fired     int  // timers fired by this call
}

func loadTime(c *Context, hs Handlers) (*timeState, error) {
	opts, err := hs.Time(c)
	if err != nil {
		return nil, err
	}
	if opts.AllowedLateness < 0 {
		return nil, fmt.Errorf("transform: negative allowed lateness %v", opts.AllowedLateness)
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	t := &timeState{opts: opts, timer: hs.Timer, watermark: noWatermark}
	c.now = c.Now().UnixMilli()
	v, ok := c.State().Get(timeKey)
	if ok {
		if len(v) != timeStateSize {
			return nil, fmt.Errorf("transform: event-time state of %d bytes, want %d", len(v), timeStateSize)
		}
		copy(t.loaded[:], v)
		t.seen, t.procSet = v[0]&1 != 0, v[0]&2 != 0
		t.maxEvent = int64(binary.LittleEndian.Uint64(v[1:]))
		t.watermark = int64(binary.LittleEndian.Uint64(v[9:]))
		t.arrival = int64(binary.LittleEndian.Uint64(v[17:]))
	}
	return t, nil
}

// save writes the bookkeeping back when it changed.
func (t *timeState) save(c *Context) error {
	var b [timeStateSize]byte
	if t.seen {
		b[0] |= 1
	}
	if t.procSet {
		b[0] |= 2
	}
	binary.LittleEndian.PutUint64(b[1:], uint64(t.maxEvent))
	binary.LittleEndian.PutUint64(b[9:], uint64(t.watermark))
	binary.LittleEndian.PutUint64(b[17:], uint64(t.arrival))
	if b == t.loaded {
		return nil
	}
	t.loaded = b
	return c.State().Put(timeKey, b[:])
}

// eventTime is r's event time in ms.
func (t *timeState) eventTime(r *Record) (int64, error) {
	if t.opts.EventTime == nil {
		return r.Timestamp, nil
	}
	at, err := t.opts.EventTime(r)
	if err != nil {
		return 0, err
	}
	return at.UnixMilli(), nil
}

// admit decides what becomes of record i: false when it was late (routed)
// or had no event time (dead-lettered). It sets c.evt.
func (t *timeState) admit(c *Context, i int, r *Record) (bool, error) {
	t.observed = true
	ts, err := t.eventTime(r)
	if err != nil {
		return false, c.DeadLetterAt(i, "event time: "+err.Error())
	}
	c.evt = ts
	if t.watermark == noWatermark || ts >= t.watermark {
		return true, nil
	}
	reason := fmt.Sprintf("late: event time %d ms is before the watermark %d ms", ts, t.watermark)
	if t.opts.LateOutput == "" {
		return false, c.DeadLetterAt(i, reason)
	}
	out := *r
	out.Headers = append(append([]Header(nil), r.Headers...), Header{Key: HeaderLate, Value: reason})
	return false, c.EmitTo(t.opts.LateOutput, out)
}

// observe advances the watermark past event time ts.
func (t *timeState) observe(ts int64) {
	if !t.seen || ts > t.maxEvent {
		t.seen, t.maxEvent = true, ts
	}
	if wm := satSub(t.maxEvent, t.opts.AllowedLateness.Milliseconds()); wm > t.watermark {
		t.watermark = wm
	}
}

// idle advances the watermark with processing time when the partition
// has been idle for the idle timeout.
func (t *timeState) idle(now int64) {
	if !t.seen || t.opts.IdleTimeout < 0 {
		return
	}
	quiet := now - t.arrival
	if quiet < t.opts.IdleTimeout.Milliseconds() {
		return
	}
	if wm := satSub(t.maxEvent+quiet, t.opts.AllowedLateness.Milliseconds()); wm > t.watermark {
		t.watermark = wm
	}
}

func satSub(a, b int64) int64 {
	if a < math.MinInt64+b {
		return math.MinInt64 + 1
	}
	return a - b
}

// afterBatch observes the batch (when no per-record handler did), fires
// the timers that came due and saves the bookkeeping.
func (t *timeState) afterBatch(c *Context, b *Batch) error {
	if len(b.Records) > 0 {
		if !t.observed {
			for i := range b.Records {
				ts, err := t.eventTime(&b.Records[i])
				if err != nil {
					continue // an OnBatch handler deals with its own records
				}
				t.observe(ts)
			}
		}
		t.arrival = c.now
	}
	if err := t.fire(c); err != nil {
		return err
	}
	return t.save(c)
}

// onTick advances an idle partition's watermark, fires what came due and
// reports whether timers remain.
func (t *timeState) onTick(c *Context) (bool, error) {
	before := t.watermark
	t.idle(c.now)
	if err := t.fire(c); err != nil {
		return false, err
	}
	if t.fired == 0 {
		// Nothing closed: the idle watermark is not worth a commit per
		// tick. It is derived again (from the saved largest event time and
		// arrival) at the next tick, at least as far.
		t.watermark = before
	}
	if err := t.save(c); err != nil {
		return false, err
	}
	for range c.State().Keys(timerPrefix) {
		return true, c.err
	}
	return false, c.err
}

// fire runs every due timer in order (event-time timers by time and name,
// then processing-time ones), until none is due: a handler may set more.
// Each round costs one listing of the event-time timers (state_keys), and
// one of the processing-time ones only when some were set.
func (t *timeState) fire(c *Context) error {
	for c.err == nil {
		due := t.due(c, eventTimers, t.watermark, false)
		if t.procSet {
			procDue, exist := t.dueProcessing(c)
			due = append(due, procDue...)
			t.procSet = exist
		}
		if len(due) == 0 {
			break
		}
		if t.timer == nil {
			return errors.New("transform: a timer fired but no timer handler is registered (transform.OnTimer)")
		}
		t.touched = false
		for _, d := range due {
			if t.touched { // an earlier handler may have deleted this one
				if _, ok := c.State().Get(d.key); !ok {
					continue
				}
			}
			if err := c.State().Delete(d.key); err != nil {
				return err
			}
			c.cur = -1
			t.fired++
			if err := t.timer(d.Timer, c); err != nil {
				return err
			}
		}
		if !t.touched {
			break // the handlers set no timer: nothing else came due
		}
	}
	return c.err
}

// dueProcessing lists the due processing-time timers and whether any
// processing-time timer exists.
func (t *timeState) dueProcessing(c *Context) ([]dueTimer, bool) {
	due := t.due(c, procTimers, c.now, true)
	if len(due) > 0 {
		return due, true
	}
	for range c.State().Keys(procTimers) {
		return nil, true
	}
	return nil, false
}

type dueTimer struct {
	Timer
	key string
}

// due lists the timers under prefix whose time is at or before until.
func (t *timeState) due(c *Context, prefix string, until int64, processing bool) []dueTimer {
	if until == noWatermark {
		return nil
	}
	var out []dueTimer
	for k := range c.State().Keys(prefix) {
		at, name, ok := parseTimerKey(k[len(prefix):])
		if !ok {
			continue // not one of ours
		}
		if at > until {
			break
		}
		out = append(out, dueTimer{Timer{Name: name, At: time.UnixMilli(at), Processing: processing}, k})
	}
	return out
}

// Timers returns the timers of this pipeline and input partition. Event
// time must be on (EventTime, OnTimer or OnWindows).
func (c *Context) Timers() *Timers { return &Timers{c: c} }

// Timers sets and deletes timers. A timer is identified by its kind, time
// and name: setting it twice is setting it once.
type Timers struct{ c *Context }

func (ts *Timers) key(name string, at time.Time, processing bool) (string, error) {
	if ts.c.tm == nil {
		return "", errors.New("transform: timers need event time (transform.EventTime, OnTimer or OnWindows)")
	}
	p := eventTimers
	if processing {
		p = procTimers
	}
	return p + timeHex(at.UnixMilli()) + "/" + name, nil
}

// Set sets an event-time timer: it fires once the watermark reaches at.
func (ts *Timers) Set(name string, at time.Time) error { return ts.put(name, at, false) }

// SetProcessing sets a processing-time timer: it fires at the first batch
// or tick whose processing time is at or after at.
func (ts *Timers) SetProcessing(name string, at time.Time) error { return ts.put(name, at, true) }

func (ts *Timers) put(name string, at time.Time, processing bool) error {
	k, err := ts.key(name, at, processing)
	if err != nil {
		return err
	}
	ts.c.tm.touched = true
	ts.c.tm.procSet = ts.c.tm.procSet || processing
	return ts.c.State().Put(k, nil)
}

// Delete deletes a timer set with Set (processing false) or SetProcessing.
func (ts *Timers) Delete(name string, at time.Time, processing bool) error {
	k, err := ts.key(name, at, processing)
	if err != nil {
		return err
	}
	ts.c.tm.touched = true
	return ts.c.State().Delete(k)
}

// Watermark returns the partition's watermark, false before its first
// record or without event time.
func (c *Context) Watermark() (time.Time, bool) {
	if c.tm == nil || c.tm.watermark == noWatermark {
		return time.Time{}, false
	}
	return time.UnixMilli(c.tm.watermark), true
}

// EventTime returns the current record's event time (OnRecord handlers
// with event time on), else the zero time.
func (c *Context) EventTime() time.Time {
	if c.tm == nil || c.cur < 0 {
		return time.Time{}
	}
	return time.UnixMilli(c.evt)
}

// ProcessingTime returns the host's clock as read once at the start of
// the batch or tick (with event time on; else Now).
func (c *Context) ProcessingTime() time.Time {
	if c.tm == nil {
		return c.Now()
	}
	return time.UnixMilli(c.now)
}

// timeHex encodes ms so that byte order is time order (negative too).
func timeHex(ms int64) string {
	var b [16]byte
	v := uint64(ms) ^ (1 << 63)
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b[:])
}

func parseHex(s string) (int64, bool) {
	if len(s) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, false
	}
	return int64(v ^ (1 << 63)), true
}

// parseTimerKey splits "<16 hex>/<name>".
func parseTimerKey(s string) (int64, string, bool) {
	if len(s) < 17 || s[16] != '/' {
		return 0, "", false
	}
	at, ok := parseHex(s[:16])
	return at, s[17:], ok
}
