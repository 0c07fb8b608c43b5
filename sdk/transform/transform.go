package transform

import (
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/weir-broker/weir/sdk/abi"
)

// Header is one record header.
type Header = abi.Header

// Record is an input or output record.
//
// Key is nil when the record has no key; an empty non-nil Key is an empty key.
// Timestamp is in milliseconds since the Unix epoch; Offset is the input
// record's offset (ignored on emitted records).
type Record struct {
	Offset    int64
	Timestamp int64
	Key       []byte
	Value     []byte
	Headers   []Header
}

// Header returns the value of the first header named k.
func (r *Record) Header(k string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == k {
			return h.Value, true
		}
	}
	return "", false
}

// Batch is one batch of input records from one partition.
type Batch struct {
	Topic     string
	Partition int
	Records   []Record
}

// RecordHandler handles one input record.
type RecordHandler func(r Record, ctx *Context) error

// BatchHandler handles one batch of input records.
type BatchHandler func(b *Batch, ctx *Context) error

// Errors the Context returns.
var (
	ErrNoOutputs     = errors.New("transform: the pipeline has no outputs")
	ErrUnknownOutput = errors.New("transform: unknown output")
	ErrHost          = errors.New("transform: host refused the call")
	ErrNoRecord      = errors.New("transform: no current record")
)

// Handlers is everything a module registers: the batch handler and, for
// event time, the time options and the timer handler. The On* functions
// fill the module's registered Handlers; transformtest runs any Handlers.
type Handlers struct {
	// Batch handles each batch (OnRecord, OnBatch, OnWindows).
	Batch BatchHandler
	// Time turns event time on (EventTime, OnWindows): it is called at
	// the start of every batch and tick and may read the pipeline's config.
	// nil: no event time, no watermark, no timers.
	Time func(ctx *Context) (TimeOptions, error)
	// Timer handles each timer as it fires (OnTimer, OnWindows).
	Timer TimerHandler
}

var registered Handlers

// OnRecord registers the module's handler, called once per input record.
// Call it (or OnBatch, or OnWindows) exactly once, from init. A later call
// replaces the earlier handler.
func OnRecord(h RecordHandler) { registered.Batch = PerRecord(h) }

// OnBatch registers the module's handler, called once per batch.
func OnBatch(h BatchHandler) { registered.Batch = h }

// Registered returns the handler registered with OnRecord, OnBatch or
// OnWindows, or nil.
func Registered() BatchHandler { return registered.Batch }

// RegisteredHandlers returns everything the module registered.
func RegisteredHandlers() Handlers { return registered }

// PerRecord adapts a RecordHandler to a BatchHandler that calls it for each
// record in order, with the Context's current record set. With event time
// on, records behind the watermark never reach h: they go to the late
// output or the dead-letter topic (TimeOptions.LateOutput), and the
// watermark advances after each record.
func PerRecord(h RecordHandler) BatchHandler {
	return func(b *Batch, ctx *Context) error {
		for i := range b.Records {
			ctx.cur = i
			if ctx.tm != nil {
				ok, err := ctx.tm.admit(ctx, i, &b.Records[i])
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
			}
			if err := h(b.Records[i], ctx); err != nil {
				return err
			}
			if ctx.tm != nil {
				ctx.tm.observe(ctx.evt)
			}
		}
		ctx.cur = -1
		return nil
	}
}

// Host is the set of host functions a transform calls. In a Wasm build they
// are the broker's imports; on the host, transformtest provides them.
// Transforms never implement or call it directly.
type Host interface {
	Emit(frames []byte) int32 // abi-encoded emitted records
	DeadLetter(index int, reason string) int32
	StateGet(key string) ([]byte, bool)
	StatePut(key string, value []byte) int32
	StateDelete(key string) int32
	// StateKeys returns one page of the state keys that begin with prefix
	// and are at or after start, in byte order, including the batch's own
	// writes: an empty page ends the listing. A non-zero code is an
	// abi.Err* code.
	StateKeys(prefix, start string) (keys []string, code int32)
	Config(key string) (string, bool)
	Log(level int32, msg string)
	Now() int64 // ns since the Unix epoch
	Random(p []byte)
	Fail(msg string)
}

// Context is a handler's view of the host for one batch. It is valid only
// during the handler call and is not safe for concurrent use.
type Context struct {
	host    Host
	batch   *Batch
	outputs []string
	cur     int
	emitBuf []byte
	cfg     map[string]cfgValue
	state   State
	err     error      // first host failure; fails the batch
	tm      *timeState // event time, when on (time.go)
	evt     int64      // the current record's event time (ms), with event time on
	now     int64      // processing time of the call (ms), read once
}

type cfgValue struct {
	v  string
	ok bool
}

