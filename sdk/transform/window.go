package transform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Windows aggregates records per key in event-time windows: tumbling
// (Size), hopping (Size and Slide) or session (Gap). Each window keeps an
// accumulator in state (bytes the module encodes as it likes), and is
// emitted once, by Emit, when the partition's watermark reaches its end.
// A window is [Start, End): a record at End belongs to the next one.
type Windows struct {
	// Size of tumbling and hopping windows. Tumbling windows start at the
	// multiples of Size (since the Unix epoch).
	Size time.Duration
	// Slide makes hopping windows: one of length Size starts at every
	// multiple of Slide, so a record is in Size/Slide of them. 0: tumbling.
	Slide time.Duration
	// Gap makes session windows instead (Size and Slide must be 0): a
	// key's records less than Gap apart share a window, which ends Gap
	// after its last record.
	Gap time.Duration
	// Time configures event time: lateness, idle partitions, late records.
	Time TimeOptions
	// Key returns the key a record is grouped by. An error dead-letters
	// the record with the error's text as the reason.
	Key func(r Record) (string, error)
	// Add folds r into the accumulator of one of its windows (nil for a
	// new window) and returns the new accumulator. An error fails the
	// batch.
	Add func(acc []byte, r Record) ([]byte, error)
	// Merge combines the accumulators of two session windows that a record
	// joins. Required with Gap.
	Merge func(a, b []byte) ([]byte, error)
	// Emit turns a closed window into output, typically
	// ctx.Emit(w.Record(value)). Windows closing together are emitted by
	// end, then start, then key.
	Emit func(w Window, acc []byte, ctx *Context) error
}

// Window is one closed window of one key.
type Window struct {
	Key        string
	Start, End time.Time // millisecond precision
}

// Window headers on the records Window.Record makes: start and end in
// milliseconds since the Unix epoch, in decimal.
const (
	HeaderWindowStart = "weir-window-start"
	HeaderWindowEnd   = "weir-window-end"
)

// Record returns a record for the window's result: key w.Key, timestamp
// the window's last millisecond (End - 1 ms, so the result is inside its
// window), headers HeaderWindowStart and HeaderWindowEnd.
func (w Window) Record(value []byte) Record {
	return Record{
		Key:       []byte(w.Key),
		Value:     value,
		Timestamp: w.End.UnixMilli() - 1,
		Headers: []Header{
			{Key: HeaderWindowStart, Value: strconv.FormatInt(w.Start.UnixMilli(), 10)},
			{Key: HeaderWindowEnd, Value: strconv.FormatInt(w.End.UnixMilli(), 10)},
		},
	}
}

// OnWindows registers windowed aggregation as the module's whole handler.
// setup is called at the start of every batch and tick and may read the
// pipeline's config.
func OnWindows(setup func(ctx *Context) (Windows, error)) { registered = WindowHandlers(setup) }

// WindowHandlers returns the Handlers OnWindows registers (for tests).
func WindowHandlers(setup func(ctx *Context) (Windows, error)) Handlers {
	var cur Windows // set by Time, which runs first in every call
	return Handlers{
		Time: func(ctx *Context) (TimeOptions, error) {
			w, err := setup(ctx)
			if err != nil {
				return TimeOptions{}, err
			}
			if err := w.validate(); err != nil {
				return TimeOptions{}, err
			}
			cur = w
			return w.Time, nil
		},
		Batch: PerRecord(func(r Record, ctx *Context) error { return cur.add(r, ctx) }),
		Timer: func(t Timer, ctx *Context) error { return cur.fire(t, ctx) },
	}
}

func (w *Windows) validate() error {
	switch {
	case w.Key == nil || w.Add == nil || w.Emit == nil:
		return errors.New("transform: windows need Key, Add and Emit")
	case w.Gap < 0 || w.Size < 0 || w.Slide < 0:
		return errors.New("transform: negative window size, slide or gap")
	case w.Gap > 0 && (w.Size != 0 || w.Slide != 0):
		return errors.New("transform: session windows (Gap) take no Size or Slide")
	case w.Gap > 0 && w.Merge == nil:
		return errors.New("transform: session windows need Merge")
	case w.Gap == 0 && w.Size < time.Millisecond:
		return errors.New("transform: windows need a Size (or a Gap) of at least 1 ms")
	case w.Slide > w.Size:
		return errors.New("transform: a window's Slide cannot exceed its Size")
	}
	return nil
}

const (
	windowPrefix  = reservedPrefix + "w/" // + start hex + end hex + key
	sessionPrefix = reservedPrefix + "s/" // + key: the key's open sessions
)

