package server

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	tu "github.com/weir-broker/weir/internal/testutil"
)

func produceN(t *testing.T, url, topic string, n int, part int, prefix string) {
	t.Helper()
	for i := 0; i < n; i += 500 {
		var recs []map[string]any
		for j := i; j < min(n, i+500); j++ {
			r := map[string]any{"value": fmt.Sprintf("%s%d", prefix, j)}
			if part >= 0 {
				r["partition"] = part
			}
			recs = append(recs, r)
		}
		r := tu.Do(t, "POST", url+"/v1/topics/"+topic+"/records", map[string]any{"records": recs})
		if r.Status != 200 {
			t.Fatalf("produce: %d %s", r.Status, r.Body)
		}
	}
}

// TestWSFrames exercises every client and server frame type and the
// error frames of bad input.
func TestWSFrames(t *testing.T) {
	s := startNode(t, t.TempDir(), func(c *Config) {
		c.Gateway.WebSocket.MaxSubscriptions = 4
		c.Gateway.WebSocket.MaxMessageBytes = 64 << 10
	})
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "frames", 2)
	produceN(t, u, "frames", 3, 0, "old-")
	c := dialWS(t, u, "/v1/ws", nil)

	// subscribe from earliest, one partition → subscribed, then records.
	c.send(map[string]any{"op": "subscribe", "id": "a", "topic": "frames", "partition": 0, "from": "earliest"})
	m, _ := c.expect(0, "subscribed", "a")
	if m.Sub != "a" || !strings.Contains(string(m.Partitions), `{"partition":0,"offset":0}`) {
		t.Fatalf("subscribed: %s", m.raw)
	}
	c.wait(10*time.Second, "3 old records", func(msgs []wsMsg) bool { return countRecords(msgs, "a") == 3 })
	recs := c.records("a")
	if recs[0].Topic != "frames" || recs[0].Partition != 0 || recs[0].Offset != 0 || recs[2].Value != "old-2" || recs[0].Timestamp == 0 {
		t.Fatalf("records: %+v", recs)
	}

	// produce over the socket → produced with offsets, and the
	// subscription gets the records.
	c.send(map[string]any{"op": "produce", "id": "p1", "topic": "frames",
		"records": []map[string]any{{"key": "k", "value": "ws-1", "partition": 0, "headers": map[string]string{"h": "v"}}, {"value": "ws-2", "partition": 1}}})
	m, _ = c.expect(0, "produced", "p1")
	if len(m.Offsets) != 2 || m.Offsets[0].Partition != 0 || m.Offsets[0].Offset != 3 || m.Offsets[1].Partition != 1 {
		t.Fatalf("produced: %s", m.raw)
	}
	c.wait(10*time.Second, "the produced record", func(msgs []wsMsg) bool { return countRecords(msgs, "a") == 4 })
	if r := c.records("a")[3]; r.Value != "ws-1" || r.Key == nil || *r.Key != "k" || r.Headers["h"] != "v" {
		t.Fatalf("record: %+v", r)
	}

	// all partitions from latest (id chosen by the server), base64.
	c.send(map[string]any{"op": "subscribe", "topic": "frames", "from": "latest", "encoding": "base64"})
	var all string
	c.wait(10*time.Second, "subscribed without id", func(msgs []wsMsg) bool {
		for _, x := range msgs {
			if x.Op == "subscribed" && x.ID == "" {
				all = x.Sub
				return true
			}
		}
		return false
	})
	if all == "" || all == "a" {
		t.Fatalf("server-chosen subscription id %q", all)
	}
	produceN(t, u, "frames", 1, 1, "b64-")
	c.wait(10*time.Second, "a base64 record on the all-partitions subscription", func(msgs []wsMsg) bool { return countRecords(msgs, all) == 1 })
	if r := c.records(all)[0]; r.Partition != 1 || r.Value != base64.StdEncoding.EncodeToString([]byte("b64-0")) {
		t.Fatalf("base64 record: %+v", r)
	}

	// from a timestamp: the first record at or after it.
	ts := time.Now().UnixMilli() + 1
	for time.Now().UnixMilli() <= ts {
		time.Sleep(time.Millisecond) // wait out the millisecond, not a synchronisation
	}
	produceN(t, u, "frames", 2, 0, "late-")
	c.send(map[string]any{"op": "subscribe", "id": "ts", "topic": "frames", "partition": 0, "timestamp": ts})
	c.expect(0, "subscribed", "ts")
	c.wait(10*time.Second, "records after the timestamp", func(msgs []wsMsg) bool { return countRecords(msgs, "ts") == 2 })
	if r := c.records("ts")[0]; r.Value != "late-0" {
		t.Fatalf("timestamp subscription starts at %+v", r)
	}

	// commit for a named group → committed; visible over HTTP.
	c.send(map[string]any{"op": "commit", "id": "c1", "group": "g-frames", "topic": "frames", "partition": 0, "offset": 2})
	m, _ = c.expect(0, "committed", "c1")
	if len(m.Offsets) != 1 || m.Offsets[0].Offset != 2 {
		t.Fatalf("committed: %s", m.raw)
	}
	r := tu.Do(t, "GET", u+"/v1/groups/g-frames/offsets", nil)
	if !strings.Contains(string(r.Body), `"offset":2`) {
		t.Fatalf("offsets after ws commit: %s", r.Body)
	}

	// ping → pong; unsubscribe → unsubscribed and no more records.
	c.send(map[string]any{"op": "ping", "id": "x"})
	c.expect(0, "pong", "x")
	c.send(map[string]any{"op": "unsubscribe", "id": "u1", "sub": "a"})
	_, iu := c.expect(0, "unsubscribed", "u1")
	produceN(t, u, "frames", 1, 0, "after-")
	c.wait(10*time.Second, "the after- record on ts", func(msgs []wsMsg) bool { return countRecords(msgs, "ts") == 3 })
	for _, x := range c.snapshot()[iu:] {
		if x.Op == "records" && x.Sub == "a" {
			t.Fatalf("records after unsubscribe: %s", x.raw)
		}
	}

	// Errors: each an error frame with the request's id and the API's code.
	errCases := []struct {
		frame any
		id    string
		code  string
	}{
		{map[string]any{"op": "nope", "id": "e1"}, "e1", "bad_request"},
		{map[string]any{"id": "e2"}, "e2", "bad_request"},
		{map[string]any{"op": "subscribe", "id": "e3", "topic": "missing"}, "e3", "topic_not_found"},
		{map[string]any{"op": "subscribe", "id": "e4", "topic": "frames", "partition": 9}, "e4", "partition_not_found"},
		{map[string]any{"op": "subscribe", "id": "e5", "topic": "frames", "partition": 0, "from": 999}, "e5", "offset_out_of_range"},
		{map[string]any{"op": "subscribe", "id": "e6", "topic": "frames", "from": "soon"}, "e6", "bad_request"},
		{map[string]any{"op": "subscribe", "id": "ts", "topic": "frames"}, "ts", "bad_request"}, // id in use
		{map[string]any{"op": "credit", "id": "e7", "sub": "nope", "records": 5}, "e7", "bad_request"},
		{map[string]any{"op": "credit", "id": "e8", "sub": "ts", "records": 0}, "e8", "bad_request"},
		{map[string]any{"op": "produce", "id": "e9", "topic": "missing", "records": []map[string]any{{"value": "x"}}}, "e9", "topic_not_found"},
		{map[string]any{"op": "produce", "id": "e10", "topic": "frames", "records": "x"}, "e10", "bad_request"},
		{map[string]any{"op": "commit", "id": "e11", "sub": "ts", "partition": 0, "offset": 1}, "e11", "bad_request"}, // not a group sub
		{map[string]any{"op": "unsubscribe", "id": "e12", "sub": "gone"}, "e12", "bad_request"},
		{map[string]any{"op": "subscribe", "id": "e13", "topic": "frames", "group": "g", "partition": 0}, "e13", "bad_request"},
	}
	for _, ec := range errCases {
		c.send(ec.frame)
		m, _ := c.expect(0, "error", ec.id)
		if m.Error == nil || m.Error.Code != ec.code || m.Error.Message == "" {
			t.Fatalf("%v: want %s, got %s", ec.frame, ec.code, m.raw)
		}
		if ec.code == "offset_out_of_range" && (m.Error.LogStart == nil || m.Error.HighWatermark == nil) {
			t.Fatalf("offset error without log bounds: %s", m.raw)
		}
	}
	// Malformed JSON and binary frames: error frames without an id.
	before := len(c.snapshot())
	c.conn.WriteMessage(websocket.TextMessage, []byte("{not json"))
	c.conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	c.wait(10*time.Second, "two error frames", func(msgs []wsMsg) bool {
		n := 0
		for _, x := range msgs[before:] {
			if x.Op == "error" && x.Error != nil && x.Error.Code == "bad_request" {
				n++
			}
		}
		return n == 2
	})
	// The subscription cap (4: a was removed; all, ts are live).
	c.send(map[string]any{"op": "subscribe", "id": "c3", "topic": "frames"})
	c.expect(0, "subscribed", "c3")
	c.send(map[string]any{"op": "subscribe", "id": "c4", "topic": "frames"})
	c.expect(0, "subscribed", "c4")
	c.send(map[string]any{"op": "subscribe", "id": "c5", "topic": "frames"})
	if m, _ := c.expect(0, "error", "c5"); m.Error.Code != "too_many_subscriptions" {
		t.Fatalf("fifth subscription: %s", m.raw)
	}
	// A message over MaxMessageBytes closes the connection with 1009.
	c.conn.WriteMessage(websocket.TextMessage, []byte(`{"op":"ping","id":"`+strings.Repeat("x", 70<<10)+`"}`))
	<-c.done
	var ce *websocket.CloseError
	if !errorsAs(c.closed, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized message: connection ended with %v, want close 1009", c.closed)
	}
	tu.Eventually(t, 10*time.Second, "the server to drop the connection", func() bool { return s.Gateway.WSStats().Connections == 0 })
}

