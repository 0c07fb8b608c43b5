package quota

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// limiterWith returns a Limiter whose quotas are qs (no catalog: the
// snapshot never changes) on a fake clock.
func limiterWith(t testing.TB, cfg Config, qs ...Quota) (*Limiter, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1000, 0)}
	cfg.Now = clk.now
	l, err := New(nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &snapshot{changed: make(chan struct{}), quotas: map[string]Quota{}}
	for _, q := range qs {
		s.quotas[q.Principal] = q
	}
	l.snap.Store(s)
	return l, clk
}

var alice = auth.Principal{Name: "alice", Via: "token"}

// expectWait reserves c and checks the wait it is given.
func expectWait(t *testing.T, l *Limiter, p auth.Principal, c Cost, want time.Duration) {
	t.Helper()
	w, err := l.Reserve(p, nil, c, l.MaxWait())
	if err != nil || w != want {
		t.Fatalf("Reserve(%+v) = %v, %v; want %v, nil", c, w, err, want)
	}
}

// expectRefused reserves c and checks the refusal and its Retry-After.
func expectRefused(t *testing.T, l *Limiter, p auth.Principal, c Cost, retry time.Duration, kind Kind) {
	t.Helper()
	w, err := l.Reserve(p, nil, c, l.MaxWait())
	var rl *core.RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, core.ErrRateLimited) || w != 0 {
		t.Fatalf("Reserve(%+v) = %v, %v; want a *core.RateLimitError", c, w, err)
	}
	if rl.RetryAfter != retry {
		t.Fatalf("RetryAfter %v, want %v (%s)", rl.RetryAfter, retry, rl.Msg)
	}
	if want := kind.String() + " quota of"; !strings.Contains(rl.Msg, want) {
		t.Fatalf("message %q does not name the %s", rl.Msg, want)
	}
}

func TestProduceBucket(t *testing.T) {
	l, clk := limiterWith(t, Config{MaxWait: 100 * time.Millisecond}, Quota{Principal: "alice", ProduceBytesPerSec: 1000})
	// A new limit starts full: a burst of one second.
	expectWait(t, l, alice, Cost{Requests: 1, Produce: 600}, 0)
	expectWait(t, l, alice, Cost{Requests: 1, Produce: 400}, 0)
	// Empty: 1000 bytes need 1 s, past the 100 ms bound; nothing is taken.
	expectRefused(t, l, alice, Cost{Requests: 1, Produce: 1000}, time.Second, Produce)
	clk.advance(950 * time.Millisecond)
	// 950 bytes earned: 1000 fit within 50 ms, reserved now.
	expectWait(t, l, alice, Cost{Requests: 1, Produce: 1000}, 50*time.Millisecond)
	// In debt by the reservation: the next 10 bytes wait 60 ms.
	expectWait(t, l, alice, Cost{Produce: 10}, 60*time.Millisecond)
	// A request larger than the bucket plus the bound's refill never fits.
	clk.advance(time.Hour)
	expectRefused(t, l, alice, Cost{Produce: 20000}, 19*time.Second, Produce)
	if _, err := l.Reserve(alice, nil, Cost{Produce: 20000}, l.MaxWait()); !strings.Contains(err.Error(), "can never admit a request of 20000 bytes") {
		t.Fatalf("a request that never fits: %v", err)
	}
	// Requests are not limited by this quota; others are not limited.
	expectWait(t, l, alice, Cost{Requests: 1_000_000}, 0)
	expectWait(t, l, auth.Principal{Name: "bob"}, Cost{Produce: 1 << 40}, 0)
}

func TestDefaultAndOwnQuota(t *testing.T) {
	l, _ := limiterWith(t, Config{MaxWait: time.Millisecond},
		Quota{Principal: Default, RequestsPerSec: 2}, Quota{Principal: "vip"})
	// Anyone without a quota gets the default's.
	for _, name := range []string{"alice", auth.Anonymous} {
		p := auth.Principal{Name: name}
		expectWait(t, l, p, Cost{Requests: 1}, 0)
		expectWait(t, l, p, Cost{Requests: 1}, 0)
		expectRefused(t, l, p, Cost{Requests: 1}, 500*time.Millisecond, Requests)
	}
	// A principal's own quota replaces the default: all zeros, unlimited.
	for i := 0; i < 10; i++ {
		expectWait(t, l, auth.Principal{Name: "vip"}, Cost{Requests: 1}, 0)
	}
	// Other nodes are never limited; a nil Limiter admits everything.
	expectWait(t, l, auth.NodeAuth, Cost{Requests: 100}, 0)
	var none *Limiter
	if w, err := none.Reserve(alice, nil, Cost{Requests: 1 << 40}, time.Second); w != 0 || err != nil || none.Applies(alice) {
		t.Fatalf("nil Limiter: %v %v", w, err)
	}
	if !l.Applies(alice) || l.Applies(auth.Principal{Name: "vip"}) || l.Applies(auth.NodeAuth) {
		t.Fatal("Applies")
	}
}

