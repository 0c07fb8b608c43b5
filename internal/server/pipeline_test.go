package server

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

func uploadModule(t *testing.T, u, name, pkg string) {
	t.Helper()
	r := tu.Do(t, "PUT", u+"/v1/modules/"+name, tu.BuildWasm(t, pkg), "application/wasm")
	if r.Status != 201 {
		t.Fatalf("upload %s: %d %s", name, r.Status, r.Body)
	}
}

func createPipeline(t *testing.T, u string, spec map[string]any) {
	t.Helper()
	r := tu.Do(t, "POST", u+"/v1/pipelines", spec)
	if r.Status != 201 {
		t.Fatalf("create pipeline: %d %s", r.Status, r.Body)
	}
}

func produce(t *testing.T, u, topic string, recs ...map[string]any) {
	t.Helper()
	var list []any
	for _, r := range recs {
		list = append(list, r)
	}
	if r := tu.Do(t, "POST", u+"/v1/topics/"+topic+"/records", map[string]any{"records": list}); r.Status != 200 {
		t.Fatalf("produce: %d %s", r.Status, r.Body)
	}
}

type rec struct {
	Offset  int64             `json:"offset"`
	Key     *string           `json:"key"`
	Value   string            `json:"value"`
	Headers map[string]string `json:"headers"`
}

// readAll returns every record of a topic (all partitions).
// sendClicks produces n rounds of one "click" per key to topic.
func sendClicks(t *testing.T, u, topic string, keys []string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		var recs []map[string]any
		for _, k := range keys {
			recs = append(recs, map[string]any{"key": k, "value": "click"})
		}
		produce(t, u, topic, recs...)
	}
}

