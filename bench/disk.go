package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The disk's own fsync latency, measured in the same run as the systems
// (scripts/bench-compare.sh, the "disk" rows of docs/benchmarks.md).
//
// A broker that acknowledges only what it has fsynced (Weir; NATS with
// sync_interval: always) cannot answer faster than the disk syncs, and the
// tail of its produce latency follows the tail of the fsyncs: a request
// that waits for one sync already in progress and then for its own sees two.
// These machines share a virtual disk with other tenants, and its fsync
// tail moves from hour to hour; a latency target for a fsyncing broker is
// read against this row.

// runDisk appends c.size bytes and fsyncs, in a loop, from c.partitions
// writers at once (one file each, in c.dir: one per partition, like one Raft
// log per partition) for c.duration. A record is one append and its fsync;
// the latencies are of the pair.
func runDisk(c *config) (result, error) {
	if c.partitions < 1 {
		return result{}, fmt.Errorf("disk: -partitions must be at least 1")
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return result{}, err
	}
	buf := make([]byte, c.size)
	for i := range buf {
		buf[i] = 'x'
	}
	var (
		mu   sync.Mutex
		lats [][]time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	start := startClock()
	for w := 0; w < c.partitions; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			lat, err := diskWriter(filepath.Join(c.dir, fmt.Sprintf("fsync-%d", w)), buf, start.Add(c.duration))
			mu.Lock()
			defer mu.Unlock()
			lats = append(lats, lat)
			if err != nil {
				errs = append(errs, err)
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(start)
	if len(errs) > 0 {
		return result{}, fmt.Errorf("disk: %w", errs[0])
	}
	n := 0
	for _, l := range lats {
		n += len(l)
	}
	if n == 0 {
		return result{}, fmt.Errorf("disk: no fsync completed in %v", c.duration)
	}
	q := quantiles(lats, 0.50, 0.99, 0.999)
	return result{Records: int64(n), Seconds: el.Seconds(), P50us: q[0], P99us: q[1], P999us: q[2], Size: c.size}, nil
}

// diskWriter appends buf to a new file at path and fsyncs it, until the
// deadline, and returns the latency of each append+fsync. The file is
// removed at the end.
func diskWriter(path string, buf []byte, deadline time.Time) ([]time.Duration, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	defer f.Close()
	var lat []time.Duration
	for time.Now().Before(deadline) {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return lat, err
		}
		if err := f.Sync(); err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}
