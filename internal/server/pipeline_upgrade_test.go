package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/core/auth"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// upgradePipeline is PATCH /v1/pipelines/NAME; it returns the new revision.
func upgradePipeline(t *testing.T, u, name string, body map[string]any) int {
	t.Helper()
	r := tu.Do(t, "PATCH", u+"/v1/pipelines/"+name, body)
	if r.Status != 200 {
		t.Fatalf("upgrade %s: %d %s", name, r.Status, r.Body)
	}
	var spec struct {
		Revision int `json:"revision"`
	}
	r.JSON(t, &spec)
	return spec.Revision
}

// waitSwitched is the fence after an upgrade: every input partition's
// worker has been told to run revision rev, so every batch read from then
// on (every record produced after the fence) runs under the new module.
func waitSwitched(t *testing.T, u, name string, rev int) {
	t.Helper()
	tu.Eventually(t, 60*time.Second, fmt.Sprintf("pipeline %s's workers to run revision %d", name, rev), func() bool {
		var st struct {
			Partitions []struct {
				Running        bool `json:"running"`
				WorkerRevision int  `json:"worker_revision"`
			} `json:"partitions"`
		}
		tu.Do(t, "GET", u+"/v1/pipelines/"+name, nil).JSON(t, &st)
		for _, p := range st.Partitions {
			if !p.Running || p.WorkerRevision != rev {
				return false
			}
		}
		return len(st.Partitions) > 0
	})
}

func values(rs []rec) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Value
	}
	return out
}