func (w *Windows) add(r Record, ctx *Context) error {
	key, err := w.Key(r)
	if err != nil {
		return ctx.DeadLetter(err.Error())
	}
	if w.Gap > 0 {
		return w.addSession(key, r, ctx)
	}
	ts := ctx.evt
	size := w.Size.Milliseconds()
	slide := w.Slide.Milliseconds()
	if slide == 0 {
		slide = size
	}
	// The windows [s, s+size) with s a multiple of slide and s <= ts < s+size.
	for s := floorDiv(ts, slide) * slide; s > ts-size; s -= slide {
		id := timeHex(s) + timeHex(s+size) + key
		acc, ok := ctx.State().Get(windowPrefix + id)
		if !ok {
			if err := ctx.Timers().Set("w"+id, time.UnixMilli(s+size)); err != nil {
				return err
			}
		}
		if acc, err = w.Add(acc, r); err != nil {
			return err
		}
		if err := ctx.State().Put(windowPrefix+id, acc); err != nil {
			return err
		}
	}
	return nil
}

func (w *Windows) fire(t Timer, ctx *Context) error {
	if len(t.Name) == 0 {
		return fmt.Errorf("transform: unknown window timer %q", t.Name)
	}
	switch t.Name[0] {
	case 'w':
		id := t.Name[1:]
		if len(id) < 32 {
			return fmt.Errorf("transform: bad window timer %q", t.Name)
		}
		start, ok1 := parseHex(id[:16])
		end, ok2 := parseHex(id[16:32])
		if !ok1 || !ok2 {
			return fmt.Errorf("transform: bad window timer %q", t.Name)
		}
		acc, _ := ctx.State().Get(windowPrefix + id)
		if err := ctx.State().Delete(windowPrefix + id); err != nil {
			return err
		}
		return w.Emit(Window{Key: id[32:], Start: time.UnixMilli(start), End: time.UnixMilli(end)}, acc, ctx)
	case 's':
		return w.closeSession(t.Name[1:], t.At.UnixMilli(), ctx)
	}
	return fmt.Errorf("transform: unknown window timer %q", t.Name)
}

// session is one open session window of a key.
type session struct {
	start, end int64
	acc        []byte
}

func (w *Windows) addSession(key string, r Record, ctx *Context) error {
	ts, gap := ctx.evt, w.Gap.Milliseconds()
	all, err := loadSessions(ctx, key)
	if err != nil {
		return err
	}
	cur := session{start: ts, end: ts + gap}
	merged := false
	keep := all[:0]
	for _, s := range all {
		if !(ts < s.end && s.start < ts+gap) {
			keep = append(keep, s)
			continue
		}
		if err := ctx.Timers().Delete("s"+key, time.UnixMilli(s.end), false); err != nil {
			return err
		}
		cur.start, cur.end = min(cur.start, s.start), max(cur.end, s.end)
		if !merged {
			cur.acc, merged = s.acc, true
		} else if cur.acc, err = w.Merge(cur.acc, s.acc); err != nil {
			return err
		}
	}
	if cur.acc, err = w.Add(cur.acc, r); err != nil {
		return err
	}
	if err := ctx.Timers().Set("s"+key, time.UnixMilli(cur.end)); err != nil {
		return err
	}
	keep = append(keep, cur)
	sort.Slice(keep, func(i, j int) bool { return keep[i].start < keep[j].start })
	return saveSessions(ctx, key, keep)
}

// closeSession emits the key's session that ends at end (its timer's
// time: each session has its own timer, so sessions close in end order).
func (w *Windows) closeSession(key string, end int64, ctx *Context) error {
	all, err := loadSessions(ctx, key)
	if err != nil {
		return err
	}
	var open []session
	for _, s := range all {
		if s.end != end {
			open = append(open, s)
			continue
		}
		if err := w.Emit(Window{Key: key, Start: time.UnixMilli(s.start), End: time.UnixMilli(s.end)}, s.acc, ctx); err != nil {
			return err
		}
	}
	return saveSessions(ctx, key, open)
}

// Sessions are kept per key as: u32 count, then (i64 start, i64 end, u32
// len, acc) each, by start.
func loadSessions(ctx *Context, key string) ([]session, error) {
	v, ok := ctx.State().Get(sessionPrefix + key)
	if !ok {
		return nil, nil
	}
	bad := fmt.Errorf("transform: session state of key %q does not decode", key)
	if len(v) < 4 {
		return nil, bad
	}
	n := binary.LittleEndian.Uint32(v)
	v = v[4:]
	out := make([]session, 0, min(n, 64))
	for range n {
		if len(v) < 20 {
			return nil, bad
		}
		s := session{start: int64(binary.LittleEndian.Uint64(v)), end: int64(binary.LittleEndian.Uint64(v[8:]))}
		l := binary.LittleEndian.Uint32(v[16:])
		if uint64(len(v)-20) < uint64(l) {
			return nil, bad
		}
		s.acc = v[20 : 20+l]
		v = v[20+l:]
		out = append(out, s)
	}
	return out, nil
}

func saveSessions(ctx *Context, key string, all []session) error {
	if len(all) == 0 {
		return ctx.State().Delete(sessionPrefix + key)
	}
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(all)))
	for _, s := range all {
		b = binary.LittleEndian.AppendUint64(b, uint64(s.start))
		b = binary.LittleEndian.AppendUint64(b, uint64(s.end))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s.acc)))
		b = append(b, s.acc...)
	}
	return ctx.State().Put(sessionPrefix+key, b)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