func errorsAs(err error, target **websocket.CloseError) bool {
	ce, ok := err.(*websocket.CloseError)
	if ok {
		*target = ce
	}
	return ok
}

// TestWSTopicShortcut: GET /v1/topics/{topic}/ws streams records with no
// client frame; refusals before the upgrade are plain HTTP errors.
func TestWSTopicShortcut(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "tail", 3)
	produceN(t, u, "tail", 30, -1, "r")
	c := dialWS(t, u, "/v1/topics/tail/ws?from=earliest", nil)
	c.wait(10*time.Second, "30 records", func(msgs []wsMsg) bool { return countRecords(msgs, "tail") == 30 })
	produceN(t, u, "tail", 5, 2, "more")
	c.wait(10*time.Second, "35 records", func(msgs []wsMsg) bool { return countRecords(msgs, "tail") == 35 })

	// The topic grows: the subscription reads the added partition from its
	// start.
	if r := tu.Do(t, "POST", u+"/v1/topics/tail/partitions", map[string]any{"partitions": 4}); r.Status != 200 {
		t.Fatalf("grow: %d %s", r.Status, r.Body)
	}
	produceN(t, u, "tail", 2, 3, "grown")
	c.wait(10*time.Second, "37 records", func(msgs []wsMsg) bool { return countRecords(msgs, "tail") == 37 })
	n := 0
	for _, r := range c.records("tail") {
		if r.Partition == 3 {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d records of the added partition 3, want 2", n)
	}

	for _, tc := range []struct {
		path   string
		ws     bool
		status int
		code   string
	}{
		{"/v1/topics/missing/ws", true, 404, "topic_not_found"},
		{"/v1/topics/tail/ws?from=never", true, 400, "bad_request"},
		{"/v1/topics/tail/ws?partition=7", true, 404, "partition_not_found"},
		{"/v1/topics/tail/ws", false, 426, "upgrade_required"},
		{"/v1/ws", false, 426, "upgrade_required"},
	} {
		var status int
		var body []byte
		if tc.ws {
			_, resp, err := websocket.DefaultDialer.Dial(wsURL(u, tc.path), nil)
			if err == nil || resp == nil {
				t.Fatalf("%s: dial succeeded or no response: %v", tc.path, err)
			}
			status = resp.StatusCode
			body, _ = io.ReadAll(resp.Body)
		} else {
			r := tu.Do(t, "GET", u+tc.path, nil)
			status, body = r.Status, r.Body
		}
		if status != tc.status || !strings.Contains(string(body), `"code":"`+tc.code+`"`) {
			t.Fatalf("%s: %d %s, want %d %s", tc.path, status, body, tc.status, tc.code)
		}
	}
}