// TestPipelineUpgradeAtLeastOnce upgrades a stateful at-least-once
// pipeline from count to countv2: outputs before come from count, after
// from countv2, and the per-key counts go on. Then the fresh-start
// options: a delete keeps position and state for an explicit resume, a
// create without saying is refused, reset and purge start fresh.
func TestPipelineUpgradeAtLeastOnce(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "in", 1)
	createTopic(t, u, "out", 1)
	uploadModule(t, u, "count", "examples/count")
	uploadModule(t, u, "countv2", "internal/server/testdata/countv2")
	spec := map[string]any{"name": "c", "module": "count", "inputs": []string{"in"}, "outputs": []string{"out"}}
	createPipeline(t, u, spec)
	kv := func(k string) map[string]any { return map[string]any{"key": k, "value": "x"} }
	produce(t, u, "in", kv("a"), kv("b"), kv("a"))
	waitCaughtUp(t, u, "c")

	// Bad upgrades change nothing.
	for _, c := range []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{}, 400, "bad_request"},
		{map[string]any{"module": "nope"}, 404, "module_not_found"},
		{map[string]any{"module": "countv2", "version": 9}, 404, "module_not_found"},
		{map[string]any{"module": "countv2", "batch_size": -1}, 400, "bad_request"},
		{map[string]any{"module": "countv2", "inputs": []string{"x"}}, 400, "bad_request"}, // not changeable
	} {
		if r := tu.Do(t, "PATCH", u+"/v1/pipelines/c", c.body); r.Status != c.status || r.ErrorCode() != c.code {
			t.Fatalf("upgrade %v: %d %s, want %d %s", c.body, r.Status, r.Body, c.status, c.code)
		}
	}
	if r := tu.Do(t, "PATCH", u+"/v1/pipelines/nope", map[string]any{"module": "countv2"}); r.Status != 404 || r.ErrorCode() != "pipeline_not_found" {
		t.Fatalf("upgrade of a missing pipeline: %d %s", r.Status, r.Body)
	}

	rev := upgradePipeline(t, u, "c", map[string]any{"module": "countv2"})
	if rev != 1 {
		t.Fatalf("revision %d after the first upgrade", rev)
	}
	waitSwitched(t, u, "c", rev)
	produce(t, u, "in", kv("a"), kv("b"))
	waitCaughtUp(t, u, "c")
	want := []string{"1", "1", "2", "v2:3", "v2:2"}
	if got := values(readAll(t, u, "out")); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("outputs %v, want %v", got, want)
	}

	// Delete keeps position and state; a create resumes unless it says reset.
	if r := tu.Do(t, "DELETE", u+"/v1/pipelines/c", nil); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	spec["module"] = "countv2"
	both := map[string]any{"resume": true, "reset": true}
	for k, v := range spec {
		both[k] = v
	}
	if r := tu.Do(t, "POST", u+"/v1/pipelines", both); r.Status != 400 {
		t.Fatalf("resume and reset: %d %s", r.Status, r.Body)
	}
	with := func(k string) map[string]any {
		m := map[string]any{k: true}
		for k, v := range spec {
			m[k] = v
		}
		return m
	}
	// Resume: the position and counts go on.
	createPipeline(t, u, with("resume"))
	produce(t, u, "in", kv("a"))
	waitCaughtUp(t, u, "c")
	if got := values(readAll(t, u, "out")); len(got) != 6 || got[5] != "v2:4" {
		t.Fatalf("after resume: %v", got)
	}
	// Reset: from the beginning, with empty state.
	tu.Do(t, "DELETE", u+"/v1/pipelines/c", nil)
	createPipeline(t, u, with("reset"))
	waitCaughtUp(t, u, "c")
	want = []string{"v2:1", "v2:1", "v2:2", "v2:3", "v2:2", "v2:4"} // the 6 inputs again
	if got := values(readAll(t, u, "out")); strings.Join(got[6:], ",") != strings.Join(want, ",") {
		t.Fatalf("after reset: %v, want %v after the first 6", got, want)
	}
	// Purge: nothing is kept, a plain create starts fresh (here at the end).
	if r := tu.Do(t, "DELETE", u+"/v1/pipelines/c?purge=maybe", nil); r.Status != 400 {
		t.Fatalf("purge=maybe: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "DELETE", u+"/v1/pipelines/c?purge=true", nil); r.Status != 204 {
		t.Fatalf("delete with purge: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", u+"/v1/pipelines", with("resume")); r.Status != 404 {
		t.Fatalf("resume after purge: %d %s", r.Status, r.Body)
	}
	spec["from"] = "latest"
	createPipeline(t, u, spec)
	tu.Eventually(t, 60*time.Second, "the fresh pipeline to start at the high watermark", func() bool {
		st := pipelineStatus(t, u, "c")
		return len(st.Partitions) == 1 && st.Partitions[0].Position == 6
	})
	produce(t, u, "in", kv("a"))
	waitCaughtUp(t, u, "c")
	if got := values(readAll(t, u, "out")); len(got) != 13 || got[12] != "v2:1" {
		t.Fatalf("after purge: %v", got)
	}
}

// TestPipelineUpgradeExactlyOnce upgrades an exactly-once count while it
// works through its input: every key's counts are exactly 1..N, each
// written once, those of module A ("n") all before those of module B
// ("v2:n"), and every record produced after the switch is counted by B.
func TestPipelineUpgradeExactlyOnce(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "clicks", 2)
	createTopic(t, u, "counts", 2)
	uploadModule(t, u, "count", "examples/count")
	uploadModule(t, u, "countv2", "internal/server/testdata/countv2")
	createPipeline(t, u, map[string]any{"name": "c", "module": "count", "inputs": []string{"clicks"}, "outputs": []string{"counts"}, "guarantee": "exactly_once", "batch_size": 7})
	keys := []string{"u1", "u2", "u3", "u4"}
	send := func(n int) { sendClicks(t, u, "clicks", keys, n) }
	send(25)
	// Mid-stream: some counts are out, typically not all.
	tu.Eventually(t, 60*time.Second, "some counts", func() bool { return len(readAll(t, u, "counts")) > 10 })
	rev := upgradePipeline(t, u, "c", map[string]any{"module": "countv2"})
	waitSwitched(t, u, "c", rev)
	send(25)
	waitCaughtUp(t, u, "c")
	per := map[string][]string{}
	for _, r := range readAll(t, u, "counts") {
		per[*r.Key] = append(per[*r.Key], r.Value)
	}
	sawA := false
	for _, k := range keys {
		vals := per[k]
		if len(vals) != 50 {
			t.Fatalf("key %s: %d counts, want 50 (duplicates or gaps): %v", k, len(vals), vals)
		}
		b := false
		for i, v := range vals {
			n := fmt.Sprint(i + 1)
			switch v {
			case n:
				if b {
					t.Fatalf("key %s: module A's count %s after module B's: %v", k, v, vals)
				}
				sawA = true
			case "v2:" + n:
				b = true
			default:
				t.Fatalf("key %s: count #%d is %s: %v", k, i+1, v, vals)
			}
		}
		if !strings.HasPrefix(vals[25], "v2:") {
			t.Fatalf("key %s: a record produced after the switch was counted by module A: %v", k, vals)
		}
	}
	if !sawA {
		t.Fatalf("no output of module A: %v", per)
	}
}

