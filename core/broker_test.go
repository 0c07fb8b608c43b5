package core

import (
	"bytes"
	"reflect"
	"testing"
)

func TestRetentionPoint(t *testing.T) {
	segs := []SegmentInfo{
		{BaseOffset: 0, NextOffset: 100, MaxTimestamp: 1000, Bytes: 100},
		{BaseOffset: 100, NextOffset: 200, MaxTimestamp: 2000, Bytes: 100},
		{BaseOffset: 200, NextOffset: 300, MaxTimestamp: 3000, Bytes: 100},
		{BaseOffset: 300, NextOffset: 350, MaxTimestamp: 900, Bytes: 50, Active: true},
	}
	cases := []struct {
		name   string
		cfg    TopicConfig
		now    int64
		want   int64
		delete bool
	}{
		{"nothing expired", TopicConfig{RetentionMs: 10000, RetentionBytes: -1}, 5000, 0, false},
		{"first two expired by time", TopicConfig{RetentionMs: 2500, RetentionBytes: -1}, 5000, 200, true},
		{"all sealed expired, active kept", TopicConfig{RetentionMs: 1, RetentionBytes: -1}, 5000, 300, true},
		{"an old active segment is never deleted", TopicConfig{RetentionMs: 1, RetentionBytes: -1}, 5000, 300, true},
		{"size: keep at most 200 bytes", TopicConfig{RetentionMs: -1, RetentionBytes: 200}, 5000, 200, true},
		{"size: under the limit", TopicConfig{RetentionMs: -1, RetentionBytes: 1000}, 5000, 0, false},
		{"forever", TopicConfig{RetentionMs: -1, RetentionBytes: -1}, 1 << 60, 0, false},
		{"time stops at the first young segment", TopicConfig{RetentionMs: 3500, RetentionBytes: -1}, 5000, 100, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := RetentionPoint(segs, c.cfg, c.now)
			if ok != c.delete || (ok && got != c.want) {
				t.Fatalf("RetentionPoint = %d, %v; want %d, %v", got, ok, c.want, c.delete)
			}
		})
	}
}

func TestValidTopicName(t *testing.T) {
	for name, ok := range map[string]bool{
		"orders": true, "a.b-c_D9": true, "": false, ".": false, "..": false,
		"a/b": false, "a b": false, "é": false, string(bytes.Repeat([]byte("a"), 249)): true,
		string(bytes.Repeat([]byte("a"), 250)): false,
	} {
		if ValidTopicName(name) != ok {
			t.Errorf("ValidTopicName(%q) = %v", name, !ok)
		}
	}
}

func TestRecordCodecRoundTrip(t *testing.T) {
	recs := []Record{
		{Timestamp: 1000, Key: []byte("k"), Value: []byte("v"), Headers: []Header{{"a", "1"}, {"b", ""}}},
		{Timestamp: 999, Key: nil, Value: []byte{}},
		{Timestamp: 5000, Key: []byte{}, Value: bytes.Repeat([]byte{0, 255}, 300)},
	}
	enc := AppendRecords(nil, recs)
	got, err := DecodeRecords(nil, enc, 40)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		recs[i].Offset = 40 + int64(i)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, recs)
	}
	if n, _ := RecordCount(enc); n != 3 {
		t.Fatalf("RecordCount = %d", n)
	}
}

// FuzzDecodeRecords: arbitrary payloads (a corrupt segment or snapshot) never
// panic or allocate without bound, and valid encodings round-trip.
func FuzzDecodeRecords(f *testing.F) {
	f.Add(AppendRecords(nil, []Record{{Timestamp: 1, Key: []byte("k"), Value: []byte("v"), Headers: []Header{{"h", "x"}}}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := DecodeRecords(nil, b, 0)
		if err != nil {
			return
		}
		again, err := DecodeRecords(nil, AppendRecords(nil, recs), 0)
		if err != nil || len(again) != len(recs) {
			t.Fatalf("re-encoding a decoded batch failed: %v", err)
		}
	})
}
