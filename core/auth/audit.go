package auth

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/weir-broker/weir/core"
)

// AuditTopic is the internal topic holding the audit log.
const AuditTopic = "__audit"

// AuditConfig configures the audit log.
type AuditConfig struct {
	RetentionMs int64 // of the __audit topic when this node creates it; default 90 days
	Queue       int   // events buffered before the oldest are dropped (and counted); default 8192

	// PerSource bounds the denied, unauthenticated and throttled (over a
	// quota, core/quota) events recorded per source (the client's IP
	// address, else the principal) and Window;
	// further ones are counted and recorded as one "suppressed" event when
	// the window ends (at the next event or the writer's next sweep).
	// Default 20; admin actions (ok, error) are never suppressed.
	PerSource int
	// Window is the period of PerSource; default 1 minute.
	Window time.Duration
	// MaxSources bounds the sources tracked at once; past it the one whose
	// window began first is forgotten (its suppressed count recorded
	// first). Default 4096.
	MaxSources int
	// Now is the clock of event times and windows; default time.Now.
	Now func() time.Time
}

// MaxAuditField bounds each text field of an audit record, in bytes; a
// longer one is cut (at a UTF-8 boundary) and ends with "…".
const MaxAuditField = 256

// Event is one audit record, stored as JSON in the value of a record of
// __audit (its key is the principal).
type Event struct {
	Time      int64  `json:"time"` // ms since the epoch
	Principal string `json:"principal"`
	Via       string `json:"via,omitempty"` // token, jwt, mtls, bootstrap, node
	Action    string `json:"action"`        // "POST /v1/topics", "ws produce", "pipeline read"...
	Resource  string `json:"resource"`      // "topic:orders", "cluster:cluster"
	Operation string `json:"operation,omitempty"`
	Result    string `json:"result"` // ok, error, denied, unauthenticated, throttled
	Status    int    `json:"status,omitempty"`
	Source    string `json:"source,omitempty"` // the client's address
	Reason    string `json:"reason,omitempty"`
	// Count is, on a "suppressed" event, how many denied, unauthenticated
	// or throttled events from Source were not recorded one by one.
	Count int `json:"count,omitempty"`
}

type auditor struct {
	store   core.Store
	cfg     AuditConfig
	log     *slog.Logger
	ch      chan Event
	dropped atomic.Int64

	mu      sync.Mutex               // guards sources and order
	sources map[string]*list.Element // of *auditSource
	order   *list.List               // by window start, oldest first
}

// auditSource counts one source's denials in its current window.
type auditSource struct {
	key        string
	start      time.Time
	recorded   int
	suppressed int
	first      time.Time // of the first suppressed event
}

