package apierr

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/weir-broker/weir/core"
)

// typed are errors of the table's codes that carry data: each must come
// back from Decode as the same type with the same fields (node bodies).
var typed = map[string]error{
	"not_leader":            &core.NotLeaderError{Leader: 3, Msg: "node 2 does not lead orders/1"},
	"offset_out_of_range":   &core.OffsetRangeError{Offset: 99, LogStart: 10, HighWatermark: 42},
	"out_of_order_sequence": &core.SequenceError{ProducerID: "p-1", Expected: 7, Got: 9},
	"stale_generation":      &core.StaleGenerationError{Group: "g", Generation: 4, Current: 5},
	"bad_request":           &core.InvalidError{Msg: "partition must be a number ≥ 0"},
}

// canonical returns the first row's error of code (what Decode returns).
func canonical(code string) error {
	for _, e := range table {
		if e.code == code {
			return e.err
		}
	}
	return nil
}

// TestRoundTrip encodes an error of every row of the table, as the public
// API and as the node-to-node protocol answer it, decodes the answer, and
// checks the result maps to the same status and code, errors.Is the code's
// sentinel (the row's own, except rows sharing a code with an earlier row:
// context errors answer "unavailable" and come back as core.ErrUnavailable)
// and, for typed errors, errors.As the same type with the same data.
func TestRoundTrip(t *testing.T) {
	for _, row := range table {
		orig := fmt.Errorf("%w: while testing <&>", row.err)
		if te, ok := typed[row.code]; ok && canonical(row.code) == row.err {
			orig = te // its message is the answer's (Msg fields compare equal)
		}
		for _, node := range []bool{false, true} {
			name := fmt.Sprintf("%s/%v/node=%v", row.code, row.err, node)
			t.Run(name, func(t *testing.T) {
				status, code := Status(orig)
				if status != row.status || code != row.code {
					t.Fatalf("Status = %d %s, the row says %d %s", status, code, row.status, row.code)
				}
				var b []byte
				if node {
					b = AppendNodeBody(nil, code, orig)
				} else {
					b = AppendBody(nil, code, orig)
				}
				got := Decode(status, b)
				if gs, gc := Status(got); gs != status || gc != code {
					t.Errorf("decoded error answers %d %s, want %d %s", gs, gc, status, code)
				}
				if got.Error() != orig.Error() {
					t.Errorf("message %q, want %q", got.Error(), orig.Error())
				}
				want := canonical(code)
				if !errors.Is(got, want) {
					t.Errorf("decoded %#v is not %v", got, want)
				}
				if want == row.err && !errors.Is(got, row.err) {
					t.Errorf("decoded %#v is not %v", got, row.err)
				}
				te, ok := typed[row.code]
				if !ok || want != row.err {
					return
				}
				pt := reflect.New(reflect.TypeOf(te)) // **T
				if !errors.As(got, pt.Interface()) {
					t.Fatalf("decoded %#v is no %T", got, te)
				}
				if node {
					if g := pt.Elem().Interface(); !reflect.DeepEqual(g, te) {
						t.Errorf("decoded %#v, want %#v", g, te)
					}
				}
			})
		}
	}
	// Typed errors whose code is not in the table would never be checked.
	for code := range typed {
		if canonical(code) == nil {
			t.Errorf("typed error of %s: no such code in the table", code)
		}
	}
}

// TestRoundTripPublicData: the public body carries the data clients use
// (offset range, expected sequence) and no more.
func TestRoundTripPublicData(t *testing.T) {
	got := Decode(416, AppendBody(nil, "offset_out_of_range", typed["offset_out_of_range"]))
	var oe *core.OffsetRangeError
	if !errors.As(got, &oe) || oe.LogStart != 10 || oe.HighWatermark != 42 {
		t.Errorf("offset range: %#v", oe)
	}
	got = Decode(409, AppendBody(nil, "out_of_order_sequence", typed["out_of_order_sequence"]))
	var se *core.SequenceError
	if !errors.As(got, &se) || se.Expected != 7 || se.ProducerID != "" {
		t.Errorf("sequence: %#v", se)
	}
	got = Decode(503, AppendBody(nil, "not_leader", typed["not_leader"]))
	var nl *core.NotLeaderError
	if !errors.As(got, &nl) || nl.Leader != 0 || nl.Msg != "node 2 does not lead orders/1" {
		t.Errorf("not leader: %#v", nl)
	}
}

