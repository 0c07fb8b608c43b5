package server

import (
	"testing"
	"time"
)

func TestTmpRestartResume(t *testing.T) {
	dir := t.TempDir()
	s := startNode(t, dir)
	u := s.URL()
	createTopic(t, u, "r", 1)
	produceN(t, u, "r", 3, 0, "x")
	stop(t, s)
	s = startNode(t, dir)
	defer stop(t, s)
	u = s.URL()
	c := dialWS(t, u, "/v1/ws", nil)
	c.send(map[string]any{"op": "subscribe", "id": "a", "topic": "r", "positions": []map[string]any{{"partition": 0, "offset": 2}}})
	m, _ := c.expect(0, "subscribed", "a")
	t.Logf("%s", m.raw)
	produceN(t, u, "r", 2, 0, "y")
	c.wait(10*time.Second, "records", func(msgs []wsMsg) bool { return countRecords(msgs, "a") == 3 })
}