// TestWSCreditsExact: the server sends exactly the records granted.
func TestWSCreditsExact(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "credits", 3)
	for p := 0; p < 3; p++ { // three partition readers share one credit
		produceN(t, u, "credits", 20, p, fmt.Sprint("p", p, "-"))
	}
	c := dialWS(t, u, "/v1/ws", nil)
	c.send(map[string]any{"op": "subscribe", "id": "s", "topic": "credits", "from": "earliest", "credit": 5})
	c.expect(0, "subscribed", "s")
	c.wait(10*time.Second, "5 records", func(msgs []wsMsg) bool { return countRecords(msgs, "s") >= 5 })
	// Absence of records beyond the credit is checked on the order of the
	// connection's frames, not by waiting: a pong is queued when the server
	// handles the ping, after every record sent before and before the next
	// credit frame (sent after the ping) is handled. So the records of s
	// before each pong are exactly the credit granted up to then; one sent
	// beyond it would precede the next pong. checkpoint records the pong's
	// position; the counts are checked once every frame is in.
	type mark struct{ at, want int }
	var marks []mark
	checkpoint := func(want int) {
		t.Helper()
		id := fmt.Sprint("q", want)
		c.send(map[string]any{"op": "ping", "id": id})
		_, at := c.expect(0, "pong", id)
		marks = append(marks, mark{at, want})
	}
	checkpoint(5)
	c.send(map[string]any{"op": "credit", "sub": "s", "records": 7})
	c.wait(10*time.Second, "12 records", func(msgs []wsMsg) bool { return countRecords(msgs, "s") >= 12 })
	checkpoint(12)
	c.send(map[string]any{"op": "credit", "sub": "s", "records": 1})
	c.send(map[string]any{"op": "credit", "sub": "s", "records": 1})
	c.wait(10*time.Second, "14 records", func(msgs []wsMsg) bool { return countRecords(msgs, "s") >= 14 })
	checkpoint(14)
	c.send(map[string]any{"op": "credit", "sub": "s", "records": 1000})
	c.wait(10*time.Second, "all 60 records", func(msgs []wsMsg) bool { return countRecords(msgs, "s") == 60 })
	snap := c.snapshot()
	for _, m := range marks {
		if n := countRecords(snap[:m.at], "s"); n != m.want {
			t.Fatalf("received %d records with %d credits", n, m.want)
		}
	}
	seen := map[string]bool{}
	for _, r := range c.records("s") {
		k := fmt.Sprint(r.Partition, "/", r.Offset)
		if seen[k] {
			t.Fatalf("record %s delivered twice", k)
		}
		seen[k] = true
	}
	// Zero initial credit: nothing until a credit frame.
	c.send(map[string]any{"op": "subscribe", "id": "z", "topic": "credits", "partition": c.records("s")[0].Partition, "from": "earliest", "credit": 0})
	c.expect(0, "subscribed", "z")
	c.send(map[string]any{"op": "ping", "id": "z0"})
	c.expect(0, "pong", "z0")
	if n := countRecords(c.snapshot(), "z"); n != 0 {
		t.Fatalf("%d records with zero credit", n)
	}
	c.send(map[string]any{"op": "credit", "sub": "z", "records": 3})
	c.wait(10*time.Second, "3 records on z", func(msgs []wsMsg) bool { return countRecords(msgs, "z") >= 3 })
	// The fence: once unsubscribed is answered, z's readers have stopped
	// and every record they sent came before it; the count is final.
	c.send(map[string]any{"op": "unsubscribe", "id": "uz", "sub": "z"})
	if _, at := c.expect(0, "unsubscribed", "uz"); countRecords(c.snapshot()[:at], "z") != 3 {
		t.Fatalf("%d records with 3 credits", countRecords(c.snapshot(), "z"))
	}
}

