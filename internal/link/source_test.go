package link

import (
	"reflect"
	"testing"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway"
)

// The binary fetch answer decodes to the records as the source holds them
// (nil and empty keys apart, header order and duplicates kept), and every
// truncation of it is an error, not a panic.
func TestDecodeRecords(t *testing.T) {
	t.Parallel()
	recs := []core.Record{
		{Offset: 7, Timestamp: 1000, Key: nil, Value: []byte("a")},
		{Offset: 8, Timestamp: 1001, Key: []byte{}, Value: []byte{}},
		{Offset: 9, Timestamp: 1002, Key: []byte("k"), Value: []byte("v"),
			Headers: []core.Header{{Key: "z", Value: "1"}, {Key: "a", Value: "2"}, {Key: "z", Value: "3"}}},
	}
	b := gateway.AppendRecordsBinary(nil, &core.FetchResult{Records: recs, NextOffset: 10, HighWatermark: 12, LogStart: 3})
	p, err := decodeRecords(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.nextOffset != 10 || p.highWatermark != 12 || p.logStart != 3 || !reflect.DeepEqual(p.records, recs) {
		t.Fatalf("decoded %+v", p)
	}
	for n := 0; n < len(b); n++ {
		if _, err := decodeRecords(b[:n]); err == nil {
			t.Fatalf("a truncation at %d bytes decoded", n)
		}
	}
}
