package quota

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// Table is the catalog table of quotas: principal → Quota as JSON.
const Table = "quotas"

// Default is the principal whose quota applies to every principal that has
// none of its own (anonymous traffic, with auth off, included).
const Default = "default"

// MaxRate bounds each limit of a quota (2^50: a PiB per second).
const MaxRate = 1 << 50

// Quota is one principal's limits on this node, per second; 0 is
// unlimited.
type Quota struct {
	Principal          string `json:"principal"`
	ProduceBytesPerSec int64  `json:"produce_bytes_per_sec"`
	FetchBytesPerSec   int64  `json:"fetch_bytes_per_sec"`
	RequestsPerSec     int64  `json:"requests_per_sec"`
}

// Validate reports a bad principal name or a limit outside [0, MaxRate]
// as a core.InvalidError.
func (q Quota) Validate() error {
	if !auth.ValidPrincipalName(q.Principal) {
		return core.Invalidf("principal %q must be 1–128 characters of [A-Za-z0-9._@:=-] (or %q)", q.Principal, Default)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"produce_bytes_per_sec", q.ProduceBytesPerSec}, {"fetch_bytes_per_sec", q.FetchBytesPerSec}, {"requests_per_sec", q.RequestsPerSec}} {
		if f.v < 0 || f.v > MaxRate {
			return core.Invalidf("%s is %d: it must be between 0 (unlimited) and %d", f.name, f.v, int64(MaxRate))
		}
	}
	return nil
}

// limited reports whether any limit is set.
func (q *Quota) limited() bool {
	return q.RequestsPerSec > 0 || q.ProduceBytesPerSec > 0 || q.FetchBytesPerSec > 0
}

// rate returns the limit of kind k (0: unlimited).
func (q *Quota) rate(k Kind) int64 {
	switch k {
	case Requests:
		return q.RequestsPerSec
	case Produce:
		return q.ProduceBytesPerSec
	}
	return q.FetchBytesPerSec
}

// Kind is what a bucket counts.
type Kind uint8

// The kinds of a quota.
const (
	Requests Kind = iota // requests (HTTP requests, WebSocket frames, Kafka requests)
	Produce              // bytes of decoded records written
	Fetch                // bytes returned by reads
	nKinds
)

func (k Kind) String() string {
	switch k {
	case Requests:
		return "requests"
	case Produce:
		return "produce"
	}
	return "fetch"
}

func (k Kind) unit() string {
	if k == Requests {
		return "requests"
	}
	return "bytes"
}

// Cost is what a request asks of its principal's buckets.
type Cost struct {
	Requests int64 // requests (usually 1)
	Produce  int64 // bytes of the decoded records it writes
	// Fetch: the request reads. It waits while the fetch bucket is in debt;
	// the bytes it returns are charged afterwards (Charge).
	Fetch bool
}

// Origin describes a request for the audit record of a throttling; it is
// called only when the request is throttled.
type Origin interface {
	QuotaOrigin() (action, source string)
}

// Auditor records audit events (*auth.Service is one; it does nothing
// with auth off).
type Auditor interface{ Audit(auth.Event) }