// TestWSSlowConsumerPauses: a client that does not read fills its
// connection's send buffer; its subscription then stops reading the log,
// and the server's memory does not grow with what is produced.
func TestWSSlowConsumerPauses(t *testing.T) {
	const sendBuf = 256 << 10
	s := startNode(t, t.TempDir(), func(c *Config) { c.Gateway.WebSocket.SendBufferBytes = sendBuf })
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "firehose", 1)
	// A raw client that never reads after the handshake.
	d := websocket.Dialer{ReadBufferSize: 1024}
	conn, _, err := d.Dial(wsURL(u, "/v1/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tcp, ok := conn.NetConn().(*net.TCPConn); ok {
		tcp.SetReadBuffer(16 << 10) // keep the kernel from absorbing much
	}
	conn.WriteJSON(map[string]any{"op": "subscribe", "id": "s", "topic": "firehose", "from": "earliest", "credit": 1 << 40})

	value := strings.Repeat("v", 8<<10)
	produce := func(n int) {
		for i := 0; i < n; i += 100 {
			var recs []map[string]any
			for j := 0; j < 100; j++ {
				recs = append(recs, map[string]any{"value": value})
			}
			if r := tu.Do(t, "POST", u+"/v1/topics/firehose/records", map[string]any{"records": recs}); r.Status != 200 {
				t.Fatalf("produce: %d", r.Status)
			}
		}
	}
	produce(1000) // 8 MB
	tu.Eventually(t, 20*time.Second, "the subscription to pause", func() bool { return s.Gateway.WSStats().Paused >= 1 })
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	produce(3000) // 24 MB more while the consumer reads nothing
	st := s.Gateway.WSStats()
	if st.Paused < 1 || st.QueuedBytes > sendBuf+int64(256<<10) {
		t.Fatalf("slow consumer: %+v, want paused with at most %d bytes queued", st, sendBuf+256<<10)
	}
	after := heap()
	t.Logf("heap %d → %d MB with 24 MB produced to a paused subscriber; %+v", before>>20, after>>20, st)
	if after > before+16<<20 {
		t.Fatalf("server heap grew by %d MB while the subscriber was paused", (after-before)>>20)
	}
	// Reading resumes delivery: every record arrives, in order.
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	next := int64(0)
	for next < 4000 {
		var m wsMsg
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("after %d records: %v", next, err)
		}
		for _, r := range m.Records {
			if r.Offset != next {
				t.Fatalf("got offset %d, want %d", r.Offset, next)
			}
			next++
		}
	}
}

