package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/sdk/client"
)

// Config tunes a Runner. Zero values take the defaults named.
type Config struct {
	// Interval is how often links are reconciled with the source's topics
	// and the local leaders (default 1 s); a metadata change also wakes it.
	Interval time.Duration
	// FetchWait is how long a puller long-polls the source (default 1 s).
	FetchWait time.Duration
	// MaxRecords and MaxBytes bound one fetch from the source (defaults
	// 5,000 records and 4 MiB); one fetch becomes one mirror append.
	MaxRecords int
	MaxBytes   int
	// Backoff is the first wait after a failure, doubled up to 30× (default 200 ms).
	Backoff time.Duration
	// HTTPClient calls the sources (default: a client with the system's
	// TLS roots and a 2-minute timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.FetchWait <= 0 {
		c.FetchWait = time.Second
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = 5000
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 4 << 20
	}
	if c.Backoff <= 0 {
		c.Backoff = 200 * time.Millisecond
	}
	if c.HTTPClient == nil {
		// Its own transport: Run closes its idle connections when it ends.
		c.HTTPClient = &http.Client{Timeout: 2 * time.Minute, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Runner runs the links of one node (package doc). Safe for concurrent
// use; Lags and LinkLag may be called while it runs.
type Runner struct {
	broker *core.Broker
	links  *core.Links
	cfg    Config

	mu      sync.Mutex // guards the fields below
	sources map[string]*sourceRef
	pullers map[partKey]*puller
	groups  map[string]context.CancelFunc // link → its group sync loop
	stop    context.CancelFunc            // ends Run (Close)
	done    chan struct{}                 // closed when Run returned
	wg      sync.WaitGroup                // pullers and group syncs
}

type sourceRef struct {
	created int64 // the link's CreatedAt: a re-created link gets a new source
	src     *source
}

type partKey struct {
	link, topic string
	partition   int
}

var _ core.LinkObserver = (*Runner)(nil)

// New returns an inert runner.
func New(b *core.Broker, links *core.Links, cfg Config) *Runner {
	cfg.setDefaults()
	return &Runner{broker: b, links: links, cfg: cfg, sources: map[string]*sourceRef{},
		pullers: map[partKey]*puller{}, groups: map[string]context.CancelFunc{}}
}

// Run reconciles until ctx ends or Close is called, then stops every
// puller and returns once they have. Call it once.
func (r *Runner) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	r.mu.Lock()
	r.stop, r.done = cancel, done
	r.mu.Unlock()
	defer close(done)
	defer cancel()
	defer r.cfg.HTTPClient.CloseIdleConnections()
	defer r.wg.Wait()
	defer r.stopAll()
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	st := r.broker.Store()
	for {
		changed := st.CatalogChanged()
		r.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-changed:
		}
	}
}

// Close ends Run and waits until it returned with every goroutine it
// started; a no-op when Run was never called.
func (r *Runner) Close() {
	r.mu.Lock()
	stop, done := r.stop, r.done
	r.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	<-done
}

func (r *Runner) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, p := range r.pullers {
		p.cancel()
		delete(r.pullers, k)
	}
	for k, c := range r.groups {
		c()
		delete(r.groups, k)
	}
}

