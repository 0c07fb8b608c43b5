package client

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// flaky answers the first fails requests with status (and Retry-After),
// then 200 with body; it counts the requests it saw.
func flaky(t *testing.T, fails int, status int, retryAfter string, body string) (*Client, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if int(n.Add(1)) <= fails {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, `{"error":{"code":"`+map[int]string{503: "unavailable", 429: "rate_limited"}[status]+`","message":"try later"}}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, WithBackoff(time.Millisecond, 2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return c, &n
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	topic := `{"name":"t","partitions":[{"partition":0}]}`
	produced := `{"offsets":[{"partition":0,"offset":7}]}`
	t.Run("503 then 200 on an idempotent call", func(t *testing.T) {
		c, n := flaky(t, 2, 503, "", topic)
		tp, err := c.Topic(ctx, "t")
		if err != nil || tp.Name != "t" || n.Load() != 3 {
			t.Fatalf("Topic = %+v, %v after %d requests", tp, err, n.Load())
		}
	})
	t.Run("503 is not retried on a plain produce", func(t *testing.T) {
		c, n := flaky(t, 1, 503, "1", produced)
		_, err := c.Produce(ctx, "t", []Record{{Value: []byte("v")}})
		var e *Error
		if !errors.As(err, &e) || e.Status != 503 || !errors.Is(err, CodeUnavailable) || e.RetryAfter != time.Second || n.Load() != 1 {
			t.Fatalf("Produce err = %v after %d requests", err, n.Load())
		}
	})
	t.Run("503 is retried on an idempotent producer", func(t *testing.T) {
		c, n := flaky(t, 2, 503, "", produced)
		p := c.Producer("t", 0, "p-1", 0)
		res, err := p.Produce(ctx, []Record{{Value: []byte("v")}})
		if err != nil || res.Offsets[0].Offset != 7 || n.Load() != 3 || p.Sequence() != 1 {
			t.Fatalf("Produce = %+v, %v after %d requests, sequence %d", res, err, n.Load(), p.Sequence())
		}
	})
	t.Run("429 with Retry-After is retried on any call, after the wait", func(t *testing.T) {
		c, n := flaky(t, 1, 429, "1", produced)
		start := time.Now()
		res, err := c.Produce(ctx, "t", []Record{{Value: []byte("v")}})
		if err != nil || res.Offsets[0].Offset != 7 || n.Load() != 2 {
			t.Fatalf("Produce = %+v, %v after %d requests", res, err, n.Load())
		}
		if waited := time.Since(start); waited < time.Second {
			t.Fatalf("retried after %s, before Retry-After (1 s)", waited)
		}
	})
	t.Run("a partly committed produce is not resent whole", func(t *testing.T) {
		partial := decodeError(&response{status: 429, header: http.Header{}, body: []byte(`{"error":{"code":"rate_limited","message":"m"},` +
			`"partitions":[{"partition":0,"status":"ok","offset":1,"records":[0]}]}`)})
		whole := decodeError(&response{status: 429, header: http.Header{}, body: []byte(`{"error":{"code":"rate_limited","message":"m"}}`)})
		if retryable(partial, true) || !retryable(whole, false) {
			t.Fatalf("retryable: partial %v, whole %v", retryable(partial, true), retryable(whole, false))
		}
	})
	t.Run("retries stop at the limit", func(t *testing.T) {
		c, n := flaky(t, 100, 503, "", topic)
		c.retries = 3
		if _, err := c.Topic(ctx, "t"); !errors.Is(err, CodeUnavailable) || n.Load() != 4 {
			t.Fatalf("Topic err = %v after %d requests", err, n.Load())
		}
	})
	t.Run("the context ends the wait", func(t *testing.T) {
		c, _ := flaky(t, 100, 429, "60", topic)
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := c.Topic(ctx, "t"); !errors.Is(err, CodeRateLimited) {
			t.Fatalf("Topic err = %v", err)
		}
	})
}

// TestProduceErrorFromAnswer: a partial failure's answer becomes a
// *ProduceError listing the committed and failed partitions and the
// records to send again.
func TestProduceErrorFromAnswer(t *testing.T) {
	recs := []Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}}
	e := &Error{Status: 503, Code: CodeUnavailable, partitions: []partitionResultJSON{
		{Partition: 0, Status: "ok", Offset: 41, Records: []int{0, 2}},
		{Partition: 1, Status: "error", Records: []int{1}},
	}}
	err := produceError(e, e.partitions, recs)
	var pe *ProduceError
	if !errors.As(err, &pe) || !errors.Is(err, CodeUnavailable) {
		t.Fatalf("err = %#v", err)
	}
	if len(pe.Failed) != 1 || string(pe.Failed[0].Value) != "b" {
		t.Fatalf("Failed = %+v", pe.Failed)
	}
	want := []RecordOffset{{0, 41}, {1, -1}, {0, 42}}
	for i, o := range pe.Offsets {
		if o != want[i] {
			t.Fatalf("Offsets = %+v, want %+v", pe.Offsets, want)
		}
	}
	if c, f := pe.Committed(), pe.FailedPartitions(); len(c) != 1 || c[0].Partition != 0 || len(f) != 1 || f[0].Partition != 1 {
		t.Fatalf("Committed %+v, FailedPartitions %+v", c, f)
	}
}

func TestDecodeFetchBinary(t *testing.T) {
	be := binary.BigEndian
	b := []byte("WRB1")
	b = be.AppendUint64(b, 12)
	b = be.AppendUint64(b, 12)
	b = be.AppendUint64(b, 0)
	b = be.AppendUint32(b, 2)
	// offset 10: key "k", value "v", header h=x
	b = be.AppendUint64(b, 10)
	b = be.AppendUint64(b, 1000)
	b = be.AppendUint32(b, 1)
	b = append(b, 'k')
	b = be.AppendUint32(b, 1)
	b = append(b, 'v')
	b = be.AppendUint32(b, 1)
	b = be.AppendUint32(b, 1)
	b = append(b, 'h')
	b = be.AppendUint32(b, 1)
	b = append(b, 'x')
	// offset 11: no key, empty value, no headers
	b = be.AppendUint64(b, 11)
	b = be.AppendUint64(b, 2000)
	b = be.AppendUint32(b, 0xffffffff)
	b = be.AppendUint32(b, 0)
	b = be.AppendUint32(b, 0)
	got, err := decodeFetchBinary(b, "t", 3)
	if err != nil {
		t.Fatal(err)
	}
	r0, r1 := got.Records[0], got.Records[1]
	if got.NextOffset != 12 || len(got.Records) != 2 || string(r0.Key) != "k" || string(r0.Value) != "v" || r0.Headers["h"] != "x" ||
		r0.Partition != 3 || r1.Key != nil || r1.Value == nil || len(r1.Value) != 0 || r1.Offset != 11 {
		t.Fatalf("decoded %+v", got)
	}
	for n := range len(b) {
		if _, err := decodeFetchBinary(b[:n], "t", 3); err == nil {
			t.Fatalf("a body cut at %d bytes decoded", n)
		}
	}
	if _, err := decodeFetchBinary(append(b, 0), "t", 3); err == nil {
		t.Fatal("trailing bytes decoded")
	}
}

func TestNewAddress(t *testing.T) {
	for addr, want := range map[string]string{"127.0.0.1:8080": "http://127.0.0.1:8080", "https://h:1/": "https://h:1"} {
		c, err := New(addr)
		if err != nil || c.Addr() != want {
			t.Errorf("New(%q) = %v, %v", addr, c, err)
		}
	}
	if _, err := New("ftp://h"); err == nil {
		t.Error("New(ftp://h) succeeded")
	}
}

// TestPropagatorAndToken: every request carries the token and what the
// propagator injects from the call's context.
func TestPropagatorAndToken(t *testing.T) {
	type key struct{}
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		io.WriteString(w, `{"topics":[]}`)
	}))
	defer srv.Close()
	c, err := New(srv.URL, WithToken(" tok "), WithPropagator(func(ctx context.Context, h http.Header) {
		if v, ok := ctx.Value(key{}).(string); ok {
			h.Set("traceparent", v)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if _, err := c.Topics(context.WithValue(context.Background(), key{}, tp)); err != nil {
		t.Fatal(err)
	}
	if got.Get("Authorization") != "Bearer tok" || got.Get("traceparent") != tp {
		t.Fatalf("headers %v", got)
	}
}