// TestWSOrigins: same origin by default, --allowed-origins otherwise; a
// refused handshake gets a real HTTP response.
func TestWSOrigins(t *testing.T) {
	s := startNode(t, t.TempDir(), func(c *Config) {
		c.Gateway.WebSocket.AllowedOrigins = []string{"https://app.example.com"}
	})
	defer stop(t, s)
	u := s.URL()
	host := strings.TrimPrefix(u, "http://")
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + host, true},
		{"https://app.example.com", true},
		{"https://APP.example.com/", true},
		{"http://evil.example", false},
		{"https://app.example.com.evil.example", false},
		{"null", false},
	} {
		hdr := http.Header{}
		if tc.origin != "" {
			hdr.Set("Origin", tc.origin)
		}
		conn, resp, err := websocket.DefaultDialer.Dial(wsURL(u, "/v1/ws"), hdr)
		if tc.ok {
			if err != nil {
				t.Fatalf("origin %q refused: %v", tc.origin, err)
			}
			conn.Close()
			continue
		}
		if err == nil {
			conn.Close()
			t.Fatalf("origin %q accepted", tc.origin)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 403 || !strings.Contains(string(body), `"code":"forbidden"`) {
			t.Fatalf("origin %q: %d %s", tc.origin, resp.StatusCode, body)
		}
	}
	// A handshake gorilla refuses after the gateway's own checks (no
	// Sec-WebSocket-Key) still gets a complete HTTP response.
	nc, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("refused handshake: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if resp.StatusCode != 400 || json.Unmarshal(body, &e) != nil || e.Error.Code != "bad_request" {
		t.Fatalf("refused handshake: %d %s", resp.StatusCode, body)
	}
}

