package testutil

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/weir-broker/weir/sdk/client"
)

// Load is a steady produce load for fault tests: each producer is
// idempotent (producer_id + sequence), owns one partition, sends one record
// per request and retries the same sequence (through the next node on a
// failure) until it is acknowledged, so a retry can never duplicate. Every
// acknowledgement goes into the Ledger.
type Load struct {
	Ledger *Ledger
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	urls   []string
	errs   []string
}

// StartLoad starts producers (producers ≥ partitions) sending to topic
// through urls, round robin.
func StartLoad(t testing.TB, urls []string, topic string, partitions, producers int) *Load {
	l := &Load{Ledger: NewLedger(), stop: make(chan struct{}), urls: append([]string(nil), urls...)}
	for i := 0; i < producers; i++ {
		l.wg.Add(1)
		go l.producer(topic, i%partitions, fmt.Sprintf("lp%d", i), i)
	}
	return l
}

// AwaitAcks waits (up to timeout, else fails t) until, from now, each of
// the partitions has n more acknowledgements. Fault tests size their load
// with it ("run 100 writes per partition, then kill"), not with sleeps:
// on a loaded machine a sleep may cover no write at all.
func (l *Load) AwaitAcks(t testing.TB, n int, timeout time.Duration, partitions ...int) {
	t.Helper()
	t0 := time.Now()
	Eventually(t, timeout, fmt.Sprintf("%d acknowledgements on each of partitions %v", n, partitions), func() bool {
		for _, p := range partitions {
			if l.Ledger.AckedSince(p, t0) < n {
				return false
			}
		}
		return true
	})
}

// SetURLs changes the nodes the producers use.
func (l *Load) SetURLs(urls []string) {
	l.mu.Lock()
	l.urls = append([]string(nil), urls...)
	l.mu.Unlock()
}

func (l *Load) url(i int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.urls[i%len(l.urls)]
}

func (l *Load) producer(topic string, partition int, pid string, node int) {
	defer l.wg.Done()
	clients := map[string]*client.Client{}
	for seq := 0; ; seq++ {
		value := fmt.Sprintf("%s-%d", pid, seq)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			url := l.url(node)
			c := clients[url]
			if c == nil {
				// No retries of its own: the load retries through the next node.
				c, _ = client.New(url, client.WithRetries(0))
				clients[url] = c
			}
			// A stopped node accepts connections but never answers: give up
			// after a few seconds, as a real client would.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			res, err := c.Producer(topic, partition, pid, int64(seq)).Produce(ctx, []client.Record{{Value: []byte(value)}})
			cancel()
			if err == nil {
				l.Ledger.Ack(partition, res.Offsets[0].Offset, value)
				break
			}
			var e *client.Error
			if errors.As(err, &e) && e.Status >= 400 && e.Status < 500 {
				l.fail(fmt.Sprintf("%s seq %d: %v", pid, seq, err))
				return
			}
			if errors.As(err, &e) && e.Status == 503 && e.RetryAfter == 0 {
				l.fail(fmt.Sprintf("%s seq %d: 503 without Retry-After", pid, seq))
			}
			node++ // try the next node
			time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
		}
	}
}

func (l *Load) fail(msg string) {
	l.mu.Lock()
	l.errs = append(l.errs, msg)
	l.mu.Unlock()
}

// Stop ends the load and fails t on client errors (4xx answers).
func (l *Load) Stop(t testing.TB) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	for _, e := range l.errs {
		t.Error(e)
	}
}

// Ledger records acknowledged records per partition.
type Ledger struct {
	mu    sync.Mutex
	acked map[int]map[int64]string // partition → offset → value
	at    map[int][]time.Time      // partition → acknowledgement times
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{acked: map[int]map[int64]string{}, at: map[int][]time.Time{}}
}

// Ack records that value was acknowledged at offset of partition.
func (g *Ledger) Ack(partition int, offset int64, value string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.acked[partition]
	if m == nil {
		m = map[int64]string{}
		g.acked[partition] = m
	}
	if old, ok := m[offset]; ok && old != value {
		m[offset] = "CONFLICT:" + old + "|" + value
		return
	}
	m[offset] = value
	g.at[partition] = append(g.at[partition], time.Now())
}

// Count is the number of acknowledged records.
func (g *Ledger) Count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, m := range g.acked {
		n += len(m)
	}
	return n
}

// AckedSince counts the acknowledgements on partition (-1: on every
// partition) after t0.
func (g *Ledger) AckedSince(partition int, t0 time.Time) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for p, ats := range g.at {
		if partition >= 0 && p != partition {
			continue
		}
		for _, at := range ats {
			if at.After(t0) {
				n++
			}
		}
	}
	return n
}

// FirstAckAfter returns the first acknowledgement time on partition after t0.
func (g *Ledger) FirstAckAfter(partition int, t0 time.Time) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, at := range g.at[partition] {
		if at.After(t0) {
			return at, true
		}
	}
	return time.Time{}, false
}

// MaxGap is the longest time between two acknowledgements on partition
// within [from, to].
func (g *Ledger) MaxGap(partition int, from, to time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	ts := append([]time.Time(nil), g.at[partition]...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	prev, gap := from, time.Duration(0)
	for _, at := range ts {
		if at.Before(from) || at.After(to) {
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return max(gap, to.Sub(prev))
}

// Check verifies one partition against the logs read from each of its
// replicas (node name → values in offset order, offsets dense from 0):
// every replica holds the same records at the same offsets, every
// acknowledged record is present exactly once at its acknowledged offset,
// and no record appears twice.
func (g *Ledger) Check(t testing.TB, partition int, replicas map[string][]string) {
	t.Helper()
	g.mu.Lock()
	acked := g.acked[partition]
	g.mu.Unlock()
	var ref []string
	var refName string
	names := make([]string, 0, len(replicas))
	for n := range replicas {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		log := replicas[n]
		if ref == nil {
			ref, refName = log, n
			continue
		}
		if len(log) != len(ref) {
			t.Errorf("partition %d: replica %s holds %d records, replica %s %d", partition, n, len(log), refName, len(ref))
		}
		for i := 0; i < min(len(log), len(ref)); i++ {
			if log[i] != ref[i] {
				t.Errorf("partition %d offset %d: replica %s has %q, replica %s %q", partition, i, n, log[i], refName, ref[i])
				break
			}
		}
	}
	seen := map[string]int64{}
	for i, v := range ref {
		if j, dup := seen[v]; dup {
			t.Errorf("partition %d: %q at offsets %d and %d", partition, v, j, i)
		}
		seen[v] = int64(i)
	}
	for off, v := range acked {
		if off >= int64(len(ref)) || ref[off] != v {
			got := "<missing>"
			if off < int64(len(ref)) {
				got = ref[off]
			}
			t.Errorf("partition %d: acknowledged %q at offset %d, the log has %s", partition, v, off, got)
		}
	}
}