// source returns the link's source client.
func (r *Runner) source(l core.Link) (*source, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.sources[l.Name]; s != nil && s.created == l.CreatedAt {
		return s.src, nil
	}
	src, err := newSource(l, r.cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	r.sources[l.Name] = &sourceRef{created: l.CreatedAt, src: src}
	return src, nil
}

// reconcile creates the mirror topics of every link and starts or stops
// pullers to match the partitions this node leads.
func (r *Runner) reconcile(ctx context.Context) {
	st := r.broker.Store()
	if !st.Ready() {
		return
	}
	want := map[partKey]bool{}
	groupLeads := map[string]core.Link{}
	for _, l := range r.links.List() {
		src, err := r.source(l)
		if err != nil {
			r.cfg.Logger.Warn("link: source", "link", l.Name, "err", err)
			continue
		}
		r.createMirrors(ctx, l, src)
		mirrors := r.links.Mirrors(l.Name)
		names := make([]string, 0, len(mirrors))
		for t := range mirrors {
			names = append(names, t)
		}
		sort.Strings(names)
		for i, topic := range names {
			m := mirrors[topic]
			t, err := st.Topic(topic)
			if err != nil || m.TopicCreatedAt == 0 {
				continue
			}
			for p := 0; p < t.Partitions; p++ {
				log, err := st.Partition(topic, p)
				if err != nil || !log.IsLeader() {
					continue
				}
				if i == 0 && p == 0 && len(l.Groups) > 0 {
					groupLeads[l.Name] = l
				}
				if !m.Promoted {
					want[partKey{l.Name, topic, p}] = true
					r.startPuller(ctx, partKey{l.Name, topic, p}, m.SourceTopic, src)
				}
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, p := range r.pullers {
		if !want[k] {
			p.cancel()
			delete(r.pullers, k)
		}
	}
	for name, stop := range r.groups {
		if _, ok := groupLeads[name]; !ok {
			stop()
			delete(r.groups, name)
		}
	}
	for name, l := range groupLeads {
		if _, ok := r.groups[name]; !ok {
			gctx, cancel := context.WithCancel(ctx)
			r.groups[name] = cancel
			src := r.sources[name].src
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.syncGroups(gctx, l, src)
			}()
		}
	}
}

// createMirrors makes the mirror topics of the source topics l selects
// that B lacks, and grows those with fewer partitions than their source.
func (r *Runner) createMirrors(ctx context.Context, l core.Link, src *source) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.Interval+10*time.Second)
	defer cancel()
	topics, err := src.api.Topics(cctx)
	if err != nil {
		r.cfg.Logger.Warn("link: list source topics", "link", l.Name, "err", err)
		return
	}
	for _, t := range topics {
		if !l.MirrorsTopic(t.Name) {
			continue
		}
		if ti, err := r.broker.Store().Topic(t.Name); err == nil {
			if m, ok := core.MirrorOf(r.broker.Store(), ti); ok && m.Link == l.Name && m.TopicCreatedAt == ti.CreatedAt {
				// Made already; it follows the source's growth until promoted.
				if !m.Promoted && t.Partitions > ti.Partitions {
					if _, err := r.broker.GrowMirror(cctx, t.Name, t.Partitions); err != nil {
						r.cfg.Logger.Warn("link: grow mirror topic", "link", l.Name, "topic", t.Name, "partitions", t.Partitions, "err", err)
					}
				}
				continue
			}
		}
		cfg := core.TopicConfig{Name: t.Name, Partitions: t.Partitions, RetentionMs: t.RetentionMs, RetentionBytes: t.RetentionBytes}
		if _, _, err := r.links.MarkMirror(cctx, r.broker, l.Name, cfg); err != nil {
			r.cfg.Logger.Warn("link: mirror topic", "link", l.Name, "topic", t.Name, "err", err)
		}
	}
}

func (r *Runner) startPuller(ctx context.Context, k partKey, sourceTopic string, src *source) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.pullers[k]; p != nil && p.src == src && !p.ended() {
		return
	} else if p != nil {
		p.cancel()
	}
	pctx, cancel := context.WithCancel(ctx)
	p := &puller{r: r, key: k, sourceTopic: sourceTopic, src: src, cancel: cancel, done: make(chan struct{})}
	r.pullers[k] = p
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(p.done)
		p.run(pctx)
	}()
}

// Lags returns the lag of the mirror partitions this node pulls (for the
// weir_link_lag metrics).
func (r *Runner) Lags() []Lag {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Lag, 0, len(r.pullers))
	for k, p := range r.pullers {
		out = append(out, Lag{Link: k.link, MirrorLag: p.lag()})
	}
	return out
}

// Lag is a link's lag on one partition this node pulls, as of the
// puller's last fetch.
type Lag struct {
	Link string
	core.MirrorLag
}

// LinkLag implements core.LinkObserver: every partition of the link's
// mirror topics, asking the source for its high watermarks and for the
// timestamp of the oldest record not yet mirrored.
func (r *Runner) LinkLag(ctx context.Context, name string) ([]core.MirrorLag, error) {
	l, err := r.links.Get(name)
	if err != nil {
		return nil, err
	}
	src, err := r.source(l)
	if err != nil {
		return nil, err
	}
	var out []core.MirrorLag
	var errs []error
	if _, err := src.api.Topics(ctx); err != nil { // reachable, and the token accepted
		errs = append(errs, fmt.Errorf("source: %w", err))
	}
	mirrors := r.links.Mirrors(name)
	for topic, m := range mirrors {
		_, parts, err := r.broker.Topic(topic)
		if err != nil {
			continue
		}
		var srcParts []client.PartitionInfo
		if !m.Promoted {
			st, err := src.api.Topic(ctx, m.SourceTopic)
			if err != nil {
				errs = append(errs, fmt.Errorf("source topic %q: %w", m.SourceTopic, err))
			} else {
				srcParts = st.Partitions
			}
		}
		for _, p := range parts {
			lg := core.MirrorLag{Topic: topic, SourceTopic: m.SourceTopic, Partition: p.Partition, HighWatermark: p.HighWatermark}
			for _, sp := range srcParts {
				if sp.Partition == p.Partition {
					lg.SourceHighWatermark = sp.HighWatermark
					lg.Records = max(0, sp.HighWatermark-p.HighWatermark)
				}
			}
			if lg.Records > 0 {
				if ts, ok := src.firstTimestamp(ctx, m.SourceTopic, p.Partition, max(p.HighWatermark, 0)); ok {
					lg.Seconds = max(0, float64(time.Now().UnixMilli()-ts)/1000)
				}
			}
			out = append(out, lg)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, errors.Join(errs...)
}
