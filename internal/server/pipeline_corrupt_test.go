package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestPipelineCorruptMetadataFails: garbage under a pipeline's metadata key
// on its input partition (written through the store, as a replicated state
// write) stops the pipeline with state failed and the reason in its
// failure and partition status. It never restarts from position 0: the
// outputs are not emitted again, not even after a resume.
//
// The pipeline is at-least-once, whose outputs are appended directly: an
// exactly-once pipeline's re-emission would be hidden by the output
// partitions' producer-sequence dedup. Against the old code (loadPipeMeta
// ignored the decode error) this test fails: the worker took the zero
// metadata for a new start, processed the input again from offset 0 and
// dst held 6 records (verified on 2d79e94).
func TestPipelineCorruptMetadataFails(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "src", 1)
	createTopic(t, u, "dst", 1)
	uploadModule(t, u, "pass", "examples/passthrough")
	createPipeline(t, u, map[string]any{"name": "p", "module": "pass", "inputs": []string{"src"}, "outputs": []string{"dst"}})
	produce(t, u, "src", map[string]any{"value": "a"}, map[string]any{"value": "b"}, map[string]any{"value": "c"})
	waitCaughtUp(t, u, "p")
	if got := readAll(t, u, "dst"); len(got) != 3 {
		t.Fatalf("dst holds %d records before the corruption, want 3", len(got))
	}

	log, err := s.Broker.Store().Partition("src", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := log.ApplyTxn(ctx, &core.StateTxn{Ops: []core.StateOp{{Key: "pipe/p/meta", Value: []byte(`{"pos": garbage`)}}}); err != nil {
		t.Fatal(err)
	}

	type status struct {
		State    string `json:"state"`
		Pipeline struct {
			Failure *struct {
				Error     string `json:"error"`
				Topic     string `json:"topic"`
				Partition int    `json:"partition"`
			} `json:"failure"`
		} `json:"pipeline"`
		Partitions []struct {
			LastError string `json:"last_error"`
		} `json:"partitions"`
	}
	get := func() status {
		var st status
		r := tu.Do(t, "GET", u+"/v1/pipelines/p", nil)
		if r.Status != 200 {
			t.Fatalf("pipeline p: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &st)
		return st
	}
	// The fence: the worker either marks the pipeline failed or (the bug)
	// re-emits from position 0; either ends the wait.
	check := func(when string) {
		t.Helper()
		var st status
		tu.Eventually(t, 60*time.Second, "the pipeline to fail (or re-emit) "+when, func() bool {
			st = get()
			return st.State == core.PipelineFailed || len(readAll(t, u, "dst")) > 3
		})
		if got := readAll(t, u, "dst"); len(got) != 3 {
			t.Fatalf("%s: dst holds %d records, want the 3 emitted before the corruption (the pipeline restarted from 0)", when, len(got))
		}
		f := st.Pipeline.Failure
		if st.State != core.PipelineFailed || f == nil {
			t.Fatalf("%s: state %q, failure %+v", when, st.State, f)
		}
		if !strings.Contains(f.Error, "corrupt") || !strings.Contains(f.Error, "pipe/p/meta") || f.Topic != "src" || f.Partition != 0 {
			t.Fatalf("%s: failure %+v does not say which record is corrupt", when, f)
		}
		if len(st.Partitions) != 1 || !strings.Contains(st.Partitions[0].LastError, "corrupt") {
			t.Fatalf("%s: partition status %+v does not say why", when, st.Partitions)
		}
	}
	check("after the corruption")

	// A resume tries again and fails again: still no restart from 0.
	if r := tu.Do(t, "POST", u+"/v1/pipelines/p/resume", nil); r.Status != 200 {
		t.Fatalf("resume: %d %s", r.Status, r.Body)
	}
	check("after a resume")
}
