//go:build chaos

package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/weir-broker/weir/internal/history"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// The linearizability windows of a chaos phase. Checking a history for
// linearizability is NP-complete, so porcupine gets short ones: while the
// faults go on, the run opens windows of linWindow one after another, each
// on a fresh topic of one partition, in which two producers append unique
// values and two readers fetch near the end of the log, one request at a
// time each, through random nodes. history.CheckLinearizable then checks
// each window's history against a log (an append returns the next offset,
// a fetch returns a prefix of the log from its offset, an empty fetch means
// the offset is at or past the end), taking unknown outcomes as either.

// linWindow is how long the clients of one window work.
const linWindow = 15 * time.Second

// linCheckTimeout bounds porcupine on one window; a window it cannot
// decide in time is reported as unchecked, not as an anomaly.
const linCheckTimeout = time.Minute

// linClass is the anomaly class of a window porcupine found not
// linearizable.
const linClass = "nonlinearizable"

// linHistory is one window's recorder, on its topic's partition 0.
type linHistory struct {
	topic string
	rec   *history.Recorder
}

// linWindows runs windows until stop closes. Start it with go; Wait
// returns the windows' histories once the last one has ended.
type linWindows struct {
	urls   []string
	prefix string
	rng    *rand.Rand
	stop   chan struct{}
	done   chan struct{}
	out    []linHistory
}

