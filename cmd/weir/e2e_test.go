package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestKill9LosesNothingAcknowledged runs the built binary, produces from
// several producers, kills the process with SIGKILL in the middle, restarts
// it and checks that every acknowledged record is there exactly once, at its
// acknowledged offset, with dense offsets.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	httpAddr, raftAddr := tu.FreeAddr(t), tu.FreeAddr(t)
	p := tu.StartWeir(t, httpAddr, "--data-dir", dir, "--raft-addr", raftAddr, "--log-level", "warn")
	u := p.URL()
	if r := tu.Do(t, "POST", u+"/v1/topics", map[string]any{"name": "k9", "partitions": 2}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	type ack struct {
		partition int
		offset    int64
	}
	var mu sync.Mutex
	acked := map[string]ack{} // value → where it was acknowledged
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				var recs []map[string]any
				for j := 0; j < 10; j++ {
					recs = append(recs, map[string]any{"key": fmt.Sprint("w", w), "value": fmt.Sprintf("w%d-%d-%d", w, i, j)})
				}
				r, err := tu.TryDo("POST", u+"/v1/topics/k9/records", map[string]any{"records": recs})
				if err != nil || r.Status != 200 {
					continue // not acknowledged: may or may not be there
				}
				var o struct {
					Offsets []struct {
						Partition int   `json:"partition"`
						Offset    int64 `json:"offset"`
					} `json:"offsets"`
				}
				r.JSON(t, &o)
				mu.Lock()
				for j, off := range o.Offsets {
					acked[recs[j]["value"].(string)] = ack{off.Partition, off.Offset}
				}
				mu.Unlock()
			}
		}()
	}
	tu.Eventually(t, 30*time.Second, "some records acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 500
	})
	p.Kill()
	stop.Store(true)
	wg.Wait()
	p.Restart(60 * time.Second)

	seen := map[string]int{}
	for part := 0; part < 2; part++ {
		next := int64(0)
		for {
			url := fmt.Sprintf("%s/v1/topics/k9/partitions/%d/records?offset=%d&max_records=5000", u, part, next)
			// Right after a restart a partition may answer 503 unavailable
			// (with Retry-After) until its replica has a leader and caught up.
			var r *tu.Response
			tu.Eventually(t, 30*time.Second, "partition readable after restart", func() bool {
				r = tu.Do(t, "GET", url, nil)
				return r.Status == 200
			})
			var f struct {
				Records []struct {
					Offset int64  `json:"offset"`
					Value  string `json:"value"`
				} `json:"records"`
				NextOffset    int64 `json:"next_offset"`
				HighWatermark int64 `json:"high_watermark"`
			}
			r.JSON(t, &f)
			for _, rec := range f.Records {
				if rec.Offset != next {
					t.Fatalf("partition %d: offset %d after %d: not dense", part, rec.Offset, next-1)
				}
				next++
				seen[rec.Value]++
				if a, ok := acked[rec.Value]; ok && (a.partition != part || a.offset != rec.Offset) {
					t.Fatalf("%s acknowledged at %d/%d, found at %d/%d", rec.Value, a.partition, a.offset, part, rec.Offset)
				}
			}
			if next >= f.HighWatermark {
				break
			}
		}
	}
	for v := range acked {
		if seen[v] != 1 {
			t.Fatalf("acknowledged record %s (at %d/%d) found %d times after kill -9; %d acked, %d in the log", v, acked[v].partition, acked[v].offset, seen[v], len(acked), len(seen))
		}
	}
	t.Logf("%d acknowledged records all present after kill -9 (%d in the log)", len(acked), len(seen))
}