const emitFlushBytes = 256 << 10

// Outputs returns the pipeline's output topic names; index 0 is the first.
func (c *Context) Outputs() []string { return c.outputs }

// Topic returns the input topic of the batch.
func (c *Context) Topic() string { return c.batch.Topic }

// Partition returns the input partition of the batch.
func (c *Context) Partition() int { return c.batch.Partition }

// Index is the index in the batch of the record an OnRecord handler is
// handling, or -1 in an OnBatch handler.
func (c *Context) Index() int { return c.cur }

// Emit sends r to the first output.
func (c *Context) Emit(r Record) error { return c.EmitToIndex(0, r) }

// EmitTo sends r to the output topic named output.
func (c *Context) EmitTo(output string, r Record) error {
	for i, o := range c.outputs {
		if o == output {
			return c.EmitToIndex(i, r)
		}
	}
	return fmt.Errorf("%w %q", ErrUnknownOutput, output)
}

// EmitToIndex sends r to output i (an index into Outputs).
func (c *Context) EmitToIndex(i int, r Record) error {
	if c.err != nil {
		return c.err
	}
	if len(c.outputs) == 0 {
		return ErrNoOutputs
	}
	if i < 0 || i >= len(c.outputs) {
		return fmt.Errorf("%w index %d", ErrUnknownOutput, i)
	}
	c.emitBuf = abi.AppendEmitted(c.emitBuf, uint32(i), (*abi.Record)(&r))
	if len(c.emitBuf) >= emitFlushBytes {
		return c.flush()
	}
	return nil
}

// Forward sends the current input record (in an OnRecord handler) to the
// first output unchanged. It is the cheap way to pass a record on: the host
// copies the original, the guest encodes nothing. Changes made to the
// record's bytes in place are not seen; Emit a modified record instead.
func (c *Context) Forward() error { return c.ForwardAt(c.cur, 0) }

// ForwardTo sends the current input record unchanged to the output topic
// named output.
func (c *Context) ForwardTo(output string) error {
	for i, o := range c.outputs {
		if o == output {
			return c.ForwardAt(c.cur, i)
		}
	}
	return fmt.Errorf("%w %q", ErrUnknownOutput, output)
}

// ForwardAt sends input record i of the batch unchanged to output index out.
func (c *Context) ForwardAt(i, out int) error {
	if c.err != nil {
		return c.err
	}
	if i < 0 || i >= len(c.batch.Records) {
		return ErrNoRecord
	}
	if out < 0 || out >= len(c.outputs) {
		if len(c.outputs) == 0 {
			return ErrNoOutputs
		}
		return fmt.Errorf("%w index %d", ErrUnknownOutput, out)
	}
	c.emitBuf = abi.AppendForward(c.emitBuf, uint32(out), uint32(i))
	if len(c.emitBuf) >= emitFlushBytes {
		return c.flush()
	}
	return nil
}

func (c *Context) flush() error {
	if len(c.emitBuf) == 0 || c.err != nil {
		return c.err
	}
	code := c.host.Emit(c.emitBuf)
	c.emitBuf = c.emitBuf[:0]
	if code != 0 {
		c.err = hostErr("emit", code)
	}
	return c.err
}

func hostErr(fn string, code int32) error {
	switch code {
	case abi.ErrOutputLimit:
		return fmt.Errorf("%w: %s: output limit exceeded", ErrHost, fn)
	case abi.ErrStateLimit:
		return fmt.Errorf("%w: %s: key or value too large", ErrHost, fn)
	}
	return fmt.Errorf("%w: %s: code %d", ErrHost, fn, code)
}

// DeadLetter rejects the current input record (in an OnRecord handler): it
// goes to the pipeline's dead-letter topic with reason, and the batch goes on.
func (c *Context) DeadLetter(reason string) error {
	if c.cur < 0 {
		return ErrNoRecord
	}
	return c.DeadLetterAt(c.cur, reason)
}

// DeadLetterAt rejects input record i of the batch.
func (c *Context) DeadLetterAt(i int, reason string) error {
	if c.err != nil {
		return c.err
	}
	if code := c.host.DeadLetter(i, reason); code != 0 {
		c.err = hostErr("dead_letter", code)
	}
	return c.err
}

// Config returns the pipeline's config value for key, or "".
func (c *Context) Config(key string) string {
	v, _ := c.LookupConfig(key)
	return v
}

// LookupConfig returns the pipeline's config value for key and whether it
// is set. Values are cached for the batch.
func (c *Context) LookupConfig(key string) (string, bool) {
	if cv, ok := c.cfg[key]; ok {
		return cv.v, cv.ok
	}
	v, ok := c.host.Config(key)
	if c.cfg == nil {
		c.cfg = make(map[string]cfgValue)
	}
	c.cfg[key] = cfgValue{v, ok}
	return v, ok
}