func startLinWindows(urls []string, prefix string, seed uint64) *linWindows {
	l := &linWindows{urls: urls, prefix: prefix, rng: rand.New(rand.NewPCG(seed, 4000)),
		stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// Stop ends the open window and returns every window's history.
func (l *linWindows) Stop() []linHistory {
	close(l.stop)
	<-l.done
	return l.out
}

func (l *linWindows) run() {
	defer close(l.done)
	for k := 0; ; k++ {
		topic := fmt.Sprintf("%s-lin-%d", l.prefix, k)
		if !l.createTopic(topic) {
			return // stopped before the topic could be created
		}
		rec := history.NewRecorder(nil)
		ctx, cancel := context.WithTimeout(context.Background(), linWindow)
		go func() {
			select {
			case <-l.stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			wg.Add(2)
			prng := rand.New(rand.NewPCG(l.rng.Uint64(), uint64(i)))
			rrng := rand.New(rand.NewPCG(l.rng.Uint64(), uint64(100+i)))
			go func() { defer wg.Done(); l.producer(ctx, rec, topic, fmt.Sprintf("lp%d", i), prng) }()
			go func() { defer wg.Done(); l.reader(ctx, rec, topic, fmt.Sprintf("lr%d", i), rrng) }()
		}
		wg.Wait()
		cancel()
		l.out = append(l.out, linHistory{topic: topic, rec: rec})
		select {
		case <-l.stop:
			return
		default:
		}
	}
}

// createTopic creates topic (one partition) through random nodes until a
// node says it exists and its partition answers, or stop closes.
func (l *linWindows) createTopic(topic string) bool {
	cl := newHClient()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	created := false
	for ctx.Err() == nil {
		url := l.urls[l.rng.IntN(len(l.urls))]
		if !created {
			a := cl.do(ctx, "POST", url+"/v1/topics", map[string]any{"name": topic, "partitions": 1}, nil)
			created = a.err == nil && (a.status == 201 || a.status == 409) // 409: an earlier attempt that timed out did it
		}
		if created {
			if _, err := highWatermark(ctx, url, topic, 0); err == nil {
				return true
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // a retry's pace; stop bounds the loop
		}
	}
	return false
}

func linPause(ctx context.Context, rng *rand.Rand) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(10+rng.IntN(60)) * time.Millisecond):
	}
}

// producer appends unique values to partition 0, one request at a time;
// an unknown outcome is recorded as such and never retried.
func (l *linWindows) producer(ctx context.Context, rec *history.Recorder, topic, id string, rng *rand.Rand) {
	cl := newHClient()
	p := history.Partition{Topic: topic, ID: 0}
	for n := 0; ctx.Err() == nil; n++ {
		value := fmt.Sprintf("%s-%s-%d", topic, id, n)
		url := l.urls[rng.IntN(len(l.urls))] + "/v1/topics/" + topic + "/records"
		op := rec.Invoke(history.Op{Kind: history.Produce, Process: id, Partition: p, Value: value})
		a := cl.do(ctx, "POST", url, map[string]any{"records": []map[string]any{{"value": value, "partition": 0}}}, nil)
		var o struct {
			Offsets []struct {
				Offset int64 `json:"offset"`
			} `json:"offsets"`
		}
		switch {
		case a.err == nil && a.status == 200 && json.Unmarshal(a.body, &o) == nil && len(o.Offsets) == 1:
			op.OK(history.Record{Partition: p, Offset: o.Offsets[0].Offset, Value: value})
		case a.definitelyFailed():
			op.Fail(a.error())
		default:
			op.Info(a.error()) // includes a request the window's end cut short
		}
		linPause(ctx, rng)
	}
}

// reader fetches partition 0 from an offset near the end it has seen
// (before it, at it, or one past it), one request at a time.
func (l *linWindows) reader(ctx context.Context, rec *history.Recorder, topic, id string, rng *rand.Rand) {
	cl := newHClient()
	p := history.Partition{Topic: topic, ID: 0}
	end := int64(0)
	for ctx.Err() == nil {
		from := max(0, end-int64(rng.IntN(4))+int64(rng.IntN(2)))
		op := rec.Invoke(history.Op{Kind: history.Fetch, Process: id, Partition: p, Offset: from})
		u := fmt.Sprintf("%s/v1/topics/%s/partitions/0/records?offset=%d&max_records=50", l.urls[rng.IntN(len(l.urls))], topic, from)
		a := cl.do(ctx, "GET", u, nil, nil)
		var f struct {
			Records []struct {
				Offset int64  `json:"offset"`
				Value  string `json:"value"`
			} `json:"records"`
		}
		if a.err != nil || a.status != 200 || json.Unmarshal(a.body, &f) != nil {
			op.Info(a.error()) // a read changes nothing: it is left out of the check
			linPause(ctx, rng)
			continue
		}
		recs := make([]history.Record, len(f.Records))
		for i, r := range f.Records {
			recs[i] = history.Record{Partition: p, Offset: r.Offset, Value: r.Value}
		}
		op.OK(recs...)
		if n := len(f.Records); n > 0 {
			end = max(end, f.Records[n-1].Offset+1)
		}
		linPause(ctx, rng)
	}
}

// drainLinWindows reads each window's topic whole through url (its own
// replica) into the window's history, once the faults have healed and the
// cluster settled: the read that lets CheckLinearizableDrained leave out
// the unknown produces nobody saw. It returns the windows it could not
// read to the end.
func drainLinWindows(ctx context.Context, t testing.TB, url string, ws []linHistory) int {
	bad := 0
	for _, w := range ws {
		// The high watermark as the main drain asks it (each request may
		// time out on a loaded machine): tu.Eventually retries it.
		var hw int64
		var err error
		tu.Eventually(t, 60*time.Second, "the high watermark of "+w.topic, func() bool {
			hw, err = highWatermark(ctx, url, w.topic, 0)
			return err == nil
		})
		if err == nil {
			_, err = drain(ctx, w.rec, url, "drain", w.topic, 0, hw)
		}
		if err != nil {
			bad++
			t.Errorf("drain of linearizability window %s: %v", w.topic, err)
		}
	}
	return bad
}

// linResult is what checking a phase's windows found.
type linResult struct {
	windows, ok, illegal, unknown, ops int
}

// checkLinWindows checks each drained window with porcupine, prints a line
// per window and writes each window's history next to the phase's history
// (path without .jsonl).
func checkLinWindows(phase, path string, ws []linHistory) linResult {
	var r linResult
	for _, w := range ws {
		p := history.Partition{Topic: w.topic, ID: 0}
		h := w.rec.History()
		calls := len(h.Calls())
		r.windows++
		r.ops += calls
		t0 := time.Now()
		res := history.CheckLinearizableDrained(h, p, linCheckTimeout)
		file := fmt.Sprintf("%s-%s.jsonl", path, w.topic)
		if f, err := os.Create(file); err == nil {
			h.WriteTo(f)
			f.Close()
		}
		verdict := "ok"
		switch res {
		case porcupine.Ok:
			r.ok++
		case porcupine.Illegal:
			r.illegal++
			verdict = "ILLEGAL (history in " + file + ")"
		default:
			r.unknown++
			verdict = "unchecked (porcupine timed out)"
		}
		fmt.Printf("chaos: phase %s: linearizability topic=%s ops=%d checked-in=%v: %s\n",
			phase, w.topic, calls, time.Since(t0).Round(time.Millisecond), verdict)
	}
	return r
}

func (r linResult) String() string {
	return strings.TrimSpace(fmt.Sprintf("windows=%d ops=%d linearizable=%d illegal=%d unchecked=%d",
		r.windows, r.ops, r.ok, r.illegal, r.unknown))
}
