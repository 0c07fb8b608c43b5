// Package transformtest runs transform handlers on the host, without Wasm,
// against in-memory state and config, with the broker's batch semantics:
// state written by a failed batch is discarded.
//
//	h := transformtest.New(transformtest.Options{
//		Config:  map[string]string{"field": "kind"},
//		Outputs: []string{"out"},
//	})
//	res, err := h.Records(handle, transformtest.KV("k1", `{"kind":"a"}`))
//	// res.Emitted, res.Dead, res.Logs, h.State()
//
// Time: the harness's clock is the processing time the module sees
// (Context.Now, ProcessingTime). SetTime and Advance move it; Tick runs
// what the broker runs on an idle partition (watermark advance by
// processing time, timers due), so tests drive windows and timers without
// sleeping:
//
//	h.SetTime(time.UnixMilli(0))
//	res, _ := h.Registered(rec)      // opens a window
//	h.Advance(30 * time.Second)
//	res, _ = h.Tick()                // the idle partition's window closes
//
// A Harness is not safe for concurrent use.
package transformtest

import (
	"crypto/rand"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/weir-broker/weir/sdk/abi"
	"github.com/weir-broker/weir/sdk/transform"
)

// Options configure a Harness. The zero value has one output named "out",
// input topic "in", partition 0 and no config.
type Options struct {
	Topic     string            // default "in"
	Partition int               // default 0
	Outputs   []string          // default ["out"]
	Config    map[string]string // the pipeline's config
	State     map[string][]byte // initial state (copied)
	Clock     func() time.Time  // default time.Now; SetTime and Advance replace it
}

// Harness runs batches against one partition's state.
type Harness struct {
	opts  Options
	state map[string][]byte
	next  int64      // next offset assigned to records without one
	now   *time.Time // set by SetTime and Advance: the clock from then on
}

// SetTime sets the processing time the module sees from now on.
func (h *Harness) SetTime(t time.Time) { h.now = &t }

// Advance moves the processing time forward by d (from the clock's current
// reading, the first time).
func (h *Harness) Advance(d time.Duration) {
	t := h.clock().Add(d)
	h.now = &t
}

func (h *Harness) clock() time.Time {
	if h.now != nil {
		return *h.now
	}
	return h.opts.Clock()
}