// Log writes a log line at info level (fmt.Sprint formatting).
func (c *Context) Log(args ...any) { c.host.Log(abi.LevelInfo, fmt.Sprint(args...)) }

// Logf writes a log line at info level (fmt.Sprintf formatting).
func (c *Context) Logf(format string, args ...any) {
	c.host.Log(abi.LevelInfo, fmt.Sprintf(format, args...))
}

// LogLevel writes a log line at an abi.Level* level.
func (c *Context) LogLevel(level int32, msg string) { c.host.Log(level, msg) }

// Now returns the host's wall clock.
func (c *Context) Now() time.Time { return time.Unix(0, c.host.Now()) }

// Random fills p with random bytes from the host.
func (c *Context) Random(p []byte) { c.host.Random(p) }

// State returns the keyed state of this pipeline and input partition.
func (c *Context) State() *State { return &c.state }

// State is a pipeline's keyed state for one input partition. Writes made
// during a batch are visible to later reads of the same batch, and to later
// batches only if the batch succeeds.
type State struct{ c *Context }

// Get returns a copy of the value stored under key.
func (s *State) Get(key string) ([]byte, bool) { return s.c.host.StateGet(key) }

// Put stores value under key.
func (s *State) Put(key string, value []byte) error {
	if s.c.err != nil {
		return s.c.err
	}
	if code := s.c.host.StatePut(key, value); code != 0 {
		s.c.err = hostErr("state_put", code)
	}
	return s.c.err
}

// Delete removes key.
func (s *State) Delete(key string) error {
	if s.c.err != nil {
		return s.c.err
	}
	if code := s.c.host.StateDelete(key); code != 0 {
		s.c.err = hostErr("state_delete", code)
	}
	return s.c.err
}

// runner holds what is reused across batches.
type runner struct {
	topic   string   // of the previous batch, reused when unchanged
	outputs []string // of the previous batch, reused when unchanged
	r       abi.Reader
	recs    []Record
	headers []abi.Header
	scratch []abi.Header
	ctx     Context
	batch   Batch
}

// Run decodes one abi-encoded batch and runs fn over it against h, with
// the registered time options and timer handler (if any). The returned
// error fails the batch; Run has already reported it to h.Fail.
func Run(h Host, batch []byte, fn BatchHandler) error {
	hs := registered
	hs.Batch = fn
	return RunHandlers(h, batch, hs)
}

// RunHandlers decodes one abi-encoded batch and runs hs over it against h:
// what the Wasm export calls with the registered Handlers, and what
// transformtest calls on the host. The returned error fails the batch; it
// has already been reported to h.Fail.
func RunHandlers(h Host, batch []byte, hs Handlers) error {
	rn := runner{r: *abi.NewSharedReader(nil)}
	return rn.run(h, batch, hs)
}

// Tick runs one tick (abi.ExportTick: a batch of zero records) of hs
// against h: with event time on, the watermark advances on an idle
// partition and due timers fire. pending reports whether timers remain.
// The returned error fails the tick; it has already been reported to
// h.Fail.
func Tick(h Host, msg []byte, hs Handlers) (pending bool, err error) {
	rn := runner{r: *abi.NewSharedReader(nil)}
	return rn.tick(h, msg, hs)
}

// header decodes the batch header, reusing the previous batch's strings
// when they are unchanged (they almost always are) to spare the guest's GC.
func (rn *runner) header() (abi.BatchHeader, error) {
	r := &rn.r
	var h abi.BatchHeader
	h.Version = r.U32()
	if h.Version != abi.Version {
		return h, fmt.Errorf("transform: host speaks abi version %d, sdk %d", h.Version, abi.Version)
	}
	if t := r.Bytes(); string(t) != rn.topic {
		rn.topic = string(t)
	}
	h.Topic = rn.topic
	h.Partition = int32(r.U32())
	n := r.U32()
	if uint64(n)*4 > uint64(r.Len()) {
		return h, fmt.Errorf("transform: bad batch: %w", abi.ErrShort)
	}
	outs := rn.outputs
	same := int(n) == len(outs)
	var fresh []string // never overwrite a slice handed out before
	for i := 0; i < int(n); i++ {
		o := r.Bytes()
		if same && string(o) == outs[i] {
			continue
		}
		if same {
			same = false
			fresh = append(make([]string, 0, n), outs[:i]...)
		}
		fresh = append(fresh, string(o))
	}
	if !same {
		rn.outputs = fresh
	}
	h.Outputs = rn.outputs
	h.Count = r.U32()
	if r.Err() != nil {
		return h, fmt.Errorf("transform: bad batch: %w", r.Err())
	}
	return h, nil
}