func TestFetchDebt(t *testing.T) {
	l, clk := limiterWith(t, Config{MaxWait: 100 * time.Millisecond}, Quota{Principal: "alice", FetchBytesPerSec: 1000})
	read := Cost{Requests: 1, Fetch: true}
	expectWait(t, l, alice, read, 0)
	// What a read returned is charged after it, into debt: 5000 bytes
	// from a full bucket of 1000 leave 4000 owed, repaid in 4 s.
	l.Charge(alice, Fetch, 5000)
	expectRefused(t, l, alice, read, 4*time.Second, Fetch)
	clk.advance(3950 * time.Millisecond)
	expectWait(t, l, alice, read, 50*time.Millisecond)
	// Await never refuses; it gives the tokens back when ctx ends first.
	l.Charge(alice, Fetch, 1_000_000)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Await(ctx, alice, nil, Cost{Fetch: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Await with an ended ctx: %v", err)
	}
}

func TestQuotaChangeKeepsLevel(t *testing.T) {
	l, clk := limiterWith(t, Config{MaxWait: 10 * time.Millisecond}, Quota{Principal: "alice", ProduceBytesPerSec: 1000})
	expectWait(t, l, alice, Cost{Produce: 1000}, 0)
	expectRefused(t, l, alice, Cost{Produce: 500}, 500*time.Millisecond, Produce)
	// A higher rate applies at once, from the level the principal had.
	l.snap.Store(&snapshot{changed: make(chan struct{}), quotas: map[string]Quota{"alice": {Principal: "alice", ProduceBytesPerSec: 100_000}}})
	expectWait(t, l, alice, Cost{Produce: 500}, 5*time.Millisecond)
	clk.advance(2 * time.Second)
	expectWait(t, l, alice, Cost{Produce: 100_000}, 0)
	// Removed: unlimited.
	l.snap.Store(&snapshot{changed: make(chan struct{}), quotas: map[string]Quota{}})
	expectWait(t, l, alice, Cost{Produce: 1 << 40}, 0)
}

func TestForgetFullBuckets(t *testing.T) {
	l, clk := limiterWith(t, Config{MaxPrincipals: 2}, Quota{Principal: Default, RequestsPerSec: 10})
	for _, n := range []string{"a", "b"} {
		expectWait(t, l, auth.Principal{Name: n}, Cost{Requests: 10}, 0)
	}
	clk.advance(2 * time.Second) // both full again
	expectWait(t, l, auth.Principal{Name: "c"}, Cost{Requests: 1}, 0)
	if n := l.nbuckets.Load(); n != 1 {
		t.Fatalf("%d bucket sets kept, want 1 (a and b were full again)", n)
	}
}

func TestQuotaValidate(t *testing.T) {
	for _, q := range []Quota{
		{Principal: ""}, {Principal: "a b"}, {Principal: "x", ProduceBytesPerSec: -1},
		{Principal: "x", FetchBytesPerSec: MaxRate + 1}, {Principal: "x", RequestsPerSec: -5},
	} {
		if err := q.Validate(); !errors.Is(err, core.ErrBadRequest) {
			t.Errorf("%+v: %v, want a bad request", q, err)
		}
	}
	if err := (Quota{Principal: Default, ProduceBytesPerSec: MaxRate}).Validate(); err != nil {
		t.Error(err)
	}
	if _, err := New(nil, Config{MaxWait: -1}); err == nil {
		t.Error("a negative MaxWait was accepted")
	}
}

// BenchmarkReserve is the quota check alone, for a request of 100 KiB:
// with no quota stored, and with a default quota never hit.
//
//	go test -run '^$' -bench Reserve -count 3 ./core/quota
func BenchmarkReserve(b *testing.B) {
	huge := Quota{Principal: Default, ProduceBytesPerSec: MaxRate, FetchBytesPerSec: MaxRate, RequestsPerSec: MaxRate}
	for _, c := range []struct {
		name string
		qs   []Quota
	}{{"none", nil}, {"default", []Quota{huge}}} {
		b.Run("quota="+c.name, func(b *testing.B) {
			l, _ := limiterWith(b, Config{}, c.qs...)
			l.cfg.Now = time.Now // the real clock's cost is part of the check
			b.ReportAllocs()
			for range b.N {
				if _, err := l.Reserve(alice, nil, Cost{Requests: 1, Produce: 100 << 10}, time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
