package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestPipelineCLIUpgradeAndLogs drives `weir pipeline upgrade`, `logs`,
// `delete [--purge]` and `create --reset|--resume` against the binary.
func TestPipelineCLIUpgradeAndLogs(t *testing.T) {
	dir := t.TempDir()
	p := tu.StartWeir(t, tu.FreeAddr(t), "--data-dir", dir, "--raft-addr", tu.FreeAddr(t), "--log-level", "warn")
	u := p.URL()
	run, must := weirCLI(t, u) // cli_test.go
	for name, pkg := range map[string]string{"count": "examples/count", "countv2": "internal/server/testdata/countv2"} {
		f := filepath.Join(dir, name+".wasm")
		if err := os.WriteFile(f, tu.BuildWasm(t, pkg), 0o644); err != nil {
			t.Fatal(err)
		}
		must("module", "upload", name, f)
	}
	must("topic", "create", "cin")
	must("topic", "create", "cout")
	must("pipeline", "create", "pc", "--module", "count", "--input", "cin", "--output", "cout")
	outputs := func(n int) []string {
		t.Helper()
		var vals []string
		tu.Eventually(t, 60*time.Second, "outputs", func() bool {
			var f struct{ Records []struct{ Value string } }
			tu.Do(t, "GET", u+"/v1/topics/cout/partitions/0/records?offset=earliest&max_records=100", nil).JSON(t, &f)
			vals = vals[:0]
			for _, r := range f.Records {
				vals = append(vals, r.Value)
			}
			return len(vals) >= n
		})
		return vals
	}
	must("produce", "cin", "--key", "k", "x")
	outputs(1)
	if out := must("pipeline", "upgrade", "pc", "--module", "countv2"); !strings.Contains(out, `"revision": 1`) {
		t.Fatalf("upgrade: %s", out)
	}
	tu.Eventually(t, 60*time.Second, "the worker to run revision 1", func() bool {
		var st struct {
			Partitions []struct {
				Running        bool `json:"running"`
				WorkerRevision int  `json:"worker_revision"`
			} `json:"partitions"`
		}
		tu.Do(t, "GET", u+"/v1/pipelines/pc", nil).JSON(t, &st)
		return len(st.Partitions) == 1 && st.Partitions[0].Running && st.Partitions[0].WorkerRevision == 1
	})
	must("produce", "cin", "--key", "k", "x")
	if got := outputs(2); strings.Join(got, ",") != "1,v2:2" {
		t.Fatalf("outputs %v, want 1,v2:2", got)
	}
	if out := must("pipeline", "logs", "pc"); !strings.Contains(out, "counted k = 2") || !strings.Contains(out, "countv2@1 cin/0 [1-1]") {
		t.Fatalf("logs: %s", out)
	}
	if out := must("transform", "logs", "pc", "--after", "1"); strings.TrimSpace(out) != "" {
		t.Fatalf("logs after the last line: %q", out)
	}
	must("pipeline", "delete", "pc")
	must("pipeline", "create", "pc", "--module", "countv2", "--input", "cin", "--output", "cout", "--reset")
	if got := outputs(4); strings.Join(got[2:], ",") != "v2:1,v2:2" {
		t.Fatalf("after --reset: %v", got)
	}
	must("pipeline", "delete", "pc", "--purge")
	if out, err := run("pipeline", "create", "pc", "--module", "countv2", "--input", "cin", "--output", "cout", "--resume"); err == nil || !strings.Contains(out, "pipeline_not_found") {
		t.Fatalf("--resume after --purge: %v %s", err, out)
	}
}
