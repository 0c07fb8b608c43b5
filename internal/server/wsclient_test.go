package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsMsg is any server frame, decoded loosely for tests.
type wsMsg struct {
	Op         string          `json:"op"`
	ID         string          `json:"id"`
	Sub        string          `json:"sub"`
	Topic      string          `json:"topic"`
	Group      string          `json:"group"`
	Member     string          `json:"member"`
	Generation int64           `json:"generation"`
	Partition  *int            `json:"partition"`
	Partitions json.RawMessage `json:"partitions"`
	Positions  []struct {
		Partition int   `json:"partition"`
		Offset    int64 `json:"offset"`
	} `json:"positions"`
	Records []wsRec `json:"records"`
	Offsets []struct {
		Topic     string `json:"topic"`
		Partition int    `json:"partition"`
		Offset    int64  `json:"offset"`
	} `json:"offsets"`
	Duplicate bool `json:"duplicate"`
	Error     *struct {
		Code          string `json:"code"`
		Message       string `json:"message"`
		LogStart      *int64 `json:"log_start_offset"`
		HighWatermark *int64 `json:"high_watermark"`
		Generation    int64  `json:"generation"`
	} `json:"error"`
	raw string
}

type wsRec struct {
	Topic     string            `json:"topic"`
	Partition int               `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp int64             `json:"timestamp"`
	Key       *string           `json:"key"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers"`
}

// assigned returns the partitions of an assigned frame.
func (m *wsMsg) assigned(t testing.TB) []int {
	var ps []int
	if err := json.Unmarshal(m.Partitions, &ps); err != nil {
		t.Fatalf("assigned partitions %s: %v", m.Partitions, err)
	}
	return ps
}

// wsClient is a test WebSocket client: a reader goroutine keeps every
// frame in order, and tests wait for what they expect with a deadline.
type wsClient struct {
	t    testing.TB
	conn *websocket.Conn

	mu     sync.Mutex
	msgs   []wsMsg
	closed error
	wake   chan struct{}
	done   chan struct{}
}

func wsURL(httpURL, path string) string {
	return "ws" + strings.TrimPrefix(httpURL, "http") + path
}

// dialWS connects to path on the node at base (http://…).
func dialWS(t testing.TB, base, path string, hdr http.Header) *wsClient {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(wsURL(base, path), hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", path, err, status)
	}
	c := &wsClient{t: t, conn: conn, wake: make(chan struct{}), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(c.close)
	return c
}

func (c *wsClient) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.conn.ReadMessage()
		c.mu.Lock()
		if err != nil {
			c.closed = err
		} else {
			var m wsMsg
			if jerr := json.Unmarshal(data, &m); jerr != nil {
				c.closed = jerr
			}
			m.raw = string(data)
			c.msgs = append(c.msgs, m)
		}
		close(c.wake)
		c.wake = make(chan struct{})
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (c *wsClient) close() {
	c.conn.Close()
	<-c.done
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("send %s: %v", b, err)
	}
}

// wait blocks until cond holds on the frames received so far (it is
// called under the client's lock), or fails the test after timeout.
func (c *wsClient) wait(timeout time.Duration, what string, cond func(msgs []wsMsg) bool) {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := cond(c.msgs)
		wake, closed, n := c.wake, c.closed, len(c.msgs)
		var last string
		if n > 0 {
			last = c.msgs[n-1].raw
		}
		c.mu.Unlock()
		if ok {
			return
		}
		if closed != nil {
			c.t.Fatalf("waiting for %s: connection ended: %v (last frame %s)", what, closed, last)
		}
		select {
		case <-wake:
		case <-deadline.C:
			c.t.Fatalf("timed out after %s waiting for %s (%d frames, last %s)", timeout, what, n, last)
		}
	}
}

// expect waits for the first frame after index from with op and (when
// not empty) id, and returns it with its index.
func (c *wsClient) expect(from int, op, id string) (wsMsg, int) {
	c.t.Helper()
	var got wsMsg
	idx := -1
	c.wait(10*time.Second, op+" "+id, func(msgs []wsMsg) bool {
		for i := from; i < len(msgs); i++ {
			if msgs[i].Op == op && (id == "" || msgs[i].ID == id) {
				got, idx = msgs[i], i
				return true
			}
		}
		return false
	})
	return got, idx
}

// snapshot copies the frames received so far.
func (c *wsClient) snapshot() []wsMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]wsMsg(nil), c.msgs...)
}

// records returns the records of sub received so far, in order.
func (c *wsClient) records(sub string) []wsRec {
	var out []wsRec
	for _, m := range c.snapshot() {
		if m.Op == "records" && m.Sub == sub {
			out = append(out, m.Records...)
		}
	}
	return out
}

func countRecords(msgs []wsMsg, sub string) int {
	n := 0
	for _, m := range msgs {
		if m.Op == "records" && m.Sub == sub {
			n += len(m.Records)
		}
	}
	return n
}