// TestWSResumeAfterRestart: a client that reconnects to a restarted node
// with its resume positions gets the records after them, even while the
// node is still opening its partitions.
func TestWSResumeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s := startNode(t, dir)
	createTopic(t, s.URL(), "resume", 1)
	produceN(t, s.URL(), "resume", 3, 0, "x")
	stop(t, s)
	s = startNode(t, dir)
	defer stop(t, s)
	u := s.URL()
	c := dialWS(t, u, "/v1/ws", nil)
	c.send(map[string]any{"op": "subscribe", "id": "a", "topic": "resume", "positions": []map[string]any{{"partition": 0, "offset": 2}}})
	c.expect(0, "subscribed", "a")
	produceN(t, u, "resume", 2, 0, "y")
	c.wait(10*time.Second, "records from offset 2", func(msgs []wsMsg) bool { return countRecords(msgs, "a") == 3 })
	if recs := c.records("a"); recs[0].Offset != 2 || recs[0].Value != "x2" || recs[2].Value != "y1" {
		t.Fatalf("resumed records: %+v", recs)
	}
}

// TestWSKeepAlive: the server pings, and drops a connection from which
// nothing (not even a pong) comes for PongTimeout.
func TestWSKeepAlive(t *testing.T) {
	s := startNode(t, t.TempDir(), func(c *Config) {
		c.Gateway.WebSocket.PingInterval = 100 * time.Millisecond
		c.Gateway.WebSocket.PongTimeout = 700 * time.Millisecond
	})
	defer stop(t, s)
	u := s.URL()
	// A reading client answers pings (gorilla does it in its reader) and stays.
	pings := make(chan struct{}, 100)
	c := dialWS(t, u, "/v1/ws", nil)
	c.conn.SetPingHandler(func(data string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	for i := 0; i < 10; i++ { // ten pings: well past the pong timeout
		select {
		case <-pings:
		case <-time.After(10 * time.Second):
			t.Fatal("no ping from the server")
		}
	}
	c.send(map[string]any{"op": "ping", "id": "alive"})
	c.expect(0, "pong", "alive")

	// A client that never reads (so never answers a ping) is dropped.
	d := websocket.Dialer{}
	silent, _, err := d.Dial(wsURL(u, "/v1/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tu.Eventually(t, 10*time.Second, "the silent connection to be dropped", func() bool { return s.Gateway.WSStats().Connections == 1 })
}
