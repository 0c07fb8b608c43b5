package link

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/weir-broker/weir/core"
)

// puller copies one source partition into its mirror partition while this
// node leads the mirror partition.
type puller struct {
	r           *Runner
	key         partKey
	sourceTopic string
	src         *source
	cancel      context.CancelFunc
	done        chan struct{}

	mu  sync.Mutex // guards cur
	cur core.MirrorLag
}

func (p *puller) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *puller) lag() core.MirrorLag {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

func (p *puller) setLag(srcHWM, next int64, oldestTs int64) {
	lg := core.MirrorLag{Topic: p.key.topic, SourceTopic: p.sourceTopic, Partition: p.key.partition,
		SourceHighWatermark: srcHWM, HighWatermark: next, Records: max(0, srcHWM-next)}
	if lg.Records > 0 && oldestTs > 0 {
		lg.Seconds = max(0, float64(time.Now().UnixMilli()-oldestTs)/1000)
	}
	p.mu.Lock()
	p.cur = lg
	p.mu.Unlock()
}

func (p *puller) run(ctx context.Context) {
	cfg := &p.r.cfg
	lg := cfg.Logger.With("link", p.key.link, "topic", p.key.topic, "partition", p.key.partition)
	backoff := cfg.Backoff
	fail := func(what string, err error) bool {
		if ctx.Err() != nil {
			return false
		}
		lg.Warn("link: "+what, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*cfg.Backoff)
		return true
	}
	st := p.r.broker.Store()
	for ctx.Err() == nil {
		log, err := st.Partition(p.key.topic, p.key.partition)
		if err != nil {
			if !fail("mirror partition", err) {
				return
			}
			continue
		}
		ml, ok := log.(core.MirrorLog)
		if !ok {
			lg.Error("link: the store cannot take mirror appends")
			return
		}
		if !log.IsLeader() {
			return // reconcile starts a puller on the new leader
		}
		next := log.HighWatermark()
		page, err := p.src.fetch(ctx, p.sourceTopic, p.key.partition, next, cfg.MaxRecords, cfg.MaxBytes, cfg.FetchWait)
		var re *core.OffsetRangeError
		switch {
		case errors.As(err, &re) && next < re.LogStart:
			// The source's log starts above the mirror's next offset:
			// the mirror starts there too, empty, so offsets stay A's.
			if err := ml.StartAt(ctx, re.LogStart); err != nil && !fail("mirror start", err) {
				return
			}
			continue
		case err != nil:
			if !fail("fetch from source", err) {
				return
			}
			continue
		}
		if len(page.records) == 0 {
			if next < page.logStart { // an empty page below the log start
				if err := ml.StartAt(ctx, page.logStart); err != nil && !fail("mirror start", err) {
					return
				}
				continue
			}
			p.setLag(page.highWatermark, next, 0)
			backoff = cfg.Backoff
			continue
		}
		if first := page.records[0].Offset; first != next {
			// The source skipped offsets (its log starts later, or a
			// control batch): the mirror follows only from an empty start.
			if first > next && log.HighWatermark() == log.LogStart() {
				if err := ml.StartAt(ctx, first); err != nil && !fail("mirror start", err) {
					return
				}
				continue
			}
			if !fail("fetch from source", errors.New("source records do not start at the mirror's next offset")) {
				return
			}
			continue
		}
		if !p.stillMirror() {
			return // promoted or detached: the link writes no more
		}
		oldest := page.records[0].Timestamp
		p.setLag(page.highWatermark, next, oldest)
		if err := p.append(ctx, ml, next, page.records); err != nil {
			var be *core.BaseOffsetError
			if errors.As(err, &be) {
				continue // another leader, or a retry, appended first: read the next offset again
			}
			if !fail("mirror append", err) {
				return
			}
			continue
		}
		backoff = cfg.Backoff
		next += int64(len(page.records))
		p.setLag(page.highWatermark, next, 0)
	}
}

// stillMirror reports whether this node's copy of the metadata still has
// the topic as an unpromoted mirror of the puller's link.
func (p *puller) stillMirror() bool {
	st := p.r.broker.Store()
	t, err := st.Topic(p.key.topic)
	if err != nil {
		return false
	}
	m, ok := core.MirrorOf(st, t)
	return ok && !m.Promoted && m.Link == p.key.link
}

// append writes the fetched records at base as one conditional append;
// the source's offsets must be consecutive from base.
func (p *puller) append(ctx context.Context, ml core.MirrorLog, base int64, recs []core.Record) error {
	var maxTs int64
	for i := range recs {
		if recs[i].Offset != base+int64(i) {
			return errors.New("source records are not consecutive")
		}
		maxTs = max(maxTs, recs[i].Timestamp)
	}
	_, err := ml.AppendAt(ctx, base, &core.AppendBatch{Timestamp: maxTs, Records: recs})
	return err
}
