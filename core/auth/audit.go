package auth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/weir-broker/weir/core"
)

// AuditTopic is the internal topic holding the audit log.
const AuditTopic = "__audit"

// AuditConfig configures the audit log.
type AuditConfig struct {
	RetentionMs int64 // of the __audit topic when this node creates it; default 90 days
	Queue       int   // events buffered before the oldest are dropped (and counted); default 8192
}

// Event is one audit record, stored as JSON in the value of a record of
// __audit (its key is the principal).
type Event struct {
	Time      int64  `json:"time"` // ms since the epoch
	Principal string `json:"principal"`
	Via       string `json:"via,omitempty"` // token, jwt, mtls, bootstrap, node
	Action    string `json:"action"`        // "POST /v1/topics", "ws produce", "pipeline read"...
	Resource  string `json:"resource"`      // "topic:orders", "cluster:cluster"
	Operation string `json:"operation,omitempty"`
	Result    string `json:"result"` // ok, error, denied, unauthenticated
	Status    int    `json:"status,omitempty"`
	Source    string `json:"source,omitempty"` // the client's address
	Reason    string `json:"reason,omitempty"`
}

type auditor struct {
	store   core.Store
	cfg     AuditConfig
	log     *slog.Logger
	ch      chan Event
	dropped atomic.Int64
}

func newAuditor(store core.Store, cfg AuditConfig, log *slog.Logger) *auditor {
	if cfg.RetentionMs == 0 {
		cfg.RetentionMs = 90 * 24 * 3600 * 1000
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 8192
	}
	return &auditor{store: store, cfg: cfg, log: log, ch: make(chan Event, cfg.Queue)}
}

// add queues an event; a full queue (a flood of denied requests) drops it
// and counts the loss, so auditing never blocks or grows memory.
func (a *auditor) add(e Event) {
	if e.Time == 0 {
		e.Time = time.Now().UnixMilli()
	}
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
	for {
		select {
		case <-ctx.Done():
			return
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
