package gateway

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/weir-broker/weir/core"
)

// decodeRecordsBinary is the reference reader of the binary fetch framing
// (what a client does), strict about every length.
func decodeRecordsBinary(t *testing.T, b []byte) core.FetchResult {
	t.Helper()
	be := binary.BigEndian
	take := func(n int) []byte {
		t.Helper()
		if n < 0 || len(b) < n {
			t.Fatalf("truncated: want %d bytes, %d left", n, len(b))
		}
		v := b[:n:n]
		b = b[n:]
		return v
	}
	u32 := func() uint32 { return be.Uint32(take(4)) }
	i64 := func() int64 { return int64(be.Uint64(take(8))) }
	if string(take(4)) != recordsMagic {
		t.Fatal("bad magic")
	}
	res := core.FetchResult{NextOffset: i64(), HighWatermark: i64(), LogStart: i64()}
	n := int(u32())
	for i := 0; i < n; i++ {
		r := core.Record{Offset: i64(), Timestamp: i64()}
		if kl := int32(u32()); kl >= 0 {
			r.Key = append([]byte{}, take(int(kl))...)
		}
		r.Value = append([]byte{}, take(int(u32()))...)
		for h := int(u32()); h > 0; h-- {
			k := string(take(int(u32())))
			r.Headers = append(r.Headers, core.Header{Key: k, Value: string(take(int(u32())))})
		}
		res.Records = append(res.Records, r)
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes after the last record", len(b))
	}
	return res
}

func TestRecordsBinaryRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		res  core.FetchResult
	}{
		{"empty", core.FetchResult{NextOffset: 7, HighWatermark: 7, LogStart: 2}},
		{"records", core.FetchResult{NextOffset: 44, HighWatermark: 50, LogStart: 0, Records: []core.Record{
			{Offset: 41, Timestamp: 1764096000000, Key: []byte("k1"), Value: []byte("hello"),
				Headers: []core.Header{{Key: "traceparent", Value: "00-abc"}, {Key: "empty", Value: ""}}},
			{Offset: 42, Timestamp: 1, Key: nil, Value: []byte{0, 0xFF, '"', '\n'}},  // no key, binary value
			{Offset: 43, Timestamp: 2, Key: []byte{}, Value: []byte{}, Headers: nil}, // empty key and value
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := AppendRecordsBinary(nil, &tc.res)
			if len(b) != recordsBinarySize(tc.res.Records) {
				t.Fatalf("%d bytes, size computed %d", len(b), recordsBinarySize(tc.res.Records))
			}
			got := decodeRecordsBinary(t, b)
			if len(got.Records) == 0 {
				got.Records = tc.res.Records
			}
			for i := range tc.res.Records { // nil and empty headers read back alike
				if len(tc.res.Records[i].Headers) == 0 {
					got.Records[i].Headers = tc.res.Records[i].Headers
				}
			}
			if !reflect.DeepEqual(got, tc.res) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.res)
			}
			if tc.name == "records" && got.Records[1].Key != nil {
				t.Fatal("no key read back as a key")
			}
		})
	}
}