// TestCLI drives the command line against a running binary.
func TestCLI(t *testing.T) {
	dir := t.TempDir()
	httpAddr := tu.FreeAddr(t)
	p := tu.StartWeir(t, httpAddr, "--data-dir", dir, "--raft-addr", tu.FreeAddr(t), "--log-level", "warn")
	bin := tu.WeirBinary(t)
	run := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, "--server", p.URL())...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("", "topic", "create", "cli", "--partitions", "2"); err != nil {
		t.Fatalf("topic create: %v %s", err, out)
	}
	if out, err := run("", "topic", "create", "cli"); err == nil || !strings.Contains(out, "topic_exists") {
		t.Fatalf("duplicate create should fail with topic_exists: %v %s", err, out)
	}
	if out, err := run("", "topic", "list"); err != nil || !strings.Contains(out, "cli") {
		t.Fatalf("topic list: %v %s", err, out)
	}
	if out, err := run("one\ntwo\nthree\n", "produce", "cli", "--partition", "1"); err != nil || strings.Count(out, "\n") != 3 {
		t.Fatalf("produce stdin: %v %s", err, out)
	}
	if out, err := run("", "produce", "cli", "--key", "k", "four"); err != nil {
		t.Fatalf("produce args: %v %s", err, out)
	}
	out, err := run("", "consume", "cli", "--partition", "1", "--from", "earliest")
	if err != nil || !strings.Contains(out, `"value":"one"`) || !strings.Contains(out, `"value":"three"`) {
		t.Fatalf("consume: %v %s", err, out)
	}
	if out, err := run("", "consume", "cli", "--group", "g1"); err != nil || strings.Count(out, "\n") != 4 {
		t.Fatalf("consume with group: %v %s", err, out)
	}
	if out, err := run("", "group", "offsets", "g1"); err != nil || !strings.Contains(out, "cli") {
		t.Fatalf("group offsets: %v %s", err, out)
	}
	// The group resumes after its committed offsets: nothing new.
	if out, err := run("", "consume", "cli", "--group", "g1"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("consume again with group: %v %q", err, out)
	}
	if out, err := run("", "group", "describe", "g1"); err != nil || !strings.Contains(out, "COMMITTED") || !strings.Contains(out, "cli ") {
		t.Fatalf("group describe: %v %s", err, out)
	}
	if out, err := run("", "group", "describe", "nobody"); err == nil || !strings.Contains(out, "group_not_found") {
		t.Fatalf("group describe of a missing group: %v %s", err, out)
	}
	if out, err := run("", "topic", "describe", "nope"); err == nil || !strings.Contains(out, "topic_not_found") {
		t.Fatalf("describe missing: %v %s", err, out)
	}
	if out, err := run("", "topic", "add-partitions", "cli", "--partitions", "3"); err != nil || strings.Count(out, `"partition":`) != 3 {
		t.Fatalf("topic add-partitions: %v %s", err, out)
	}
	if out, err := run("", "topic", "add-partitions", "cli", "--partitions", "2"); err == nil || !strings.Contains(out, "bad_request") {
		t.Fatalf("shrinking should fail with bad_request: %v %s", err, out)
	}
	if out, err := run("", "topic", "delete", "cli"); err != nil {
		t.Fatalf("delete: %v %s", err, out)
	}
	for _, sub := range []string{"serve", "topic", "produce", "consume", "group", "bench"} {
		out, err := exec.Command(bin, sub, "--help").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage:") {
			t.Fatalf("%s --help: %v %s", sub, err, out)
		}
	}
}

