package core

import (
	"errors"
	"testing"
)

func TestSubStateRoundTrip(t *testing.T) {
	h := subHeader{gen: 7, tag: 0xfeedface12345678, frontier: 1 << 40, cursor: 12, dlqNext: 3, delivered: 100, acked: 90, nacked: 5, expired: 4, deadLettered: 1, dropped: 2}
	got, err := decodeSubHeader(h.encode())
	if err != nil || got != h {
		t.Fatalf("header: %+v %v, want %+v", got, err, h)
	}
	for _, e := range []subEntry{
		{status: entryReady, notBefore: 1700000000000},
		{status: entryLeased, attempt: 3, nonce: 0xdeadbeefcafe, leaseUntil: 1700000030000, hasKey: true, keyHash: 42, lastError: "boom"},
		{status: entryDead, attempt: 5, dlqSeq: 17, lastError: "visibility timeout expired"},
	} {
		got, err := decodeSubEntry(e.encode())
		if err != nil || *got != e {
			t.Fatalf("entry: %+v %v, want %+v", got, err, e)
		}
	}
	for _, bad := range [][]byte{nil, {9}, {subEntryVersion, 9, 0, 0}, {subEntryVersion, entryReady}} {
		if _, err := decodeSubEntry(bad); err == nil {
			t.Fatalf("decoded garbage %v", bad)
		}
	}
}

func TestEntryKeyOrderAndParse(t *testing.T) {
	p := subStatePrefix("workers", "abc")
	if entryKey(p, 9) >= entryKey(p, 10) || entryKey(p, 255) >= entryKey(p, 256) {
		t.Fatal("entry keys do not sort by offset")
	}
	for _, off := range []int64{0, 1, 1 << 33, 1<<63 - 1} {
		got, ok := parseEntryKey(p, entryKey(p, off))
		if !ok || got != off {
			t.Fatalf("parse %d: %d %v", off, got, ok)
		}
	}
	if _, ok := parseEntryKey(p, p+"h"); ok {
		t.Fatal("header parsed as an entry")
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{InitialMs: 1000, MaxMs: 60000, Multiplier: 2}
	for i, want := range []int64{1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000} {
		if got := b.Delay(i + 1); got != want {
			t.Fatalf("attempt %d: %d, want %d", i+1, got, want)
		}
	}
	if got := b.Delay(10000); got != 60000 {
		t.Fatalf("huge attempt: %d", got)
	}
	if got := (Backoff{InitialMs: 0, MaxMs: 0, Multiplier: 1}).Delay(3); got != 0 {
		t.Fatalf("zero backoff: %d", got)
	}
	for _, bad := range []Backoff{{InitialMs: -1, MaxMs: 1, Multiplier: 2}, {InitialMs: 5, MaxMs: 1, Multiplier: 2}, {InitialMs: 1, MaxMs: 5, Multiplier: 0.5}} {
		if bad.validate() == nil {
			t.Fatalf("accepted %+v", bad)
		}
	}
}

func TestReceiptRoundTripAndTamper(t *testing.T) {
	r := receipt{tag: uidTag("u1"), partition: 3, offset: 123456789, attempt: 2, nonce: 0x0123456789abcdef}
	s := r.String()
	got, err := parseReceipt(s)
	if err != nil || got != r {
		t.Fatalf("parse: %+v %v", got, err)
	}
	for _, bad := range []string{"", "!!!", s[:len(s)-2], s + "AA", "AQ"} {
		if _, err := parseReceipt(bad); !errors.Is(err, ErrInvalidReceipt) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

func TestDeliverAtHeader(t *testing.T) {
	r := Record{Headers: []Header{{HeaderDeliverAt, "1700000000000"}}}
	if DeliverAt(&r) != 1700000000000 {
		t.Fatal("deliver-at not read")
	}
	r.Headers[0].Value = "soon"
	if DeliverAt(&r) != 0 {
		t.Fatal("a malformed deliver-at must mean now")
	}
}