func (rn *runner) run(h Host, batch []byte, hs Handlers) (err error) {
	defer rn.recoverFail(h, &err)
	if hs.Batch == nil {
		return errors.New("transform: no handler registered (call transform.OnRecord or OnBatch in init)")
	}
	if err := rn.decode(h, batch); err != nil {
		return err
	}
	c := &rn.ctx
	if hs.Time != nil {
		if c.tm, err = loadTime(c, hs); err != nil {
			return err
		}
	}
	if err := hs.Batch(&rn.batch, c); err != nil {
		return err
	}
	if c.tm != nil {
		if err := c.tm.afterBatch(c, &rn.batch); err != nil {
			return err
		}
	}
	if err := c.flush(); err != nil {
		return err
	}
	return c.err
}

func (rn *runner) tick(h Host, msg []byte, hs Handlers) (pending bool, err error) {
	defer rn.recoverFail(h, &err)
	if err := rn.decode(h, msg); err != nil {
		return false, err
	}
	if len(rn.batch.Records) != 0 {
		return false, fmt.Errorf("transform: a tick carries no records, this one %d", len(rn.batch.Records))
	}
	c := &rn.ctx
	if hs.Time == nil {
		return false, nil
	}
	if c.tm, err = loadTime(c, hs); err != nil {
		return false, err
	}
	if pending, err = c.tm.onTick(c); err != nil {
		return false, err
	}
	if err := c.flush(); err != nil {
		return false, err
	}
	return pending, c.err
}

// recoverFail turns a panic into the call's error and reports any error to
// the host.
func (rn *runner) recoverFail(h Host, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("transform: panic: %v", p)
	}
	if *err != nil {
		h.Fail((*err).Error())
	}
}

// decode reads a batch into rn.batch and resets rn.ctx for it.
func (rn *runner) decode(h Host, batch []byte) error {
	rn.r.Reset(batch)
	hdr, err := rn.header()
	if err != nil {
		return err
	}
	if uint64(hdr.Count)*28 > uint64(rn.r.Len()) {
		return fmt.Errorf("transform: bad batch: %w", abi.ErrShort)
	}
	recs := rn.recs[:0]
	headers := rn.headers[:0]
	ar := abi.Record{Headers: rn.scratch[:0]}
	for i := uint32(0); i < hdr.Count; i++ {
		rn.r.Record(&ar)
		rec := Record(ar)
		rec.Headers = nil
		if n := len(ar.Headers); n > 0 {
			// Records share one header arena; when append reallocates it,
			// earlier records keep the old (still valid) backing array.
			headers = append(headers, ar.Headers...)
			rec.Headers = headers[len(headers)-n : len(headers) : len(headers)]
		}
		recs = append(recs, rec)
	}
	rn.scratch = ar.Headers
	if rn.r.Err() != nil {
		return fmt.Errorf("transform: bad batch: %w", rn.r.Err())
	}
	rn.recs, rn.headers = recs, headers
	rn.batch = Batch{Topic: hdr.Topic, Partition: int(hdr.Partition), Records: recs}
	emitBuf := rn.ctx.emitBuf[:0]
	rn.ctx = Context{host: h, batch: &rn.batch, outputs: hdr.Outputs, cur: -1, emitBuf: emitBuf}
	rn.ctx.state.c = &rn.ctx
	return nil
}

// reservedPrefix starts the state keys the SDK keeps for event time and
// windows (time.go, window.go). Listings of the whole state skip them.
const reservedPrefix = "\x00weir/"

// Keys returns the keys of the state that begin with prefix, in byte
// order, including this batch's writes and without its deletes. Keys the
// SDK reserves (starting with "\x00weir/") are left out unless prefix
// names them. Keys written or deleted during the iteration, after the
// key last returned, may or may not be seen. A host failure ends the
// iteration and fails the batch (the next Put, Emit, … returns it).
//
//	for k := range ctx.State().Keys("user/") { … }
func (s *State) Keys(prefix string) iter.Seq[string] {
	return func(yield func(string) bool) {
		skipReserved := !strings.HasPrefix(prefix, "\x00")
		start := prefix
		for s.c.err == nil {
			keys, code := s.c.host.StateKeys(prefix, start)
			if code != 0 {
				s.c.err = hostErr("state_keys", code)
				return
			}
			if len(keys) == 0 {
				return
			}
			for _, k := range keys {
				if skipReserved && strings.HasPrefix(k, reservedPrefix) {
					continue
				}
				if !yield(k) {
					return
				}
			}
			start = keys[len(keys)-1] + "\x00"
		}
	}
}
