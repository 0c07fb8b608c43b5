package kafka

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/weir-broker/weir/core"
)

func TestVarintLen(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, 64, -64, -65, 8191, 8192, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64} {
		if got, want := varintLen(v), len(binary.AppendVarint(nil, v)); got != want {
			t.Errorf("varintLen(%d) = %d, want %d", v, got, want)
		}
	}
}

// recordLen must agree with kmsg's encoding for every shape of record, or
// encodeBatch pays a second encoding (and a wrong length would corrupt the
// batch): sizes around the varint boundaries, nil and empty keys, headers.
func TestRecordLenMatchesKmsg(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 62, 63, 64, 65, 127, 128, 8191, 8192, 8193, 70000}
	pick := func() []byte {
		switch rng.IntN(4) {
		case 0:
			return nil
		default:
			return bytes.Repeat([]byte{'x'}, sizes[rng.IntN(len(sizes))])
		}
	}
	for i := 0; i < 2000; i++ {
		r := kmsg.Record{TimestampDelta64: rng.Int64N(1<<40) - 1<<39, OffsetDelta: rng.Int32N(1 << 20), Key: pick(), Value: pick()}
		for range rng.IntN(4) {
			r.Headers = append(r.Headers, kmsg.Header{Key: string(bytes.Repeat([]byte{'h'}, sizes[rng.IntN(6)])), Value: pick()})
		}
		enc := r.AppendTo(nil) // Length 0: one byte
		if got, want := recordLen(&r), len(enc)-1; got != want {
			t.Fatalf("record %d (%+v): recordLen %d, kmsg writes %d", i, r, got, want)
		}
	}
}

func TestEncodeBatchManyRecords(t *testing.T) {
	var recs []core.Record
	for i := range 300 {
		recs = append(recs, core.Record{Offset: int64(1000 + i), Timestamp: int64(5000 - 3*i), Key: []byte{byte(i)},
			Value: bytes.Repeat([]byte{byte(i)}, i*37), Headers: []core.Header{{Key: "n", Value: string(rune('a' + i%26))}}})
	}
	prefix := []byte("earlier partition's batch")
	raw := encodeBatch(append([]byte(nil), prefix...), recs)
	if !bytes.HasPrefix(raw, prefix) {
		t.Fatal("encodeBatch overwrote what dst held")
	}
	bs, err := decodeBatches(raw[len(prefix):])
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || len(bs[0].records) != len(recs) {
		t.Fatalf("decoded %d batches", len(bs))
	}
	for i, r := range bs[0].records {
		w := recs[i]
		if r.Timestamp != w.Timestamp || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) || len(r.Headers) != 1 || r.Headers[0] != w.Headers[0] {
			t.Fatalf("record %d differs", i)
		}
	}
}
