package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/weir-broker/weir/core"
)

func binSample() *core.ProduceRequest {
	return &core.ProduceRequest{Topic: "t", ProducerID: "p-1", Sequence: 7, Records: []core.ProduceRecord{
		{Partition: 2, Record: core.Record{Key: []byte("k"), Value: []byte("v\x00\xff"), Timestamp: 1700000000000,
			Headers: []core.Header{{Key: "a", Value: "1"}, {Key: "traceparent", Value: "00-x"}}}},
		{Partition: -1, Record: core.Record{Key: []byte{}, Value: []byte{}}},
		{Partition: -1, Record: core.Record{Value: []byte("no key")}},
	}}
}

func TestProduceBinaryRoundTrip(t *testing.T) {
	want := binSample()
	body := AppendProduceBinary(nil, want)
	got, err := DecodeProduceBinary("t", body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	// Without a producer id the sequence is ignored.
	anon := &core.ProduceRequest{Topic: "t", Records: want.Records[2:]}
	b := AppendProduceBinary(nil, anon)
	binary.BigEndian.PutUint64(b[6:], 99)
	if got, err := DecodeProduceBinary("t", b); err != nil || got.ProducerID != "" || got.Sequence != 0 {
		t.Fatalf("anonymous: %+v %v", got, err)
	}
}

func TestProduceBinaryBadInput(t *testing.T) {
	good := AppendProduceBinary(nil, binSample())
	huge := AppendProduceBinary(nil, &core.ProduceRequest{})
	binary.BigEndian.PutUint32(huge[len(huge)-4:], 1<<31) // 2^31 records in 0 bytes
	badKeyLen := AppendProduceBinary(nil, &core.ProduceRequest{Records: []core.ProduceRecord{{Partition: -1}}})
	binary.BigEndian.PutUint32(badKeyLen[4+2+8+4+4+8:], uint32(0xFFFFFFFE)) // key_len -2
	badPart := AppendProduceBinary(nil, &core.ProduceRequest{Records: []core.ProduceRecord{{Partition: -5}}})
	badHeader := AppendProduceBinary(nil, &core.ProduceRequest{Records: []core.ProduceRecord{{Partition: -1,
		Record: core.Record{Headers: []core.Header{{Key: "h", Value: "\xff"}}}}}})
	for name, body := range map[string][]byte{
		"empty":               {},
		"wrong magic":         append([]byte("WRB1"), good[4:]...),
		"truncated":           good[:len(good)-1],
		"trailing bytes":      append(bytes.Clone(good), 0),
		"count beyond body":   huge,
		"key_len -2":          badKeyLen,
		"partition -5":        badPart,
		"header not UTF-8":    badHeader,
		"truncated in header": good[:40],
	} {
		if _, err := DecodeProduceBinary("t", body); !errors.Is(err, core.ErrBadRequest) {
			t.Errorf("%s: err = %v, want a bad request", name, err)
		}
	}
}

// FuzzProduceBinary: the decoder never panics nor allocates beyond what the
// body can hold, and what it accepts encodes back to the same bytes.
func FuzzProduceBinary(f *testing.F) {
	f.Add(AppendProduceBinary(nil, binSample()))
	f.Add(AppendProduceBinary(nil, &core.ProduceRequest{Records: []core.ProduceRecord{{Partition: -1}}}))
	f.Add([]byte("WRP1"))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeProduceBinary("t", body)
		if err != nil {
			return
		}
		again := AppendProduceBinary(nil, req)
		if req.ProducerID == "" {
			// The sequence is not kept without a producer id.
			copy(again[6:14], body[6:14])
		}
		if !bytes.Equal(again, body) {
			t.Fatalf("re-encoded %x, body %x", again, body)
		}
	})
}