// TestStatusErrorCodes: codes outside the table (raised with a
// StatusError, or unknown to this node) keep their status and code.
func TestStatusErrorCodes(t *testing.T) {
	for _, e := range []*StatusError{
		{Status: 429, Code: "too_many_subscriptions", Msg: "at most 100 subscriptions"},
		{Status: 426, Code: "upgrade_required", Msg: "use a WebSocket"},
		{Status: 404, Code: "not_found", Msg: "subscriptions are not enabled on this node"},
		{Status: 413, Code: "too_large", Msg: "request body exceeds the limit"},
		{Status: 400, Code: "bad_request", Msg: "malformed HTTP request"},
	} {
		t.Run(e.Code, func(t *testing.T) {
			got := Decode(e.Status, AppendBody(nil, e.Code, e))
			if s, c := Status(got); s != e.Status || c != e.Code || got.Error() != e.Msg {
				t.Errorf("decoded %d %s %q, want %d %s %q", s, c, got.Error(), e.Status, e.Code, e.Msg)
			}
			if want := canonical(e.Code); want != nil && !errors.Is(got, want) {
				t.Errorf("decoded %#v is not %v", got, want)
			}
		})
	}
	internal := errors.New("disk on fire")
	s, c := Status(internal)
	if s != 500 || c != Internal {
		t.Fatalf("unknown error: %d %s", s, c)
	}
	if s2, c2 := Status(Decode(s, AppendBody(nil, c, internal))); s2 != 500 || c2 != Internal {
		t.Errorf("internal decoded as %d %s", s2, c2)
	}
	if err := Decode(502, []byte("<html>bad gateway</html>")); err == nil || errors.As(err, new(*StatusError)) {
		t.Errorf("a body that is no error answer: %#v", err)
	}
}

// TestBodyBytes pins the public format (docs/api.md "Errors").
func TestBodyBytes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: topic \"x\" does not exist", core.ErrTopicNotFound),
			`{"error":{"code":"topic_not_found","message":"topic not found: topic \"x\" does not exist"}}` + "\n"},
		{&core.OffsetRangeError{Offset: 5, LogStart: 10, HighWatermark: 42},
			`{"error":{"code":"offset_out_of_range","message":"offset 5 is outside the log [10, 42]"},"log_start_offset":10,"high_watermark":42}` + "\n"},
		{&core.SequenceError{ProducerID: "p", Expected: 7, Got: 9},
			`{"error":{"code":"out_of_order_sequence","message":"producer \"p\": expected sequence 7, got 9"},"expected_sequence":7}` + "\n"},
		{core.Invalidf("a <b> & \u2028 \x01 \xff\n"),
			`{"error":{"code":"bad_request","message":"a \u003cb\u003e \u0026 \u2028 \u0001 \ufffd\n"}}` + "\n"},
		{context.DeadlineExceeded,
			`{"error":{"code":"unavailable","message":"context deadline exceeded"}}` + "\n"},
	} {
		_, code := Status(tc.err)
		if got := string(AppendBody(nil, code, tc.err)); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

// TestProduceErrorBody: a produce that partly failed keeps the status and
// code of its failed partition's error (as the joined errors did) and its
// body lists every partition, committed with its offset and failed with
// its own code.
func TestProduceErrorBody(t *testing.T) {
	err := &core.ProduceError{Partitions: []core.PartitionProduce{
		{Partition: 0, Records: []int{0, 2}, BaseOffset: 41},
		{Partition: 3, Records: []int{1}, Err: fmt.Errorf("%w: no leader", core.ErrUnavailable)},
	}}
	status, code := Status(err)
	if status != 503 || code != "unavailable" {
		t.Fatalf("Status = %d %s", status, code)
	}
	got := string(AppendBody(nil, code, err))
	want := `{"error":{"code":"unavailable","message":"produce failed on 1 of 2 partitions (1 committed): partition 3: unavailable: no leader"},` +
		`"partitions":[{"partition":0,"status":"ok","offset":41,"records":[0,2]},` +
		`{"partition":3,"status":"error","records":[1],"error":{"code":"unavailable","message":"unavailable: no leader"}}]}` + "\n"
	if got != want {
		t.Fatalf("body\n got %s\nwant %s", got, want)
	}
	if !errors.Is(err, core.ErrUnavailable) {
		t.Fatal("errors.Is(ProduceError, ErrUnavailable) = false")
	}
	if b := AppendPartitions(nil, core.ErrUnavailable); len(b) != 0 {
		t.Fatalf("AppendPartitions of another error = %q", b)
	}
}