// TestPipelineUpgradeRights: an upgrade needs alter on the pipeline, read
// on the new module and what creating the pipeline needed on its topics;
// the pipeline goes on running as its creator. Its logs need read on it.
func TestPipelineUpgradeRights(t *testing.T) {
	s := securedNode(t)
	defer stop(t, s)
	admin := newSecClient(t, s.URL(), testAdminToken, nil)
	for _, tp := range []string{"uin", "uout"} {
		admin.expect(201, "POST", "/v1/topics", map[string]any{"name": tp, "replication_factor": 1})
	}
	admin.expect(201, "PUT", "/v1/modules/pass", tu.BuildWasm(t, "examples/passthrough"))
	admin.expect(201, "PUT", "/v1/modules/countv2", tu.BuildWasm(t, "internal/server/testdata/countv2"))
	erin := admin.with(createToken(t, admin, "erin"))
	addACL(t, admin, "erin", auth.Pipeline, "up", auth.Literal, auth.Create)
	addACL(t, admin, "erin", auth.Module, "pass", auth.Literal, auth.Read)
	addACL(t, admin, "erin", auth.Topic, "uin", auth.Literal, auth.Read)
	addACL(t, admin, "erin", auth.Topic, "uout", auth.Literal, auth.Write)
	addACL(t, admin, "erin", auth.Topic, "up.dlq", auth.Literal, auth.Write)
	erin.expect(201, "POST", "/v1/pipelines", map[string]any{"name": "up", "module": "pass", "inputs": []string{"uin"}, "outputs": []string{"uout"}})

	ulla := admin.with(createToken(t, admin, "ulla"))
	body := map[string]any{"module": "countv2"}
	ulla.expect(403, "PATCH", "/v1/pipelines/up", body) // no alter
	addACL(t, admin, "ulla", auth.Pipeline, "up", auth.Literal, auth.Alter)
	ulla.expect(403, "PATCH", "/v1/pipelines/up", body) // no read on countv2
	addACL(t, admin, "ulla", auth.Module, "countv2", auth.Literal, auth.Read)
	ulla.expect(403, "PATCH", "/v1/pipelines/up", body) // no rights on the topics
	addACL(t, admin, "ulla", auth.Topic, "uin", auth.Literal, auth.Read)
	addACL(t, admin, "ulla", auth.Topic, "uout", auth.Literal, auth.Write)
	ulla.expect(403, "PATCH", "/v1/pipelines/up", body) // not the dead-letter topic either
	addACL(t, admin, "ulla", auth.Topic, "up.dlq", auth.Literal, auth.Write)
	var spec struct {
		Module    string `json:"module"`
		Principal string `json:"principal"`
		Revision  int    `json:"revision"`
	}
	ulla.expect(200, "PATCH", "/v1/pipelines/up", body).JSON(t, &spec)
	if spec.Module != "countv2" || spec.Principal != "erin" || spec.Revision != 1 {
		t.Fatalf("upgraded: %+v, want countv2 run by erin at revision 1", spec)
	}
	ulla.expect(403, "GET", "/v1/pipelines/up/logs", nil) // alter is not read
	addACL(t, admin, "ulla", auth.Pipeline, "up", auth.Literal, auth.Read)
	ulla.expect(200, "GET", "/v1/pipelines/up/logs", nil)
}
