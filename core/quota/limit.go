package quota

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// buckets are one principal's token buckets on this node, one per kind.
// A level below zero is debt: reads charged after the fact, or tokens
// reserved by requests still waiting for them.
type buckets struct {
	mu    sync.Mutex
	q     Quota // the quota the rates come from
	level [nKinds]float64
	at    time.Time // of the last refill
}

// refill adds the tokens earned since b.at and adopts quota q: a limit
// that was not there starts full, a changed one keeps its level (at most
// the new bucket size). b.mu is held.
func (b *buckets) refill(now time.Time, q *Quota, burst time.Duration) {
	el := now.Sub(b.at).Seconds()
	if el < 0 {
		el = 0
	}
	for k := Kind(0); k < nKinds; k++ {
		r := float64(q.rate(k))
		if r == 0 {
			b.level[k] = 0
			continue
		}
		size := r * burst.Seconds()
		if b.q.rate(k) == 0 || b.at.IsZero() {
			b.level[k] = size // a new limit starts full
			continue
		}
		b.level[k] = math.Min(size, b.level[k]+r*el)
	}
	b.q, b.at = *q, now
}

// demand returns what c asks of kind k, and whether it asks at all.
func (c *Cost) demand(k Kind) (float64, bool) {
	switch k {
	case Requests:
		return float64(c.Requests), c.Requests > 0
	case Produce:
		return float64(c.Produce), c.Produce > 0
	}
	return 0, c.Fetch // a read needs the fetch bucket out of debt
}

// wait returns how long until every bucket c asks of holds its demand,
// and the kind that takes longest. b.mu is held, after refill.
func (b *buckets) wait(c *Cost) (time.Duration, Kind) {
	var worst float64
	kind := Requests
	for k := Kind(0); k < nKinds; k++ {
		r := float64(b.q.rate(k))
		need, asks := c.demand(k)
		if r == 0 || !asks || b.level[k] >= need {
			continue
		}
		if w := (need - b.level[k]) / r; w > worst {
			worst, kind = w, k
		}
	}
	// Whole microseconds, rounded up past float noise (1.0000000001 µs is 1).
	return time.Duration(math.Ceil(worst*1e6-1e-3)) * time.Microsecond, kind
}

// take subtracts c's demand (sign −1 takes; +1 gives it back, up to the
// bucket size rate × burst). b.mu is held.
func (b *buckets) take(c *Cost, sign float64, burst time.Duration) {
	for k := Kind(0); k < nKinds; k++ {
		if need, asks := c.demand(k); asks && b.q.rate(k) > 0 {
			b.level[k] = math.Min(b.level[k]+sign*need, float64(b.q.rate(k))*burst.Seconds())
		}
	}
}

// bucketsOf returns principal's buckets, made on first use.
func (l *Limiter) bucketsOf(principal string) *buckets {
	if v, ok := l.buckets.Load(principal); ok {
		return v.(*buckets)
	}
	if l.nbuckets.Load() >= int64(l.cfg.MaxPrincipals) {
		l.forgetFull()
	}
	v, loaded := l.buckets.LoadOrStore(principal, &buckets{})
	if !loaded {
		l.nbuckets.Add(1)
	}
	return v.(*buckets)
}

// forgetFull drops the buckets that are full again (a fresh set would be
// the same).
func (l *Limiter) forgetFull() {
	now := l.cfg.Now()
	l.buckets.Range(func(k, v any) bool {
		b := v.(*buckets)
		b.mu.Lock()
		full := !b.at.IsZero()
		if full {
			b.refill(now, &b.q, l.cfg.Burst)
			for kd := Kind(0); kd < nKinds; kd++ {
				if r := b.q.rate(kd); r > 0 && b.level[kd] < float64(r)*l.cfg.Burst.Seconds() {
					full = false
				}
			}
		}
		b.mu.Unlock()
		if full {
			l.buckets.Delete(k)
			l.nbuckets.Add(-1)
		}
		return true
	})
}

// NoBound is a maxWait of Reserve that never refuses.
const NoBound = time.Duration(math.MaxInt64)

// Reserve takes c's tokens from p's buckets when they hold them within
// maxWait (MaxWait, or NoBound), and returns how long the caller must wait
// before using them (0: at once). Otherwise it takes nothing and returns
// a *core.RateLimitError. Other nodes (p.Node) and principals without a
// quota are not limited. A throttling is counted and audited.
func (l *Limiter) Reserve(p auth.Principal, o Origin, c Cost, maxWait time.Duration) (time.Duration, error) {
	return l.reserve(p, o, &c, maxWait)
}