// TestConsumeFollowsGrowth: `weir consume --follow` of every partition
// reads a partition added while it runs, from its start.
func TestConsumeFollowsGrowth(t *testing.T) {
	p := tu.StartWeir(t, tu.FreeAddr(t), "--data-dir", t.TempDir(), "--raft-addr", tu.FreeAddr(t), "--log-level", "warn")
	if r := tu.Do(t, "POST", p.URL()+"/v1/topics", map[string]any{"name": "grow", "partitions": 1}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	produce := func(partition int, value string) {
		t.Helper()
		r := tu.Do(t, "POST", p.URL()+"/v1/topics/grow/records", map[string]any{"records": []map[string]any{{"value": value, "partition": partition}}})
		if r.Status != 200 {
			t.Fatalf("produce to partition %d: %d %s", partition, r.Status, r.Body)
		}
	}
	produce(0, "before")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tu.WeirBinary(t), "consume", "grow", "--follow", "--max", "2", "--server", p.URL())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.Contains(lines.Text(), `"value":"before"`) {
		t.Fatalf("first line %q (%v), want the record of partition 0; stderr %s", lines.Text(), lines.Err(), stderr.String())
	}
	// The consumer is running (it printed): grow the topic and write to
	// the new partition only.
	if r := tu.Do(t, "POST", p.URL()+"/v1/topics/grow/partitions", map[string]any{"partitions": 2}); r.Status != 200 {
		t.Fatalf("add partitions: %d %s", r.Status, r.Body)
	}
	produce(1, "added")
	if !lines.Scan() || !strings.Contains(lines.Text(), `"value":"added"`) || !strings.Contains(lines.Text(), `"partition":1`) {
		t.Fatalf("second line %q (%v), want the record of the added partition; stderr %s", lines.Text(), lines.Err(), stderr.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("consume --max 2 after two records: %v; stderr %s", err, stderr.String())
	}
}

// awaitPipelineCaughtUp waits until the pipeline's committed positions on
// its parts input partitions have reached their high watermarks and its
// outbox is shipped: every output it will write for the input so far is
// written, so a duplicate would be in the log now.
func awaitPipelineCaughtUp(t *testing.T, u, name string, parts int) {
	t.Helper()
	tu.Eventually(t, 90*time.Second, "pipeline "+name+" to catch up", func() bool {
		var st struct {
			Partitions []struct {
				Lag     int64 `json:"lag"`
				Pending int   `json:"pending_outbox"`
			} `json:"partitions"`
		}
		r, err := tu.TryDo("GET", u+"/v1/pipelines/"+name, nil)
		if err != nil || r.Status != 200 {
			return false
		}
		r.JSON(t, &st)
		for _, p := range st.Partitions {
			if p.Lag != 0 || p.Pending != 0 {
				return false
			}
		}
		return len(st.Partitions) == parts
	})
}

// TestCountExactlyOnceAcrossKill9: the count example in an exactly-once
// pipeline gives every key the exact sequence 1..n although the broker is
// killed with SIGKILL in the middle of the stream.
func TestCountExactlyOnceAcrossKill9(t *testing.T) {
	dir := t.TempDir()
	p := tu.StartWeir(t, tu.FreeAddr(t), "--data-dir", dir, "--raft-addr", tu.FreeAddr(t), "--log-level", "warn")
	u := p.URL()
	for _, tp := range []string{"clicks", "counts"} {
		if r := tu.Do(t, "POST", u+"/v1/topics", map[string]any{"name": tp, "partitions": 2}); r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
	}
	if r := tu.Do(t, "PUT", u+"/v1/modules/count", tu.BuildWasm(t, "examples/count"), "application/wasm"); r.Status != 201 {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", u+"/v1/pipelines", map[string]any{"name": "c", "module": "count", "inputs": []string{"clicks"}, "outputs": []string{"counts"}, "guarantee": "exactly_once", "batch_size": 5}); r.Status != 201 {
		t.Fatalf("pipeline: %d %s", r.Status, r.Body)
	}
	keys := []string{"a", "b", "c", "d", "e"}
	const rounds = 40
	produceRound := func(i int) {
		// One idempotent request per key (a key is one partition): a retry
		// after the kill cannot duplicate an input record.
		for _, k := range keys {
			body := map[string]any{"producer_id": "p-" + k, "sequence": i, "records": []map[string]any{{"key": k, "value": fmt.Sprint(i)}}}
			tu.Eventually(t, 60*time.Second, "produce of "+k+" to be acknowledged", func() bool {
				r, err := tu.TryDo("POST", u+"/v1/topics/clicks/records", body)
				return err == nil && r.Status == 200
			})
		}
	}
	countOut := func() int {
		n := 0
		for part := 0; part < 2; part++ {
			var f struct {
				HighWatermark int64 `json:"high_watermark"`
			}
			r, err := tu.TryDo("GET", fmt.Sprintf("%s/v1/topics/counts/partitions/%d/records?offset=latest", u, part), nil)
			if err == nil {
				r.JSON(t, &f)
				n += int(f.HighWatermark)
			}
		}
		return n
	}
	for i := 0; i < rounds/2; i++ {
		produceRound(i)
	}
	// Kill while the pipeline is still working through the input.
	tu.Eventually(t, 60*time.Second, "pipeline under way", func() bool { return countOut() >= 20 })
	p.Kill()
	p.Restart(60 * time.Second)
	for i := rounds / 2; i < rounds; i++ {
		produceRound(i)
	}
	tu.Eventually(t, 90*time.Second, "all counts", func() bool { return countOut() >= rounds*len(keys) })
	// The fence: the pipeline's committed positions have reached the
	// inputs' high watermarks and its outbox is shipped, so every count it
	// will ever write is written; a duplicate would be in the log now.
	awaitPipelineCaughtUp(t, u, "c", 2)
	per := map[string][]string{}
	for part := 0; part < 2; part++ {
		var f struct {
			Records []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"records"`
		}
		tu.Do(t, "GET", fmt.Sprintf("%s/v1/topics/counts/partitions/%d/records?offset=earliest&max_records=10000", u, part), nil).JSON(t, &f)
		for _, r := range f.Records {
			per[r.Key] = append(per[r.Key], r.Value)
		}
	}
	for _, k := range keys {
		got := per[k]
		if len(got) != rounds {
			t.Fatalf("key %s: %d counts, want %d: %v", k, len(got), rounds, got)
		}
		for i, v := range got {
			if v != fmt.Sprint(i+1) {
				t.Fatalf("key %s: count #%d is %s: %v", k, i+1, v, got)
			}
		}
	}
}