func readAll(t *testing.T, u, topic string) []rec {
	t.Helper()
	var meta struct {
		Partitions []struct{ Partition int } `json:"partitions"`
	}
	tu.Do(t, "GET", u+"/v1/topics/"+topic, nil).JSON(t, &meta)
	var out []rec
	for _, p := range meta.Partitions {
		var f struct{ Records []rec }
		tu.Do(t, "GET", fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=earliest&max_records=10000", u, topic, p.Partition), nil).JSON(t, &f)
		out = append(out, f.Records...)
	}
	return out
}

func waitRecords(t *testing.T, u, topic string, n int) []rec {
	t.Helper()
	var got []rec
	tu.Eventually(t, 60*time.Second, fmt.Sprintf("%d records in %s", n, topic), func() bool {
		got = readAll(t, u, topic)
		return len(got) >= n
	})
	return got
}

// pipeStatus is GET /v1/pipelines/NAME.
type pipeStatus struct {
	Partitions []struct {
		Position int64 `json:"position"`
		Lag      int64 `json:"lag"`
		Running  bool  `json:"running"`
		Pending  int   `json:"pending_outbox"`
	} `json:"partitions"`
}

func pipelineStatus(t *testing.T, u, name string) pipeStatus {
	t.Helper()
	var st pipeStatus
	r := tu.Do(t, "GET", u+"/v1/pipelines/"+name, nil)
	if r.Status != 200 {
		t.Fatalf("pipeline %s: %d %s", name, r.Status, r.Body)
	}
	r.JSON(t, &st)
	return st
}

// waitCaughtUp is the fence before asserting a pipeline's outputs whole:
// it waits until the pipeline's committed position on every input
// partition has reached the partition's high watermark (as of the status
// read, so past every record produced before the call) and its outbox is
// shipped. After it, the outputs of those inputs are all written, and
// anything more would be a bug, not a late arrival.
func waitCaughtUp(t *testing.T, u, name string) {
	t.Helper()
	tu.Eventually(t, 60*time.Second, "pipeline "+name+" to reach its inputs' high watermarks", func() bool {
		st := pipelineStatus(t, u, name)
		for _, p := range st.Partitions {
			if p.Lag != 0 || p.Pending != 0 {
				return false
			}
		}
		return len(st.Partitions) > 0
	})
}

func TestPipelineExamplesEndToEnd(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	for _, tp := range []string{"in", "kept", "clean", "eu", "us", "counts", "metrics", "windows", "csv", "rows"} {
		createTopic(t, u, tp, 1)
	}
	uploadModule(t, u, "filter", "examples/filter")
	uploadModule(t, u, "redact", "examples/redact")
	uploadModule(t, u, "route", "examples/route")
	uploadModule(t, u, "window", "examples/window")
	uploadModule(t, u, "etl", "examples/etl")
	createPipeline(t, u, map[string]any{"name": "f", "module": "filter", "inputs": []string{"in"}, "outputs": []string{"kept"}, "config": map[string]string{"field": "country", "equals": "eu"}})
	createPipeline(t, u, map[string]any{"name": "r", "module": "redact", "inputs": []string{"in"}, "outputs": []string{"clean"}, "config": map[string]string{"fields": "card,email"}})
	createPipeline(t, u, map[string]any{"name": "ro", "module": "route", "inputs": []string{"in"}, "outputs": []string{"us", "eu"}, "config": map[string]string{"field": "country"}})
	produce(t, u, "in",
		map[string]any{"key": "a", "value": `{"country":"eu","card":"4111","email":"a@x"}`},
		map[string]any{"key": "b", "value": `{"country":"us","card":"5500","email":"b@x"}`},
		map[string]any{"key": "c", "value": `{"country":"mars","card":"1","email":"c@x"}`},
	)
	for _, pl := range []string{"f", "r", "ro"} {
		waitCaughtUp(t, u, pl) // exact counts below: nothing more may come
	}
	kept := readAll(t, u, "kept")
	if len(kept) != 1 || !strings.Contains(kept[0].Value, `"eu"`) {
		t.Fatalf("filter kept %+v", kept)
	}
	clean := readAll(t, u, "clean")
	if len(clean) != 3 {
		t.Fatalf("redact wrote %d records, want 3", len(clean))
	}
	for _, r := range clean {
		var v map[string]any
		json.Unmarshal([]byte(r.Value), &v)
		if v["card"] != "***" || v["email"] != "***" || v["country"] == "***" {
			t.Fatalf("redact: %s", r.Value)
		}
	}
	eu, us := readAll(t, u, "eu"), readAll(t, u, "us")
	if len(eu) != 1 || len(us) != 2 { // mars is not an output: the first output (us)
		t.Fatalf("route: eu %v us %v", eu, us)
	}

	// window: tumbling windows by event time, emitted when the watermark passes.
	createPipeline(t, u, map[string]any{"name": "w", "module": "window", "inputs": []string{"metrics"}, "outputs": []string{"windows"}, "config": map[string]string{"size_ms": "1000", "lateness_ms": "0", "idle_timeout_ms": "-1"}})
	for _, m := range []struct {
		ts  int64
		val float64
	}{{1000, 1}, {1500, 3}, {1999, 2}, {2500, 10}, {3100, 0}} {
		produce(t, u, "metrics", map[string]any{"value": fmt.Sprintf(`{"name":"cpu","value":%v}`, m.val), "timestamp": m.ts})
	}
	waitCaughtUp(t, u, "w")
	wins := readAll(t, u, "windows")
	if len(wins) != 2 { // [1000,2000) and [2000,3000) closed; [3000,4000) open
		t.Fatalf("windows: %+v", wins)
	}
	var w0 map[string]any
	json.Unmarshal([]byte(wins[0].Value), &w0)
	if w0["window_start"] != float64(1000) || w0["count"] != float64(3) || w0["sum"] != float64(6) || w0["min"] != float64(1) || w0["max"] != float64(3) {
		t.Fatalf("first window %s", wins[0].Value)
	}

	// etl: CSV to typed JSON; a malformed line goes to the dead-letter topic.
	createPipeline(t, u, map[string]any{"name": "e", "module": "etl", "inputs": []string{"csv"}, "outputs": []string{"rows"}, "config": map[string]string{"columns": "id:int,name:string,price:float"}})
	produce(t, u, "csv", map[string]any{"value": "1,apple,0.5"}, map[string]any{"value": "oops"}, map[string]any{"value": "2,pear,1.25"})
	waitCaughtUp(t, u, "e")
	rows := readAll(t, u, "rows")
	if len(rows) != 2 {
		t.Fatalf("etl rows: %+v", rows)
	}
	var row map[string]any
	json.Unmarshal([]byte(rows[0].Value), &row)
	if row["id"] != float64(1) || row["name"] != "apple" || row["price"] != 0.5 {
		t.Fatalf("etl row %s", rows[0].Value)
	}
	dead := readAll(t, u, "e.dlq")
	if len(dead) != 1 || dead[0].Value != "oops" || dead[0].Headers["weir-source-topic"] != "csv" || dead[0].Headers["weir-source-offset"] != "1" || dead[0].Headers["weir-pipeline"] != "e" {
		t.Fatalf("etl dead letter %+v", dead[0])
	}

	// Status shows positions and counts.
	var st struct {
		Processed  int64 `json:"processed"`
		Lag        int64 `json:"lag"`
		Partitions []struct {
			Position int64 `json:"position"`
		} `json:"partitions"`
	}
	tu.Eventually(t, 20*time.Second, "status of e", func() bool {
		tu.Do(t, "GET", u+"/v1/pipelines/e", nil).JSON(t, &st)
		return st.Processed == 3 && st.Lag == 0 && st.Partitions[0].Position == 3
	})
}

func TestPipelineCountExactlyOnceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s := startNode(t, dir)
	u := s.URL()
	createTopic(t, u, "clicks", 2)
	createTopic(t, u, "click-counts", 2)
	uploadModule(t, u, "count", "examples/count")
	createPipeline(t, u, map[string]any{"name": "c", "module": "count", "inputs": []string{"clicks"}, "outputs": []string{"click-counts"}, "guarantee": "exactly_once", "batch_size": 7})
	keys := []string{"u1", "u2", "u3", "u4"}
	send := func(n int) { sendClicks(t, u, "clicks", keys, n) }
	send(25)
	// Stop the node in the middle of the stream (the pipeline is mid-way).
	tu.Eventually(t, 60*time.Second, "some counts", func() bool { return len(readAll(t, u, "click-counts")) > 10 })
	stop(t, s)
	s = startNode(t, dir)
	defer stop(t, s)
	u = s.URL()
	send(25)
	// The fence: the pipeline's committed positions are at the inputs'
	// high watermarks and its outbox is shipped, so every count it will
	// ever write for these 200 clicks is written; a duplicate would be here.
	waitCaughtUp(t, u, "c")
	got := readAll(t, u, "click-counts")
	per := map[string][]string{}
	for _, r := range got {
		per[*r.Key] = append(per[*r.Key], r.Value)
	}
	for _, k := range keys {
		vals := per[k]
		if len(vals) != 50 {
			t.Fatalf("key %s: %d counts, want 50 (duplicates or gaps): %v", k, len(vals), vals)
		}
		for i, v := range vals {
			if v != fmt.Sprint(i+1) {
				t.Fatalf("key %s: count #%d is %s: %v", k, i+1, v, vals)
			}
		}
	}
}

