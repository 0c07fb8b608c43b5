package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/weir-broker/weir/core"
)

func TestBatchRoundTrip(t *testing.T) {
	recs := []core.Record{
		{Offset: 10, Timestamp: 1000, Key: []byte("k"), Value: []byte("v"), Headers: []core.Header{{Key: "a", Value: "1"}, {Key: "b", Value: ""}}},
		{Offset: 11, Timestamp: 900, Key: nil, Value: []byte{}},
		{Offset: 12, Timestamp: 1200, Key: []byte{}, Value: bytes.Repeat([]byte("x"), 300)},
	}
	raw := encodeBatch(nil, recs)
	bs, err := decodeBatches(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || len(bs[0].records) != 3 {
		t.Fatalf("%+v", bs)
	}
	for i, r := range bs[0].records {
		w := recs[i]
		if r.Timestamp != w.Timestamp || !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) || !bytes.Equal(r.Value, w.Value) || len(r.Headers) != len(w.Headers) {
			t.Fatalf("record %d: %+v, want %+v", i, r, w)
		}
	}
	raw[len(raw)-1] ^= 1
	if _, err := decodeBatches(raw); !errors.Is(err, errCorrupt) {
		t.Fatalf("corrupt batch: %v", err)
	}
}

// A frame that claims a huge size costs memory only as bytes arrive.
func TestReadFrameBounds(t *testing.T) {
	hdr := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	if _, err := readFrame(bytes.NewReader(hdr(200<<20)), DefaultMaxRequestBytes); !errors.Is(err, errFrame) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := readFrame(bytes.NewReader(hdr(0xffffffff)), DefaultMaxRequestBytes); !errors.Is(err, errFrame) {
		t.Fatalf("negative: %v", err)
	}
	r := io.MultiReader(bytes.NewReader(hdr(50<<20)), bytes.NewReader(make([]byte, 100)))
	if _, err := readFrame(r, DefaultMaxRequestBytes); err == nil {
		t.Fatal("a truncated frame was accepted")
	}
}

// FuzzKafkaRequest feeds arbitrary frames to the request decoder and, for
// produce requests, to the record batch decoder: neither may panic or
// allocate without bound.
func FuzzKafkaRequest(f *testing.F) {
	add := func(req kmsg.Request, v int16) {
		req.SetVersion(v)
		b := kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz")).AppendRequest(nil, req, 1)
		f.Add(b[4:])
	}
	add(kmsg.NewPtrApiVersionsRequest(), 3)
	add(kmsg.NewPtrMetadataRequest(), 12)
	p := kmsg.NewPtrProduceRequest()
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "t"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = encodeBatch(nil, []core.Record{{Offset: 0, Timestamp: 1, Key: []byte("k"), Value: []byte("v"), Headers: []core.Header{{Key: "h", Value: "x"}}}})
	pt.Partitions = append(pt.Partitions, pp)
	p.Topics = append(p.Topics, pt)
	add(p, 9)
	add(p, 3)
	add(kmsg.NewPtrJoinGroupRequest(), 9)
	add(kmsg.NewPtrFetchRequest(), 12)
	f.Fuzz(func(t *testing.T, frame []byte) {
		_, req, err := parseRequest(frame)
		if err != nil {
			return
		}
		if pr, ok := req.(*kmsg.ProduceRequest); ok {
			for _, t := range pr.Topics {
				for _, p := range t.Partitions {
					decodeBatches(p.Records)
				}
			}
		}
	})
}