func newAuditor(store core.Store, cfg AuditConfig, log *slog.Logger) *auditor {
	if cfg.RetentionMs == 0 {
		cfg.RetentionMs = 90 * 24 * 3600 * 1000
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 8192
	}
	if cfg.PerSource <= 0 {
		cfg.PerSource = 20
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = 4096
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &auditor{store: store, cfg: cfg, log: log, ch: make(chan Event, cfg.Queue),
		sources: map[string]*list.Element{}, order: list.New()}
}

// add bounds the event's fields, applies the per-source cap to denials,
// and queues what is left; it never blocks.
func (a *auditor) add(e Event) {
	now := a.cfg.Now()
	if e.Time == 0 {
		e.Time = now.UnixMilli()
	}
	e.Principal, e.Via, e.Action = clip(e.Principal), clip(e.Via), clip(e.Action)
	e.Resource, e.Operation, e.Result = clip(e.Resource), clip(e.Operation), clip(e.Result)
	e.Source, e.Reason = clip(e.Source), clip(e.Reason)
	var out []Event
	a.mu.Lock()
	out = a.sweep(now, out)
	keep := true
	if e.Result == "denied" || e.Result == "unauthenticated" || e.Result == "throttled" {
		keep, out = a.count(sourceKey(e), now, out)
	}
	a.mu.Unlock()
	for _, s := range out {
		a.enqueue(s)
	}
	if keep {
		a.enqueue(e)
	}
}

// sourceKey names who an event is charged to: the client's IP address
// (without the port, which a client changes at will), else the principal.
func sourceKey(e Event) string {
	if e.Source != "" {
		if h, _, err := net.SplitHostPort(e.Source); err == nil {
			return h
		}
		return e.Source
	}
	return "principal:" + e.Principal
}

// count charges one denial to key; it reports whether to record it, with
// a summary of an evicted source appended to out. a.mu is held.
func (a *auditor) count(key string, now time.Time, out []Event) (bool, []Event) {
	el, ok := a.sources[key]
	if !ok {
		for a.order.Len() >= a.cfg.MaxSources {
			out = a.forget(a.order.Front(), now, out)
		}
		el = a.order.PushBack(&auditSource{key: key, start: now})
		a.sources[key] = el
	}
	src := el.Value.(*auditSource)
	if src.recorded < a.cfg.PerSource {
		src.recorded++
		return true, out
	}
	if src.suppressed == 0 {
		src.first = now
	}
	src.suppressed++
	return false, out
}

// sweep forgets the sources whose window ended, appending their summaries
// to out. a.mu is held.
func (a *auditor) sweep(now time.Time, out []Event) []Event {
	for el := a.order.Front(); el != nil && !now.Before(el.Value.(*auditSource).start.Add(a.cfg.Window)); el = a.order.Front() {
		out = a.forget(el, now, out)
	}
	return out
}

func (a *auditor) forget(el *list.Element, now time.Time, out []Event) []Event {
	src := a.order.Remove(el).(*auditSource)
	delete(a.sources, src.key)
	if src.suppressed == 0 {
		return out
	}
	return append(out, Event{Time: now.UnixMilli(), Action: "audit", Result: "suppressed", Count: src.suppressed,
		Source: clip(src.key), Reason: fmt.Sprintf("%d further denied, unauthenticated or throttled events from this source since %s were counted, not recorded",
			src.suppressed, src.first.UTC().Format(time.RFC3339))})
}

// flush records the summaries of the windows that have ended.
func (a *auditor) flush() {
	a.mu.Lock()
	out := a.sweep(a.cfg.Now(), nil)
	a.mu.Unlock()
	for _, e := range out {
		a.enqueue(e)
	}
}

// clip bounds s to MaxAuditField bytes.
func clip(s string) string {
	if len(s) <= MaxAuditField {
		return s
	}
	const ell = "…"
	n := MaxAuditField - len(ell)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ell
}

// enqueue queues an event; a full queue (a flood) drops it and counts the
// loss, so auditing never blocks or grows memory.
func (a *auditor) enqueue(e Event) {
	select {
	case a.ch <- e:
	default:
		if a.dropped.Add(1)%1000 == 1 {
			a.log.Warn("audit log queue full: events dropped", "dropped", a.dropped.Load())
		}
	}
}

// run appends queued events to __audit in batches until ctx ends.
func (a *auditor) run(ctx context.Context) {
	var batch []core.Record
	sweep := time.NewTicker(a.cfg.Window)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			a.flush()
			continue
		case e := <-a.ch:
			batch = []core.Record{encodeEvent(e)} // Append may keep the slice
		}
	drain:
		for len(batch) < 512 {
			select {
			case e := <-a.ch:
				batch = append(batch, encodeEvent(e))
			default:
				break drain
			}
		}
		for attempt := 0; ; attempt++ {
			err := a.append(ctx, batch)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			if attempt >= 20 {
				a.log.Error("audit log: events lost", "events", len(batch), "err", err)
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

func encodeEvent(e Event) core.Record {
	v, _ := json.Marshal(e)
	return core.Record{Key: []byte(e.Principal), Value: v, Timestamp: e.Time}
}

func (a *auditor) append(ctx context.Context, recs []core.Record) error {
	if _, err := a.store.Topic(AuditTopic); err != nil {
		rf := min(3, max(1, a.store.NodeCount()))
		_, err := a.store.CreateTopic(ctx, core.TopicConfig{Name: AuditTopic, Partitions: 1, ReplicationFactor: rf,
			RetentionMs: a.cfg.RetentionMs, RetentionBytes: -1})
		if err != nil && !errors.Is(err, core.ErrTopicExists) {
			return err
		}
	}
	log, err := a.store.Partition(AuditTopic, 0)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = log.Append(actx, &core.AppendBatch{Timestamp: time.Now().UnixMilli(), Records: recs})
	return err
}
