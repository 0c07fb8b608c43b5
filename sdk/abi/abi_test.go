package abi

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	recs := []Record{
		{Offset: 1, Timestamp: -5, Key: nil, Value: []byte{}},
		{Offset: 2, Timestamp: 7, Key: []byte{}, Value: []byte("v")},
		{Offset: 3, Timestamp: 8, Key: []byte("k"), Value: bytes.Repeat([]byte{0xff}, 300),
			Headers: []Header{{"a", "1"}, {"", ""}, {"a", "2"}}},
	}
	b := AppendBatchHeader(nil, "topic", 4, []string{"x", "y"}, len(recs))
	for _, r := range recs {
		b = AppendRecord(b, r.Offset, r.Timestamp, r.Key, r.Value, r.Headers)
	}
	for _, shared := range []bool{false, true} {
		r := NewReader(b)
		if shared {
			r = NewSharedReader(b)
		}
		h := r.BatchHeader()
		want := BatchHeader{Version: Version, Topic: "topic", Partition: 4, Outputs: []string{"x", "y"}, Count: 3}
		if !reflect.DeepEqual(h, want) {
			t.Fatalf("header %+v", h)
		}
		for i := range recs {
			var got Record
			r.Record(&got)
			if len(got.Headers) == 0 {
				got.Headers = nil
			}
			if !reflect.DeepEqual(got, recs[i]) {
				t.Fatalf("record %d: %+v, want %+v", i, got, recs[i])
			}
			if (got.Key == nil) != (recs[i].Key == nil) {
				t.Fatalf("record %d: nil key not kept", i)
			}
		}
		if r.Err() != nil || r.Len() != 0 {
			t.Fatalf("err %v, %d left", r.Err(), r.Len())
		}
	}
}

func TestEmittedAndSkip(t *testing.T) {
	r1 := Record{Timestamp: 9, Key: []byte("k"), Value: []byte("v"), Headers: []Header{{"h", "x"}}}
	b := AppendEmitted(nil, 2, &r1)
	b = AppendEmitted(b, 0, &Record{Value: []byte("w")})
	rd := NewReader(b)
	var got Record
	if out := rd.Emitted(&got); out != 2 || string(got.Value) != "v" || got.Headers[0] != (Header{"h", "x"}) {
		t.Fatalf("first %d %+v", out, got)
	}
	rd.U32()
	if n := rd.SkipRecord(); n != 0 || rd.Err() != nil || rd.Len() != 0 {
		t.Fatalf("skip: %d %v %d", n, rd.Err(), rd.Len())
	}
	if RecordSize(r1.Key, r1.Value, r1.Headers)+4 != len(AppendEmitted(nil, 2, &r1)) {
		t.Fatal("RecordSize disagrees with AppendRecord")
	}
}

// Every truncation of a valid encoding fails cleanly, never panics.
func TestTruncated(t *testing.T) {
	b := AppendBatchHeader(nil, "t", 0, []string{"o"}, 1)
	b = AppendRecord(b, 1, 2, []byte("key"), []byte("value"), []Header{{"k", "v"}})
	for n := 0; n < len(b); n++ {
		r := NewReader(b[:n])
		r.BatchHeader()
		var rec Record
		r.Record(&rec)
		if !errors.Is(r.Err(), ErrShort) {
			t.Fatalf("prefix %d decoded without error", n)
		}
	}
	// Lengths that claim more than there is.
	bad := AppendU32(nil, 0)
	bad = append(bad, make([]byte, 16)...)
	bad = AppendU32(bad, 1<<31)
	r := NewReader(bad[4:])
	var rec Record
	r.Record(&rec)
	if r.Err() == nil {
		t.Fatal("huge key length accepted")
	}
}

func FuzzReader(f *testing.F) {
	f.Add(AppendRecord(nil, 1, 2, []byte("k"), []byte("v"), []Header{{"a", "b"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewSharedReader(b)
		for r.Len() > 0 && r.Err() == nil {
			var rec Record
			r.Record(&rec)
		}
		r = NewReader(b)
		for r.Len() > 0 && r.Err() == nil {
			r.SkipRecord()
		}
	})
}
