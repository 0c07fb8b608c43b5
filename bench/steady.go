package main

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"
)

// steady offers c.rate records/s for c.duration, open loop: every
// millisecond it hands send the records that are due by then (record i is
// due at i/c.rate seconds), whether or not earlier ones were acknowledged.
// send must not wait for the acknowledgement; it calls done once, when the
// record is acknowledged or failed. A record's latency runs from the moment
// it is handed to send to done, so it includes any queueing in the client
// (a buffer, a busy connection). The result's rate is acknowledged records
// over the time from the first record to the last acknowledgement; if send
// blocks, the generator falls behind and the rate shows it.
func steady(c *config, send func(i int, done func(error))) (result, error) {
	if c.rate <= 0 {
		return result{}, fmt.Errorf("-rate must be positive")
	}
	var (
		acked, failed atomic.Int64
		firstErr      atomic.Value
		mu            sync.Mutex
		lat           = make([]time.Duration, 0, int(c.duration.Seconds()*float64(c.rate))+1024)
		pending       sync.WaitGroup
	)
	start := startClock()
	sent := 0
	for next := start; ; next = next.Add(time.Millisecond) {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		el := time.Since(start)
		if el >= c.duration {
			break
		}
		for due := int(el.Seconds() * float64(c.rate)); sent < due; sent++ {
			t0 := time.Now()
			pending.Add(1)
			send(sent, func(err error) {
				d := time.Since(t0)
				if err != nil {
					if failed.Add(1) == 1 {
						firstErr.Store(err.Error())
					}
				} else {
					acked.Add(1)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
				pending.Done()
			})
		}
	}
	drained := make(chan struct{})
	go func() { pending.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(time.Minute):
		return result{}, fmt.Errorf("steady: %d of %d records unacknowledged a minute after the last was sent",
			int64(sent)-acked.Load()-failed.Load(), sent)
	}
	el := time.Since(start)
	mu.Lock()
	p50, p99 := latencies([][]time.Duration{lat})
	mu.Unlock()
	r := result{Records: acked.Load(), Seconds: el.Seconds(), P50us: p50, P99us: p99, Errors: failed.Load(), Offered: float64(c.rate)}
	if r.Records == 0 {
		return r, fmt.Errorf("no record acknowledged: %v", firstErr.Load())
	}
	return r, nil
}

// steadyHTTPWorkers is how many single-record HTTP requests the weir steady
// scenario keeps at most in flight (as `weir bench produce --rate` uses 64
// producers); records due while all are busy wait in a queue, and that wait
// counts in their latency.
const steadyHTTPWorkers = 64

// weirSteady sends every record as its own HTTP produce request (the HTTP
// path's linger 0), worker w through server w mod len(servers).
func weirSteady(hc *fasthttp.Client, c *config) (result, error) {
	type job struct{ done func(error) }
	jobs := make(chan job, 1<<16)
	var wg sync.WaitGroup
	for w := 0; w < steadyHTTPWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := c.servers[w%len(c.servers)] + "/v1/topics/" + c.topic + "/records"
			bodies, ct := weirBodies(c, w, 1)
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for i := 0; ; i++ {
				j, ok := <-jobs
				if !ok {
					return
				}
				req.SetRequestURI(target)
				req.Header.SetMethod("POST")
				req.Header.SetContentType(ct)
				req.SetBodyRaw(bodies[i%len(bodies)])
				err := hc.DoTimeout(req, resp, time.Minute)
				if err == nil && resp.StatusCode() != 200 {
					err = fmt.Errorf("produce: %d %s", resp.StatusCode(), resp.Body())
				}
				j.done(err)
			}
		}()
	}
	r, err := steady(c, func(_ int, done func(error)) { jobs <- job{done} })
	close(jobs)
	wg.Wait()
	return r, err
}

// natsSteady publishes asynchronously (PublishAsync, one connection per
// server, records round-robin over them); a goroutine per record waits for
// its acknowledgement so that each is timed when it arrives.
func natsSteady(c *config) (result, error) {
	var jss []jetstream.JetStream
	for _, s := range c.servers {
		nc, err := nats.Connect(s)
		if err != nil {
			return result{}, err
		}
		defer nc.Close()
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1<<16))
		if err != nil {
			return result{}, err
		}
		jss = append(jss, js)
	}
	subj := make([]string, 1024)
	for i := range subj {
		subj[i] = subject(c, partitionOf(keyOf(0, i), c.partitions))
	}
	return steady(c, func(i int, done func(error)) {
		f, err := jss[i%len(jss)].PublishAsync(subj[i%len(subj)], c.value(i))
		if err != nil {
			done(err)
			return
		}
		go func() {
			t := time.NewTimer(time.Minute)
			defer t.Stop()
			select {
			case <-f.Ok():
				done(nil)
			case err := <-f.Err():
				done(err)
			case <-t.C:
				done(errors.New("no acknowledgement within a minute"))
			}
		}()
	})
}