// New returns a Harness.
func New(opts Options) *Harness {
	if opts.Topic == "" {
		opts.Topic = "in"
	}
	if opts.Outputs == nil {
		opts.Outputs = []string{"out"}
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	st := make(map[string][]byte, len(opts.State))
	for k, v := range opts.State {
		st[k] = append([]byte(nil), v...)
	}
	return &Harness{opts: opts, state: st}
}

// Record is transform.Record, for brevity in tests.
type Record = transform.Record

// KV returns a record with a string key and value. An empty key is nil.
func KV(key, value string) transform.Record {
	r := transform.Record{Value: []byte(value)}
	if key != "" {
		r.Key = []byte(key)
	}
	return r
}

// Emitted is one emitted record with its output's name and index.
type Emitted struct {
	Output      string
	OutputIndex int
	Record      transform.Record
}

// Dead is one dead-lettered input record.
type Dead struct {
	Index  int
	Reason string
}

// Change is one state write.
type Change struct {
	Key    string
	Value  []byte
	Delete bool
}

// Log is one log line.
type Log struct {
	Level int32
	Msg   string
}

// Result is what one batch produced.
type Result struct {
	Emitted []Emitted
	Dead    []Dead
	Changes []Change // in the order made
	Logs    []Log
	// Pending is what a tick reports: timers remain, so the broker ticks
	// again at the interval.
	Pending bool
}

// Values returns the emitted values as strings, in order.
func (r *Result) Values() []string {
	out := make([]string, len(r.Emitted))
	for i, e := range r.Emitted {
		out[i] = string(e.Record.Value)
	}
	return out
}

// Records runs fn once per record as one batch.
func (h *Harness) Records(fn transform.RecordHandler, recs ...transform.Record) (*Result, error) {
	return h.Batch(transform.PerRecord(fn), recs...)
}

// Registered runs what the package's init registered (transform.OnRecord,
// OnBatch, OnWindows, EventTime, OnTimer) as one batch.
func (h *Harness) Registered(recs ...transform.Record) (*Result, error) {
	return h.Run(transform.RegisteredHandlers(), recs...)
}

// Batch runs fn over recs as one batch (with the registered time options
// and timer handler, if any). Records with a zero Offset get consecutive
// offsets. On error the batch's state writes are discarded and the partial
// Result is returned with the error.
func (h *Harness) Batch(fn transform.BatchHandler, recs ...transform.Record) (*Result, error) {
	hs := transform.RegisteredHandlers()
	hs.Batch = fn
	return h.Run(hs, recs...)
}

// Tick runs what the package's init registered as the broker does on an
// idle partition: at the current processing time, the watermark advances
// if the partition has been idle long enough, and due timers fire.
// Result.Pending reports whether timers remain.
func (h *Harness) Tick() (*Result, error) { return h.TickHandlers(transform.RegisteredHandlers()) }

// TickHandlers runs a tick of hs.
func (h *Harness) TickHandlers(hs transform.Handlers) (*Result, error) {
	b := abi.AppendBatchHeader(nil, h.opts.Topic, int32(h.opts.Partition), h.opts.Outputs, 0)
	th := &host{h: h, overlay: map[string]*[]byte{}}
	pending, err := transform.Tick(th, b, hs)
	th.res.Pending = pending
	return h.commit(th, err)
}

// Run runs hs over recs as one batch; see Batch.
func (h *Harness) Run(hs transform.Handlers, recs ...transform.Record) (*Result, error) {
	b := abi.AppendBatchHeader(nil, h.opts.Topic, int32(h.opts.Partition), h.opts.Outputs, len(recs))
	for _, r := range recs {
		off := r.Offset
		if off == 0 {
			off = h.next
		}
		h.next = off + 1
		b = abi.AppendRecord(b, off, r.Timestamp, r.Key, r.Value, r.Headers)
	}
	th := &host{h: h, in: recs, overlay: map[string]*[]byte{}}
	return h.commit(th, transform.RunHandlers(th, b, hs))
}

// commit applies a successful call's state writes.
func (h *Harness) commit(th *host, err error) (*Result, error) {
	if err == nil && th.err != nil {
		err = th.err
	}
	if err != nil {
		return &th.res, err
	}
	for _, c := range th.res.Changes {
		if c.Delete {
			delete(h.state, c.Key)
		} else {
			h.state[c.Key] = c.Value
		}
	}
	return &th.res, nil
}

// State returns a copy of the committed state.
func (h *Harness) State() map[string][]byte {
	out := make(map[string][]byte, len(h.state))
	for k, v := range h.state {
		out[k] = append([]byte(nil), v...)
	}
	return out
}

// StateKeys returns the committed state's keys, sorted.
func (h *Harness) StateKeys() []string {
	keys := make([]string, 0, len(h.state))
	for k := range h.state {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type host struct {
	h       *Harness
	in      []transform.Record
	overlay map[string]*[]byte // nil pointer value: deleted
	res     Result
	err     error
}

func (t *host) fail(err error) int32 {
	if t.err == nil {
		t.err = err
	}
	return abi.ErrMalformed
}

func (t *host) Emit(frames []byte) int32 {
	r := abi.NewReader(frames)
	for r.Len() > 0 {
		var rec abi.Record
		out := r.U32()
		if out&abi.Forward != 0 {
			out &^= abi.Forward
			i := r.U32()
			if r.Err() != nil || int(i) >= len(t.in) {
				return t.fail(fmt.Errorf("transformtest: malformed forward"))
			}
			in := t.in[i]
			rec = abi.Record{Timestamp: in.Timestamp, Key: in.Key, Value: in.Value, Headers: in.Headers}
		} else {
			r.Record(&rec)
		}
		if r.Err() != nil {
			return t.fail(fmt.Errorf("transformtest: malformed emit: %w", r.Err()))
		}
		if int(out) >= len(t.h.opts.Outputs) {
			t.fail(fmt.Errorf("transformtest: output index %d out of range", out))
			return abi.ErrBadOutput
		}
		tr := transform.Record(rec)
		tr.Key = clone(tr.Key)
		tr.Value = clone(tr.Value)
		if len(tr.Headers) == 0 {
			tr.Headers = nil
		}
		t.res.Emitted = append(t.res.Emitted, Emitted{Output: t.h.opts.Outputs[out], OutputIndex: int(out), Record: tr})
	}
	return 0
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func (t *host) DeadLetter(i int, reason string) int32 {
	if i < 0 || i >= len(t.in) {
		t.fail(fmt.Errorf("transformtest: dead_letter index %d out of range", i))
		return abi.ErrBadIndex
	}
	t.res.Dead = append(t.res.Dead, Dead{Index: i, Reason: reason})
	return 0
}

func (t *host) StateGet(key string) ([]byte, bool) {
	if v, ok := t.overlay[key]; ok {
		if v == nil {
			return nil, false
		}
		return clone(*v), true
	}
	v, ok := t.h.state[key]
	return clone(v), ok
}

func (t *host) StatePut(key string, v []byte) int32 {
	v = clone(v)
	if v == nil {
		v = []byte{}
	}
	t.overlay[key] = &v
	t.res.Changes = append(t.res.Changes, Change{Key: key, Value: v})
	return 0
}

func (t *host) StateDelete(key string) int32 {
	t.overlay[key] = nil
	t.res.Changes = append(t.res.Changes, Change{Key: key, Delete: true})
	return 0
}

func (t *host) Config(key string) (string, bool) {
	v, ok := t.h.opts.Config[key]
	return v, ok
}

func (t *host) Log(level int32, msg string) {
	t.res.Logs = append(t.res.Logs, Log{Level: level, Msg: msg})
}

func (t *host) Now() int64 { return t.h.clock().UnixNano() }

// keysPage is how many keys StateKeys returns at once: small, so that
// tests exercise the SDK's paging.
const keysPage = 16

func (t *host) StateKeys(prefix, start string) ([]string, int32) {
	var keys []string
	in := func(k string) bool { return strings.HasPrefix(k, prefix) && k >= start }
	for k := range t.h.state {
		if _, over := t.overlay[k]; !over && in(k) {
			keys = append(keys, k)
		}
	}
	for k, v := range t.overlay {
		if v != nil && in(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) > keysPage {
		keys = keys[:keysPage]
	}
	return keys, 0
}

func (t *host) Random(p []byte) { _, _ = rand.Read(p) }

func (t *host) Fail(msg string) {}