func TestPipelineLoopingModuleDeadLettersWhileOthersFlow(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "cmds", 1)
	createTopic(t, u, "cmd-out", 1)
	createTopic(t, u, "plain", 1)
	createTopic(t, u, "plain-out", 1)
	uploadModule(t, u, "guest", "plugins/testdata/guest")
	uploadModule(t, u, "pass", "examples/passthrough")
	createPipeline(t, u, map[string]any{"name": "bad", "module": "guest", "inputs": []string{"cmds"}, "outputs": []string{"cmd-out"},
		"limits": map[string]any{"batch_timeout_ms": 300}, "on_error": map[string]any{"max_attempts": 2, "initial_backoff_ms": 50}})
	createPipeline(t, u, map[string]any{"name": "good", "module": "pass", "inputs": []string{"plain"}, "outputs": []string{"plain-out"}})
	start := time.Now()
	produce(t, u, "cmds", map[string]any{"key": "x", "value": "loop"})
	for i := 0; i < 5; i++ {
		produce(t, u, "plain", map[string]any{"value": fmt.Sprint("p", i)})
	}
	// The other pipeline keeps flowing while the looping one is stuck.
	waitRecords(t, u, "plain-out", 5)
	dead := waitRecords(t, u, "bad.dlq", 1)
	h := dead[0].Headers
	if dead[0].Value != "loop" || h["weir-attempts"] != "2" || h["weir-source-topic"] != "cmds" || h["weir-module"] != "guest" || h["weir-module-version"] != "1" || h["weir-last-error"] == "" {
		t.Fatalf("dead letter: %+v", dead[0])
	}
	t.Logf("looping batch dead-lettered after %s (2 attempts of 300 ms)", time.Since(start))
	// The pipeline moves on past the bad record.
	produce(t, u, "cmds", map[string]any{"key": "y", "value": "echo hi"})
	out := waitRecords(t, u, "cmd-out", 1)
	vals := []string{}
	for _, r := range out {
		vals = append(vals, r.Value)
	}
	sort.Strings(vals)
	var st struct {
		Failed       int64 `json:"failed"`
		DeadLettered int64 `json:"dead_lettered"`
	}
	tu.Do(t, "GET", u+"/v1/pipelines/bad", nil).JSON(t, &st)
	if st.Failed < 2 || st.DeadLettered != 1 {
		t.Fatalf("status %+v, outputs %v", st, vals)
	}
}

