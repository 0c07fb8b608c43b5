// Package testutil holds the one copy of helpers shared by Weir's tests:
// ports, polling with a deadline, a small HTTP client, `weir serve`
// processes and clusters, and a ledger of acknowledged writes.
//
// Rules the helpers exist to keep (docs: STYLE.md rule 12):
//
//   - Ports: a listener the test owns binds 127.0.0.1:0 and reports its
//     address (server.Server.Addr). Addresses that must be known before the
//     server starts — a Raft address, which Dragonboat binds itself and which
//     stays the node's for the life of its data dir, or the HTTP address of a
//     child process — come from FreeAddr, which hands out ports outside the
//     kernel's ephemeral range from blocks reserved per test process with a
//     flock (ports.go). Such a port cannot be taken by an outgoing connection,
//     a :0 listener or another test process between the choice and the bind.
//   - Waiting: Eventually (or a loop with a deadline) polls a condition;
//     a fixed sleep never decides an assertion.
//   - Absence ("nothing more arrives"): first reach a fence that proves the
//     producer of the unwanted event has gone past the point where it would
//     have produced it (e.g. a pipeline's committed position at the input's
//     high watermark, or a later marker delivered in order), then assert.
package testutil

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// Eventually polls cond every 10 ms until it returns true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Response is an HTTP answer read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
}

// ErrorCode returns error.code of an API error body.
func (r *Response) ErrorCode() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

var httpClient = &http.Client{Timeout: 90 * time.Second}

// Do sends a request. body may be nil, []byte (sent as is with
// contentType) or anything else (sent as JSON).
func Do(t testing.TB, method, url string, body any, contentType ...string) *Response {
	t.Helper()
	r, err := TryDo(method, url, body, contentType...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// TryDo is Do returning the error instead of failing the test.
func TryDo(method, url string, body any, contentType ...string) (*Response, error) {
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/octet-stream"
	case string:
		rd, ct = bytes.NewReader([]byte(b)), "application/json"
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd, ct = bytes.NewReader(buf), "application/json"
	}
	if len(contentType) > 0 {
		ct = contentType[0]
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}
