package server

import (
	"testing"

	tu "github.com/weir-broker/weir/internal/testutil"
)

type guestLogs struct {
	Lines []struct {
		Seq        int64  `json:"seq"`
		Level      string `json:"level"`
		Message    string `json:"message"`
		Module     string `json:"module"`
		Topic      string `json:"topic"`
		Partition  int    `json:"partition"`
		Offset     int64  `json:"offset"`
		LastOffset int64  `json:"last_offset"`
	} `json:"lines"`
	Next int64 `json:"next"`
}

// TestPipelineLogs: the lines a module logs are served by GET
// /v1/pipelines/{name}/logs with the batch's topic, partition and offsets,
// and a request after the last line long-polls for the next one.
func TestPipelineLogs(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "gin", 1)
	createTopic(t, u, "gout", 1)
	uploadModule(t, u, "countv2", "internal/server/testdata/countv2")
	createPipeline(t, u, map[string]any{"name": "lg", "module": "countv2", "inputs": []string{"gin"}, "outputs": []string{"gout"}})
	produce(t, u, "gin", map[string]any{"key": "a", "value": "x"}, map[string]any{"key": "b", "value": "x"})
	waitCaughtUp(t, u, "lg") // the lines are kept before the batch commits

	var got guestLogs
	tu.Do(t, "GET", u+"/v1/pipelines/lg/logs", nil).JSON(t, &got)
	if len(got.Lines) != 2 || got.Next != 2 {
		t.Fatalf("logs: %+v", got)
	}
	for i, want := range []string{"counted a = 1", "counted b = 1"} {
		l := got.Lines[i]
		if l.Message != want || l.Level != "INFO" || l.Module != "countv2" || l.Topic != "gin" || l.Partition != 0 || l.Seq != int64(i+1) || l.Offset > int64(i) || l.LastOffset < int64(i) {
			t.Fatalf("line %d: %+v, want %q", i, l, want)
		}
	}

	// Follow: a long poll after the last line answers with the next one.
	done := make(chan guestLogs, 1)
	go func() {
		var next guestLogs
		tu.Do(t, "GET", u+"/v1/pipelines/lg/logs?after=2&wait_ms=30000", nil).JSON(t, &next)
		done <- next
	}()
	produce(t, u, "gin", map[string]any{"key": "a", "value": "x"})
	next := <-done
	if len(next.Lines) == 0 || next.Lines[0].Message != "counted a = 2" || next.Lines[0].Seq != 3 || next.Lines[0].Offset != 2 {
		t.Fatalf("followed: %+v", next)
	}

	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/pipelines/nope/logs", 404, "pipeline_not_found"},
		{"/v1/pipelines/lg/logs?after=x", 400, "bad_request"},
		{"/v1/pipelines/lg/logs?wait_ms=99999999", 400, "bad_request"},
	} {
		if r := tu.Do(t, "GET", u+c.path, nil); r.Status != c.status || r.ErrorCode() != c.code {
			t.Fatalf("%s: %d %s", c.path, r.Status, r.Body)
		}
	}
}
