package server

import (
	"testing"

	tu "github.com/weir-broker/weir/internal/testutil"
)

func TestZZProbeFetchAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s := startNode(t, dir)
	createTopic(t, s.URL(), "gs", 1)
	tu.Do(t, "POST", s.URL()+"/v1/topics/gs/records", map[string]any{"records": []any{map[string]any{"value": "x"}}})
	stop(t, s)
	s = startNode(t, dir)
	defer stop(t, s)
	r := tu.Do(t, "GET", s.URL()+"/v1/topics/gs/partitions/0/records?offset=0", nil)
	t.Logf("fetch right after restart: %d %s", r.Status, r.Body)
}