func TestPipelineAPIErrors(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "a", 1)
	createTopic(t, u, "b", 1)
	cases := []struct {
		name, method, path string
		body               any
		ct                 string
		status             int
		code               string
	}{
		{"junk module", "PUT", "/v1/modules/j", []byte("not wasm at all"), "application/wasm", 400, "module_invalid"},
		{"empty module", "PUT", "/v1/modules/j", []byte{}, "application/wasm", 400, "module_invalid"},
		{"wasm header only", "PUT", "/v1/modules/j", []byte{0, 'a', 's', 'm', 1, 0, 0, 0}, "application/wasm", 400, "module_invalid"},
		{"bad module name", "PUT", "/v1/modules/a%20b", []byte{0, 'a', 's', 'm'}, "application/wasm", 400, "bad_request"},
		{"missing module", "GET", "/v1/modules/nope", nil, "", 404, "module_not_found"},
		{"pipeline of missing module", "POST", "/v1/pipelines", map[string]any{"name": "p", "module": "nope", "inputs": []string{"a"}, "outputs": []string{"b"}}, "", 404, "module_not_found"},
		{"missing pipeline", "GET", "/v1/pipelines/nope", nil, "", 404, "pipeline_not_found"},
		{"pause missing pipeline", "POST", "/v1/pipelines/nope/pause", nil, "", 404, "pipeline_not_found"},
		{"unknown field", "POST", "/v1/pipelines", map[string]any{"nme": "p"}, "", 400, "bad_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r *tu.Response
			if c.ct != "" {
				r = tu.Do(t, c.method, u+c.path, c.body, c.ct)
			} else {
				r = tu.Do(t, c.method, u+c.path, c.body)
			}
			if r.Status != c.status || r.ErrorCode() != c.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
		})
	}
	uploadModule(t, u, "pass", "examples/passthrough")
	for _, bad := range []map[string]any{
		{"name": "p", "module": "pass", "inputs": []string{"a"}, "outputs": []string{"a"}},
		{"name": "p", "module": "pass", "inputs": []string{}, "outputs": []string{"b"}},
		{"name": "p", "module": "pass", "inputs": []string{"a"}, "outputs": []string{"b"}, "guarantee": "twice"},
		{"name": "p", "module": "pass", "inputs": []string{"nope"}, "outputs": []string{"b"}},
	} {
		if r := tu.Do(t, "POST", u+"/v1/pipelines", bad); r.Status/100 != 4 {
			t.Fatalf("%v: %d %s", bad, r.Status, r.Body)
		}
	}
	createPipeline(t, u, map[string]any{"name": "p", "module": "pass", "inputs": []string{"a"}, "outputs": []string{"b"}})
	if r := tu.Do(t, "POST", u+"/v1/pipelines", map[string]any{"name": "p", "module": "pass", "inputs": []string{"a"}, "outputs": []string{"b"}}); r.Status != 409 {
		t.Fatalf("duplicate pipeline: %d %s", r.Status, r.Body)
	}
	// Pause stops processing; resume continues from the position.
	if r := tu.Do(t, "POST", u+"/v1/pipelines/p/pause", nil); r.Status != 200 {
		t.Fatalf("pause: %d %s", r.Status, r.Body)
	}
	// Fences for "a paused pipeline does not move": its worker has stopped
	// (the runner applied the pause) before the record is produced, and a
	// second pipeline on the same input, created after the produce, has
	// processed the record, so the runner has resynced since and could
	// have restarted p.
	tu.Eventually(t, 30*time.Second, "paused pipeline's worker to stop", func() bool {
		for _, p := range pipelineStatus(t, u, "p").Partitions {
			if p.Running {
				return false
			}
		}
		return true
	})
	produce(t, u, "a", map[string]any{"value": "1"})
	createTopic(t, u, "witness", 1)
	createPipeline(t, u, map[string]any{"name": "witness", "module": "pass", "inputs": []string{"a"}, "outputs": []string{"witness"}})
	waitCaughtUp(t, u, "witness")
	if got := readAll(t, u, "b"); len(got) != 0 {
		t.Fatalf("paused pipeline produced %v", got)
	}
	if st := pipelineStatus(t, u, "p"); st.Partitions[0].Position != 0 || st.Partitions[0].Running {
		t.Fatalf("paused pipeline moved: %+v", st)
	}
	tu.Do(t, "POST", u+"/v1/pipelines/p/resume", nil)
	waitRecords(t, u, "b", 1)
	if r := tu.Do(t, "DELETE", u+"/v1/modules/pass", nil); r.Status != 400 {
		t.Fatalf("deleting a module in use: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "DELETE", u+"/v1/pipelines/p", nil); r.Status != 204 {
		t.Fatalf("delete pipeline: %d %s", r.Status, r.Body)
	}
}

