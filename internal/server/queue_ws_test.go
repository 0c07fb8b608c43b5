package server

import (
	"encoding/json"
	"testing"
	"time"
)

// wsQueueFrame is a queue frame: messages, or the results of ack/nack/extend.
type wsQueueFrame struct {
	Op           string    `json:"op"`
	ID           string    `json:"id"`
	Sub          string    `json:"sub"`
	Subscription string    `json:"subscription"`
	Messages     []qmsg    `json:"messages"`
	Results      []qresult `json:"results"`
}

func decodeQueueFrame(t *testing.T, m wsMsg) wsQueueFrame {
	t.Helper()
	var f wsQueueFrame
	if err := json.Unmarshal([]byte(m.raw), &f); err != nil {
		t.Fatalf("frame %s: %v", m.raw, err)
	}
	return f
}

// queueMessages returns the messages of sub received so far.
func queueMessages(t *testing.T, c *wsClient, sub string) []qmsg {
	var out []qmsg
	for _, m := range c.snapshot() {
		if m.Op == "messages" && m.Sub == sub {
			out = append(out, decodeQueueFrame(t, m).Messages...)
		}
	}
	return out
}

// A WebSocket subscribe with "subscription" receives leased messages within
// its credit; ack and nack frames answer receipts and give credit back.
func TestQueueWebSocket(t *testing.T) {
	s := startNode(t, t.TempDir(), fastQueues)
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "wq", 1)
	createSub(t, u, "wq", map[string]any{"name": "s", "visibility_timeout_ms": 10000,
		"backoff": map[string]any{"initial_ms": 0, "max_ms": 0, "multiplier": 1}})
	var recs []map[string]any
	for _, v := range []string{"a", "b", "c", "d", "e"} {
		recs = append(recs, map[string]any{"value": v})
	}
	produceJSON(t, u, "wq", recs...)

	c := dialWS(t, u, "/v1/ws", nil)
	c.send(map[string]any{"op": "subscribe", "id": "bad", "topic": "wq", "subscription": "nope"})
	if m, _ := c.expect(0, "error", "bad"); m.Error.Code != "subscription_not_found" {
		t.Fatalf("subscribe to a missing subscription: %s", m.raw)
	}
	c.send(map[string]any{"op": "subscribe", "id": "q1", "topic": "wq", "subscription": "s", "credit": 3})
	if m, _ := c.expect(0, "subscribed", "q1"); decodeQueueFrame(t, m).Subscription != "s" {
		t.Fatalf("subscribed: %s", m.raw)
	}
	c.wait(10*time.Second, "3 messages", func([]wsMsg) bool { return len(queueMessagesLocked(c, "q1")) >= 3 })
	got := queueMessages(t, c, "q1")[:3]
	if got[0].Value != "a" || got[0].Attempt != 1 || got[0].Receipt == "" {
		t.Fatalf("within credit 3: %+v", got)
	}

	// Ack two: their credit comes back and the next two arrive. That
	// nothing came beyond the credit before is checked without waiting for
	// an absence: every message is leased just before it is sent, stamped
	// with the lease time (its expiry less the visibility timeout, by the
	// same clock as ours), so a message sent beyond the credit would have
	// been leased before the ack that gave the credit back was sent.
	const visibility = 10000 // ms, the subscription's
	ackSent := time.Now().UnixMilli()
	c.send(map[string]any{"op": "ack", "id": "a1", "sub": "q1", "receipts": []string{got[0].Receipt, got[1].Receipt}})
	m, _ := c.expect(0, "acked", "a1")
	if res := decodeQueueFrame(t, m).Results; len(res) != 2 || res[0].Status != "ok" || res[1].Status != "ok" {
		t.Fatalf("acked: %s", m.raw)
	}
	c.wait(10*time.Second, "5 messages", func([]wsMsg) bool { return len(queueMessagesLocked(c, "q1")) >= 5 })
	for _, m := range queueMessages(t, c, "q1")[3:] {
		if leased := m.LeaseExpiresAt - visibility; leased < ackSent {
			t.Fatalf("message %q leased at %d, before the ack that gave credit back (%d): sent beyond the credit of 3", m.Value, leased, ackSent)
		}
	}

	// Nack one: it comes back as attempt 2.
	c.send(map[string]any{"op": "nack", "id": "n1", "sub": "q1", "receipts": []string{got[2].Receipt}, "delay_ms": 0, "error": "later"})
	if m, _ := c.expect(0, "nacked", "n1"); decodeQueueFrame(t, m).Results[0].Status != "ok" {
		t.Fatalf("nacked: %s", m.raw)
	}
	var again qmsg
	c.wait(10*time.Second, "the nacked message again", func([]wsMsg) bool {
		for _, m := range queueMessagesLocked(c, "q1") {
			if m.Value == "c" && m.Attempt == 2 {
				again = m
				return true
			}
		}
		return false
	})
	// Extend, and ack by topic and subscription instead of sub.
	c.send(map[string]any{"op": "extend", "id": "e1", "sub": "q1", "receipts": []string{again.Receipt}, "visibility_timeout_ms": 60000})
	if m, _ := c.expect(0, "extended", "e1"); decodeQueueFrame(t, m).Results[0].LeaseExpiresAt < time.Now().UnixMilli()+50000 {
		t.Fatalf("extended: %s", m.raw)
	}
	all := queueMessages(t, c, "q1")
	var rest []string
	for _, m := range all[3:] {
		rest = append(rest, m.Receipt)
	}
	c.send(map[string]any{"op": "ack", "id": "a2", "topic": "wq", "subscription": "s", "receipts": rest})
	if m, _ := c.expect(0, "acked", "a2"); len(decodeQueueFrame(t, m).Results) != 3 {
		t.Fatalf("acked by name: %s", m.raw)
	}
	if st := describeSub(t, u, "wq", "s").Stats; st.Acked != 5 || st.Backlog != 0 || st.Nacked != 1 {
		t.Fatalf("stats: %+v", st)
	}
	// Bad frames get error frames.
	c.send(map[string]any{"op": "ack", "id": "x1", "receipts": []string{"r"}})
	if m, _ := c.expect(0, "error", "x1"); m.Error.Code != "bad_request" {
		t.Fatalf("ack without a subscription: %s", m.raw)
	}
	c.send(map[string]any{"op": "unsubscribe", "id": "u1", "sub": "q1"})
	c.expect(0, "unsubscribed", "u1")
}

// queueMessagesLocked is queueMessages for use inside wsClient.wait (which
// holds the client's lock): it reads the frames directly.
func queueMessagesLocked(c *wsClient, sub string) []qmsg {
	var out []qmsg
	for _, m := range c.msgs {
		if m.Op == "messages" && m.Sub == sub {
			var f wsQueueFrame
			json.Unmarshal([]byte(m.raw), &f)
			out = append(out, f.Messages...)
		}
	}
	return out
}
