package history

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestRecorderConcurrent(t *testing.T) {
	t.Parallel()
	r := NewRecorder(nil)
	const workers, ops = 8, 100
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ops {
				p := r.Invoke(Op{Kind: Produce, Process: string(rune('a' + w)), Value: string(rune('a'+w)) + "-" + string(rune(i))})
				p.OK(Record{Offset: int64(i)})
				p.Fail(errors.New("ignored: already completed"))
			}
		}()
	}
	wg.Wait()
	h := r.History()
	if len(h) != 2*workers*ops {
		t.Fatalf("%d events, want %d", len(h), 2*workers*ops)
	}
	for i := 1; i < len(h); i++ {
		if h[i].Time < h[i-1].Time {
			t.Fatalf("event %d stamped %v before event %d at %v", i, h[i].Time, i-1, h[i-1].Time)
		}
	}
	for _, c := range h.Calls() {
		if c.Status != OK || c.Return < c.Invoked {
			t.Fatalf("call %+v: want OK, returned after invoked", c)
		}
	}
}

func TestCallsUnfinishedIsInfo(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	r.Invoke(produceOp("p1", "a", 0))
	h := append(r.History(), Event{ID: 99, Type: OK}) // a completion without invocation
	calls := h.Calls()
	if len(calls) != 1 || calls[0].Status != Info || calls[0].Return != Never {
		t.Fatalf("calls = %+v, want one Info call never returned", calls)
	}
}

func TestJSONLinesRoundTrip(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	clean(r)
	h := r.History()
	var buf bytes.Buffer
	n, err := h.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; buffer holds %d", n, err, buf.Len())
	}
	if lines := strings.Count(buf.String(), "\n"); lines != len(h) {
		t.Fatalf("%d lines for %d events", lines, len(h))
	}
	got, err := ReadHistory(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, h)
	}
	if _, err := ReadHistory(strings.NewReader(`{"id":1}` + "\n{oops\n")); err == nil {
		t.Fatal("ReadHistory accepted a malformed line")
	}
}
