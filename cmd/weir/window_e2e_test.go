package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestEventTimeWindowsE2E runs the sessionize example (10 s tumbling
// windows, allowed lateness 2 s) in an exactly-once pipeline on a real
// node: out-of-order input within the lateness is counted, a late record
// and one without a user go to the dead-letter topic with their reasons,
// partition 1 goes idle and its last window still closes (by the
// pipeline's ticks, after the restart), and after a kill -9 mid-stream
// every window is emitted exactly once with its exact count.
func TestEventTimeWindowsE2E(t *testing.T) {
	dir := t.TempDir()
	p := tu.StartWeir(t, tu.FreeAddr(t), "--data-dir", dir, "--raft-addr", tu.FreeAddr(t), "--log-level", "warn")
	u := p.URL()
	for _, tp := range []string{"clicks", "sessions"} {
		if r := tu.Do(t, "POST", u+"/v1/topics", map[string]any{"name": tp, "partitions": 2}); r.Status != 201 {
			t.Fatalf("create %s: %d %s", tp, r.Status, r.Body)
		}
	}
	if r := tu.Do(t, "PUT", u+"/v1/modules/sessionize", tu.BuildWasm(t, "examples/sessionize"), "application/wasm"); r.Status != 201 {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", u+"/v1/pipelines", map[string]any{
		"name": "s", "module": "sessionize", "inputs": []string{"clicks"}, "outputs": []string{"sessions"},
		"guarantee": "exactly_once", "batch_size": 4, "tick_interval_ms": 50,
		"config": map[string]string{"lateness_ms": "2000", "idle_timeout_ms": "1000"},
	}); r.Status != 201 {
		t.Fatalf("pipeline: %d %s", r.Status, r.Body)
	}

	const base = int64(1_700_000_000_000) // a window boundary
	users := []string{"alice", "bob", "carol"}
	want := map[string]int{} // expected window records (JSON) → how many times
	// round r puts every event of a partition in one window, 100 s after the
	// previous round's, in one idempotent request: only the records the
	// test makes late are late, whatever the machine's pauses.
	round := func(part, r int) []map[string]any {
		start := base + int64(r)*100_000
		var recs []map[string]any
		offsets := []int64{1000, 3000, 2000, 5000, 4000, 8000, 7000, 9000} // out of order by 1 s < lateness
		k := 0
		for j, user := range users {
			n := (r+j+part)%3 + 1
			for range n {
				recs = append(recs, map[string]any{"partition": part, "timestamp": start + offsets[k%len(offsets)], "value": `{"user":"` + user + `"}`})
				k++
			}
			want[fmt.Sprintf(`{"user":%q,"window_start":%d,"window_end":%d,"count":%d}`, user, start, start+10_000, n)]++
		}
		return recs
	}
	seq := map[int]int{}
	produce := func(part int, recs []map[string]any) {
		body := map[string]any{"producer_id": fmt.Sprint("p", part), "sequence": seq[part], "records": recs}
		seq[part] += len(recs)
		tu.Eventually(t, 60*time.Second, "produce to be acknowledged", func() bool {
			r, err := tu.TryDo("POST", u+"/v1/topics/clicks/records", body)
			return err == nil && r.Status == 200
		})
	}
	// Round 0 of partition 0 also has a record without a user, one in the
	// next window (watermark +15000 - 2000) and then a late one.
	r0 := round(0, 0)
	r0 = append(r0,
		map[string]any{"partition": 0, "timestamp": base + 6000, "value": `{"page":"/"}`},
		map[string]any{"partition": 0, "timestamp": base + 15_000, "value": `{"user":"alice"}`},
		map[string]any{"partition": 0, "timestamp": base + 1000, "value": `{"user":"bob"}`},
	)
	want[fmt.Sprintf(`{"user":"alice","window_start":%d,"window_end":%d,"count":1}`, base+10_000, base+20_000)]++
	produce(0, r0)
	const half, rounds = 6, 12
	produce(1, round(1, 0))
	for r := 1; r < half; r++ {
		produce(0, round(0, r))
		produce(1, round(1, r)) // partition 1's last input: it goes idle
	}
	outputs := func() []string {
		var vals []string
		for part := 0; part < 2; part++ {
			var f struct{ Records []struct{ Value string } }
			r, err := tu.TryDo("GET", fmt.Sprintf("%s/v1/topics/sessions/partitions/%d/records?offset=earliest&max_records=10000", u, part), nil)
			if err != nil || r.Status != 200 {
				return nil
			}
			r.JSON(t, &f)
			for _, rec := range f.Records {
				vals = append(vals, rec.Value)
			}
		}
		return vals
	}
	// Kill while the pipeline is under way: some windows closed, not all.
	tu.Eventually(t, 60*time.Second, "first windows", func() bool { return len(outputs()) >= 3 })
	p.Kill()
	p.Restart(60 * time.Second)
	for r := half; r < rounds; r++ {
		produce(0, round(0, r))
	}
	total := 0
	for _, n := range want {
		total += n
	}
	// Every window closes, the last ones of both partitions by ticks: no
	// record comes after them.
	tu.Eventually(t, 90*time.Second, fmt.Sprintf("%d window records", total), func() bool { return len(outputs()) >= total })
	// The fence: positions at the high watermarks and the outbox shipped,
	// so a duplicate would be in the log now.
	awaitPipelineCaughtUp(t, u, "s", 2)
	got := map[string]int{}
	for _, v := range outputs() {
		got[v]++
	}
	for v, n := range want {
		if got[v] != n {
			t.Errorf("window %s: emitted %d times, want %d", v, got[v], n)
		}
	}
	for v, n := range got {
		if want[v] == 0 {
			t.Errorf("unexpected window %s (%d times)", v, n)
		}
	}
	checkSessionDeadLetters(t, u, base)
}

// checkSessionDeadLetters: the record without a user and the late one are
// in the dead-letter topic, each once, with the module's reason.
func checkSessionDeadLetters(t *testing.T, u string, base int64) {
	t.Helper()
	var f struct {
		Records []struct {
			Value   string            `json:"value"`
			Headers map[string]string `json:"headers"`
		} `json:"records"`
	}
	tu.Do(t, "GET", u+"/v1/topics/s.dlq/partitions/0/records?offset=earliest&max_records=100", nil).JSON(t, &f)
	if len(f.Records) != 2 {
		t.Fatalf("dead letters: %+v", f.Records)
	}
	nouser, late := f.Records[0], f.Records[1]
	if nouser.Value != `{"page":"/"}` || !strings.Contains(nouser.Headers["weir-last-error"], `no "user"`) || nouser.Headers["weir-dlq-reason"] != "rejected_by_module" {
		t.Fatalf("dead letter without a user: %+v", nouser)
	}
	reason := fmt.Sprintf("late: event time %d ms is before the watermark %d ms", base+1000, base+13_000)
	if late.Value != `{"user":"bob"}` || late.Headers["weir-last-error"] != reason {
		t.Fatalf("late dead letter: %+v, want reason %q", late, reason)
	}
}