// TestPipelineFromLatest: a pipeline created with "from":"latest" skips
// what its input held at creation and processes everything after. (Its
// start was kept only in memory and moved with every new record, so it
// never processed anything.)
func TestPipelineFromLatest(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "src", 1)
	createTopic(t, u, "dst", 1)
	uploadModule(t, u, "pass", "examples/passthrough")
	produce(t, u, "src", map[string]any{"value": "old-1"}, map[string]any{"value": "old-2"})
	createPipeline(t, u, map[string]any{"name": "late", "module": "pass", "inputs": []string{"src"}, "outputs": []string{"dst"}, "from": "latest"})
	tu.Eventually(t, 60*time.Second, "the pipeline to fix its start at the high watermark", func() bool {
		st := pipelineStatus(t, u, "late")
		return len(st.Partitions) == 1 && st.Partitions[0].Position == 2
	})
	produce(t, u, "src", map[string]any{"value": "new-1"}, map[string]any{"value": "new-2"})
	waitCaughtUp(t, u, "late")
	got := readAll(t, u, "dst")
	if len(got) != 2 || got[0].Value != "new-1" || got[1].Value != "new-2" {
		t.Fatalf("dst holds %+v, want new-1 and new-2 only", got)
	}

	// A partition added to the input later starts at its log start: the
	// record written to it while the pipeline was paused (before its
	// worker could fix a "latest" start) is processed, not skipped.
	tu.Do(t, "POST", u+"/v1/pipelines/late/pause", nil)
	if r := tu.Do(t, "POST", u+"/v1/topics/src/partitions", map[string]any{"partitions": 2}); r.Status != 200 {
		t.Fatalf("grow src: %d %s", r.Status, r.Body)
	}
	produce(t, u, "src", map[string]any{"value": "grown-1", "partition": 1})
	tu.Do(t, "POST", u+"/v1/pipelines/late/resume", nil)
	tu.Eventually(t, 60*time.Second, "the pipeline to run on both partitions", func() bool {
		return len(pipelineStatus(t, u, "late").Partitions) == 2
	})
	waitCaughtUp(t, u, "late")
	got = readAll(t, u, "dst")
	if len(got) != 3 || got[2].Value != "grown-1" {
		t.Fatalf("dst holds %+v, want new-1, new-2 and grown-1", got)
	}
}
