package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Conn is a WebSocket connection to a node (GET /v1/ws, docs/websocket.md):
// streaming subscriptions with credits, consumer group members, queue
// subscriptions, and produce/commit/ack over one socket. Safe for
// concurrent use. A goroutine reads the socket until Close.
type Conn struct {
	ws   *websocket.Conn
	done chan struct{} // closed when the reader ends

	wmu sync.Mutex // serializes writes

	mu      sync.Mutex // guards the fields below
	next    int
	pending map[string]chan wsFrame
	streams map[string]*Stream
	err     error // why the connection ended
}

// wsFrame is a frame as the client reads it (the union of the server's).
type wsFrame struct {
	Op          string          `json:"op"`
	ID          string          `json:"id"`
	Sub         string          `json:"sub"`
	Records     []recordJSON    `json:"records"`
	Messages    []messageJSON   `json:"messages"`
	Offsets     []RecordOffset  `json:"offsets"`
	Duplicate   bool            `json:"duplicate"`
	Results     []ReceiptResult `json:"results"`
	Group       string          `json:"group"`
	Member      string          `json:"member"`
	Generation  int64           `json:"generation"`
	Partitions  json.RawMessage `json:"partitions"`
	Positions   []RecordOffset  `json:"positions"`
	Partition   *int            `json:"partition"`
	Error       json.RawMessage `json:"error"`
	errorDetail *Error
}

// Dial opens a WebSocket to the node, with the client's token, TLS
// configuration and trace context.
func (c *Client) Dial(ctx context.Context) (*Conn, error) {
	u := "ws" + strings.TrimPrefix(c.base, "http") + "/v1/ws"
	d := websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 30 * time.Second}
	if t, ok := c.hc.Transport.(*http.Transport); ok {
		d.TLSClientConfig = t.TLSClientConfig
	}
	h := http.Header{}
	c.setHeaders(ctx, h)
	ws, resp, err := d.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil && resp.StatusCode >= 300 {
			return nil, fmt.Errorf("client: websocket %s: HTTP %d: %w", u, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("client: websocket %s: %w", u, err)
	}
	ws.SetReadLimit(64 << 20)
	cn := &Conn{ws: ws, done: make(chan struct{}), pending: map[string]chan wsFrame{}, streams: map[string]*Stream{}}
	go cn.read()
	return cn, nil
}

// Close closes the socket and waits for its reader. Streams end with
// ErrClosed; unanswered leases of queue subscriptions expire.
func (cn *Conn) Close() error {
	cn.wmu.Lock()
	cn.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	cn.wmu.Unlock()
	err := cn.ws.Close()
	<-cn.done
	return err
}

func (cn *Conn) read() {
	defer close(cn.done)
	var err error
	for {
		var f wsFrame
		if err = cn.ws.ReadJSON(&f); err != nil {
			break
		}
		if len(f.Error) > 0 {
			var b errorBody
			b.Error.Code = "internal"
			json.Unmarshal(append(append([]byte(`{"error":`), f.Error...), '}'), &b)
			f.errorDetail = b.toError(0)
		}
		cn.dispatch(f)
	}
	cn.mu.Lock()
	cn.err = fmt.Errorf("%w: %v", ErrClosed, err)
	for id, ch := range cn.pending {
		close(ch)
		delete(cn.pending, id)
	}
	for _, s := range cn.streams {
		s.push(streamItem{end: true})
	}
	cn.mu.Unlock()
}

// dispatch hands a frame to the request waiting for its id, or to its
// subscription's stream.
func (cn *Conn) dispatch(f wsFrame) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if ch, ok := cn.pending[f.ID]; ok && f.ID != "" {
		delete(cn.pending, f.ID)
		ch <- f
		return
	}
	if s := cn.streams[f.Sub]; s != nil && f.Sub != "" {
		s.push(streamItem{f: f})
	}
}

// request sends frame v (a map with "op") with a fresh id and waits for
// the reply; an error frame is returned as an *Error.
func (cn *Conn) request(ctx context.Context, v map[string]any, before func(id string)) (wsFrame, error) {
	ch := make(chan wsFrame, 1)
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return wsFrame{}, cn.err
	}
	cn.next++
	id := "c" + strconv.Itoa(cn.next)
	cn.pending[id] = ch
	if before != nil {
		before(id)
	}
	cn.mu.Unlock()
	v["id"] = id
	if err := cn.send(v); err != nil {
		cn.forget(id)
		return wsFrame{}, err
	}
	select {
	case f, ok := <-ch:
		if !ok {
			return f, cn.closedErr()
		}
		if f.Op == "error" {
			return f, f.errorDetail
		}
		return f, nil
	case <-ctx.Done():
		cn.forget(id)
		return wsFrame{}, ctx.Err()
	}
}

func (cn *Conn) forget(id string) {
	cn.mu.Lock()
	delete(cn.pending, id)
	delete(cn.streams, id)
	cn.mu.Unlock()
}

func (cn *Conn) closedErr() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.err != nil {
		return cn.err
	}
	return ErrClosed
}

func (cn *Conn) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	cn.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := cn.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return nil
}

// Ping checks the connection end to end.
func (cn *Conn) Ping(ctx context.Context) error {
	_, err := cn.request(ctx, map[string]any{"op": "ping"}, nil)
	return err
}

// Produce appends records over the socket, answered once committed.
func (cn *Conn) Produce(ctx context.Context, topic string, records []Record) (*ProduceResult, error) {
	body, err := produceJSON(records, "", 0)
	if err != nil {
		return nil, err
	}
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, err
	}
	fields["op"], fields["topic"] = "produce", topic
	f, err := cn.request(ctx, fields, nil)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, produceError(e, e.partitions, records)
		}
		return nil, err
	}
	return &ProduceResult{Offsets: f.Offsets, Duplicate: f.Duplicate}, nil
}
