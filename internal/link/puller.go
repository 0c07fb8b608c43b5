package link

import (
	"context"
	"errors"
	"log/slog"
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

// run copies the source partition into the mirror partition until ctx
// ends or this node no longer leads it (or no longer should copy into it).
func (p *puller) run(ctx context.Context) {
	cfg := &p.r.cfg
	lg := cfg.Logger.With("link", p.key.link, "topic", p.key.topic, "partition", p.key.partition)
	b := &pullBackoff{base: cfg.Backoff, cur: cfg.Backoff, lg: lg}
	st := p.r.broker.Store()
	for ctx.Err() == nil {
		log, err := st.Partition(p.key.topic, p.key.partition)
		if err != nil {
			if !b.fail(ctx, "mirror partition", err) {
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
		if !p.pull(ctx, log, ml, b) {
			return
		}
	}
}

// pullBackoff is a puller's delay between failed attempts: doubled by
// each failure up to 30 times base, back to base after progress.
type pullBackoff struct {
	base, cur time.Duration
	lg        *slog.Logger
}

// fail logs a failed attempt (what) and waits out the delay. It reports
// false when ctx ended: the puller stops.
func (b *pullBackoff) fail(ctx context.Context, what string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	b.lg.Warn("link: "+what, "err", err, "retry_in", b.cur)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(b.cur):
	}
	b.cur = min(2*b.cur, 30*b.base)
	return true
}

// pull fetches one page from the source at the mirror's next offset and
// appends it (or moves the mirror's start to the source's). It reports
// false when the puller stops.
func (p *puller) pull(ctx context.Context, log core.PartitionLog, ml core.MirrorLog, b *pullBackoff) bool {
	cfg := &p.r.cfg
	next := log.HighWatermark()
	page, err := p.src.fetch(ctx, p.sourceTopic, p.key.partition, next, cfg.MaxRecords, cfg.MaxBytes, cfg.FetchWait)
	var re *core.OffsetRangeError
	switch {
	case errors.As(err, &re) && next < re.LogStart:
		// The source's log starts above the mirror's next offset:
		// the mirror starts there too, empty, so offsets stay A's.
		return startAt(ctx, ml, re.LogStart, b)
	case err != nil:
		return b.fail(ctx, "fetch from source", err)
	}
	if len(page.records) == 0 {
		if next < page.logStart { // an empty page below the log start
			return startAt(ctx, ml, page.logStart, b)
		}
		p.setLag(page.highWatermark, next, 0)
		b.cur = b.base
		return true
	}
	if first := page.records[0].Offset; first != next {
		// The source skipped offsets (its log starts later, or a
		// control batch): the mirror follows only from an empty start.
		if first > next && log.HighWatermark() == log.LogStart() {
			return startAt(ctx, ml, first, b)
		}
		return b.fail(ctx, "fetch from source", errors.New("source records do not start at the mirror's next offset"))
	}
	if !p.stillMirror() {
		return false // promoted or detached: the link writes no more
	}
	oldest := page.records[0].Timestamp
	p.setLag(page.highWatermark, next, oldest)
	if err := p.append(ctx, ml, next, page.records); err != nil {
		var be *core.BaseOffsetError
		if errors.As(err, &be) {
			return true // another leader, or a retry, appended first: read the next offset again
		}
		return b.fail(ctx, "mirror append", err)
	}
	b.cur = b.base
	next += int64(len(page.records))
	p.setLag(page.highWatermark, next, 0)
	return true
}

// startAt moves the empty mirror's start to off. It reports false when
// that failed and ctx ended.
func startAt(ctx context.Context, ml core.MirrorLog, off int64, b *pullBackoff) bool {
	if err := ml.StartAt(ctx, off); err != nil && !b.fail(ctx, "mirror start", err) {
		return false
	}
	return true
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