// Applies reports whether a quota limits p on this node (callers skip
// computing a Cost when none does).
func (l *Limiter) Applies(p auth.Principal) bool {
	if l == nil || p.Node {
		return false
	}
	q, ok := l.For(p.Name)
	return ok && q.limited()
}

func (l *Limiter) reserve(p auth.Principal, o Origin, c *Cost, maxWait time.Duration) (time.Duration, error) {
	if l == nil || p.Node {
		return 0, nil
	}
	q, ok := l.For(p.Name)
	if !ok || !q.limited() {
		return 0, nil // nothing stored, or nothing limited: the fast path
	}
	b := l.bucketsOf(p.Name)
	b.mu.Lock()
	b.refill(l.cfg.Now(), &q, l.cfg.Burst)
	w, kind := b.wait(c)
	if w <= maxWait {
		b.take(c, -1, l.cfg.Burst)
	}
	b.mu.Unlock()
	if w == 0 {
		return 0, nil
	}
	if w > maxWait {
		err := &core.RateLimitError{RetryAfter: w, Msg: fmt.Sprintf("principal %q is over its %s quota of %d %s/s on this node (docs/quotas.md); retry in %s",
			p.Name, kind, q.rate(kind), kind.unit(), w.Round(time.Millisecond))}
		if need, _ := c.demand(kind); need > float64(q.rate(kind))*(l.cfg.Burst+maxWait).Seconds() {
			err.Msg = fmt.Sprintf("principal %q's %s quota of %d %s/s on this node can never admit a request of %.0f %s at once (at most its burst and what the wait bound refills; docs/quotas.md): send smaller requests",
				p.Name, kind, q.rate(kind), kind.unit(), need, kind.unit())
		}
		l.throttled(p, o, kind, 0, err)
		return 0, err
	}
	l.throttled(p, o, kind, w, nil)
	return w, nil
}

// Admit is Reserve followed by the wait: it returns once c's tokens are
// p's to use, or with the refusal. When ctx ends during the wait, the
// tokens are given back and ctx's error returned.
func (l *Limiter) Admit(ctx context.Context, p auth.Principal, o Origin, c Cost) error {
	return l.admit(ctx, p, o, &c, l.cfg.MaxWait)
}

// Await is Admit without the bound: it waits as long as p's buckets need
// (for pushes to a subscriber, which are slowed down rather than refused).
func (l *Limiter) Await(ctx context.Context, p auth.Principal, o Origin, c Cost) error {
	return l.admit(ctx, p, o, &c, NoBound)
}

func (l *Limiter) admit(ctx context.Context, p auth.Principal, o Origin, c *Cost, maxWait time.Duration) error {
	w, err := l.reserve(p, o, c, maxWait)
	if err != nil || w == 0 {
		return err
	}
	t := time.NewTimer(w)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		b := l.bucketsOf(p.Name)
		b.mu.Lock()
		b.take(c, +1, l.cfg.Burst)
		b.mu.Unlock()
		return ctx.Err()
	}
}

// Charge takes n bytes of kind (Fetch: what a read returned) from p's
// bucket, into debt if need be: p's next read waits until it is repaid.
func (l *Limiter) Charge(p auth.Principal, kind Kind, n int64) {
	if l == nil || p.Node || n <= 0 {
		return
	}
	q, ok := l.For(p.Name)
	if !ok || q.rate(kind) == 0 {
		return
	}
	b := l.bucketsOf(p.Name)
	b.mu.Lock()
	b.refill(l.cfg.Now(), &q, l.cfg.Burst)
	b.level[kind] -= float64(n)
	b.mu.Unlock()
}

// throttled counts and audits a request delayed by w, or refused (err).
func (l *Limiter) throttled(p auth.Principal, o Origin, kind Kind, w time.Duration, err *core.RateLimitError) {
	l.cfg.Telemetry.QuotaThrottled(context.Background(), p.Name, kind.String(), w)
	if l.cfg.Audit == nil {
		return
	}
	e := auth.Event{Principal: p.Name, Via: p.Via, Resource: "quota:" + p.Name, Operation: kind.String(), Result: "throttled"}
	if o != nil {
		e.Action, e.Source = o.QuotaOrigin()
	}
	if err != nil {
		e.Status, e.Reason = 429, "refused: "+err.Msg
	} else {
		e.Reason = fmt.Sprintf("delayed %s: principal %q is over its %s quota on this node", w.Round(time.Millisecond), p.Name, kind)
	}
	l.cfg.Audit.Audit(e)
}