// Config configures a Limiter. The zero value takes the defaults named.
type Config struct {
	// MaxWait bounds how long a request over its quota waits for tokens
	// before it is refused with a *core.RateLimitError; default 1 s.
	MaxWait time.Duration
	// Burst is how much of its rate a principal may spend at once: each
	// bucket holds rate × Burst tokens; default 1 s. A single request
	// larger than the bucket plus MaxWait's refill is always refused.
	Burst time.Duration
	// MaxPrincipals bounds the principals whose buckets are kept; past it
	// buckets that are full again are forgotten. Default 10,000.
	MaxPrincipals int
	// Telemetry counts throttled requests (nil: not counted).
	Telemetry *core.Telemetry
	// Audit records throttled requests (nil: not recorded).
	Audit Auditor
	// Now is the clock of the buckets; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Validate reports a negative setting.
func (c *Config) Validate() error {
	if c.MaxWait < 0 || c.Burst < 0 || c.MaxPrincipals < 0 {
		return errors.New("quota: MaxWait, Burst and MaxPrincipals must not be negative (0 takes the default)")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.MaxWait == 0 {
		c.MaxWait = time.Second
	}
	if c.Burst == 0 {
		c.Burst = time.Second
	}
	if c.MaxPrincipals == 0 {
		c.MaxPrincipals = 10000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Limiter stores quotas in the catalog and enforces them on this node.
// Safe for concurrent use; a nil *Limiter admits everything. Locks: rebuild
// (the snapshot) and a principal's buckets.mu are never held together,
// and no lock is held while a request waits for its tokens.
type Limiter struct {
	cfg   Config
	store core.Catalog

	snap    atomic.Pointer[snapshot]
	rebuild sync.Mutex // one rebuild of the snapshot at a time

	buckets  sync.Map // principal → *buckets
	nbuckets atomic.Int64
}

// snapshot is the decoded quota table, replaced after a catalog change.
type snapshot struct {
	changed <-chan struct{}
	quotas  map[string]Quota
}

// New validates cfg and returns a Limiter over the catalog.
func New(store core.Catalog, cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Limiter{cfg: cfg, store: store}, nil
}

// MaxWait is the longest a request waits for tokens (Config.MaxWait).
func (l *Limiter) MaxWait() time.Duration {
	if l == nil {
		return 0
	}
	return l.cfg.MaxWait
}

// current returns the decoded quotas, rebuilt after a catalog change.
func (l *Limiter) current() *snapshot {
	if s := l.snap.Load(); s != nil {
		select {
		case <-s.changed:
		default:
			return s
		}
	}
	l.rebuild.Lock()
	defer l.rebuild.Unlock()
	if s := l.snap.Load(); s != nil {
		select {
		case <-s.changed:
		default:
			return s // another caller rebuilt it
		}
	}
	s := &snapshot{changed: l.store.CatalogChanged(), quotas: map[string]Quota{}}
	for k, v := range l.store.CatalogList(Table) {
		var q Quota
		if err := json.Unmarshal(v, &q); err != nil {
			// Not guessed: the principal falls back to the default quota
			// until an admin sets or removes it.
			l.cfg.Logger.Error("quota record does not decode: ignored until an admin sets or removes it", "principal", k, "err", err)
			continue
		}
		q.Principal = k
		s.quotas[k] = q
	}
	l.snap.Store(s)
	return s
}

// For returns the quota that applies to principal: its own, else the
// default; ok is false when neither is stored.
func (l *Limiter) For(principal string) (q Quota, ok bool) {
	s := l.current()
	if q, ok = s.quotas[principal]; !ok {
		q, ok = s.quotas[Default]
	}
	return q, ok
}

// Set stores q (replacing the principal's quota) and returns it.
func (l *Limiter) Set(ctx context.Context, q Quota) (Quota, error) {
	if err := q.Validate(); err != nil {
		return q, err
	}
	b, _ := json.Marshal(q)
	if _, err := l.store.CatalogPut(ctx, Table, q.Principal, b, core.CatalogCond{}); err != nil {
		return q, err
	}
	return q, nil
}

// List returns the stored quotas by principal.
func (l *Limiter) List() []Quota {
	s := l.current()
	out := make([]Quota, 0, len(s.quotas))
	for _, q := range s.quotas {
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Principal < out[j].Principal })
	return out
}

// Get returns a principal's own quota (not the default it may fall back
// to); core.ErrQuotaNotFound when it has none.
func (l *Limiter) Get(principal string) (Quota, error) {
	q, ok := l.current().quotas[principal]
	if !ok {
		return Quota{}, fmt.Errorf("%w: principal %q has no quota", core.ErrQuotaNotFound, principal)
	}
	return q, nil
}

// Remove deletes a principal's quota; core.ErrQuotaNotFound when it has
// none.
func (l *Limiter) Remove(ctx context.Context, principal string) error {
	ok, err := l.store.CatalogDelete(ctx, Table, principal, core.CatalogCond{})
	if err == nil && !ok {
		err = fmt.Errorf("%w: principal %q has no quota", core.ErrQuotaNotFound, principal)
	}
	return err
}
