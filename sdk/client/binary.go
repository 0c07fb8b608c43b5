package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"
)

// binaryType is the content type of the binary record framings
// (docs/api.md "Binary produce bodies", "Binary fetch answers").
const binaryType = "application/vnd.weir.records"

// appendProduceBinary appends a "WRP1" produce body.
func appendProduceBinary(b []byte, records []Record, producer string, seq int64) []byte {
	be := binary.BigEndian
	b = append(b, "WRP1"...)
	b = be.AppendUint16(b, uint16(len(producer)))
	b = append(b, producer...)
	b = be.AppendUint64(b, uint64(seq))
	b = be.AppendUint32(b, uint32(len(records)))
	for _, r := range records {
		p := int32(-1)
		if r.Partition != nil {
			p = int32(*r.Partition)
		}
		b = be.AppendUint32(b, uint32(p))
		var ts int64
		if !r.Timestamp.IsZero() {
			ts = r.Timestamp.UnixMilli()
		}
		b = be.AppendUint64(b, uint64(ts))
		if r.Key == nil {
			b = be.AppendUint32(b, uint32(0xffffffff))
		} else {
			b = be.AppendUint32(b, uint32(len(r.Key)))
			b = append(b, r.Key...)
		}
		b = be.AppendUint32(b, uint32(len(r.Value)))
		b = append(b, r.Value...)
		h := headersOf(r)
		names := make([]string, 0, len(h))
		for k := range h {
			names = append(names, k)
		}
		sort.Strings(names)
		b = be.AppendUint32(b, uint32(len(names)))
		for _, k := range names {
			b = be.AppendUint32(b, uint32(len(k)))
			b = append(b, k...)
			b = be.AppendUint32(b, uint32(len(h[k])))
			b = append(b, h[k]...)
		}
	}
	return b
}

var errShort = errors.New("client: binary fetch answer: truncated")

// binReader walks a binary answer; the first short read sets err.
type binReader struct {
	b   []byte
	err error
}

func (r *binReader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errShort
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *binReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *binReader) i64() int64 {
	if b := r.take(8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

// decodeFetchBinary decodes a "WRB1" fetch answer of topic's partition.
// Keys, values and header values are copied out of data.
func decodeFetchBinary(data []byte, topic string, partition int) (*FetchResult, error) {
	r := &binReader{b: data}
	if string(r.take(4)) != "WRB1" {
		return nil, fmt.Errorf("client: binary fetch answer: bad magic")
	}
	out := &FetchResult{NextOffset: r.i64(), HighWatermark: r.i64(), LogStartOffset: r.i64()}
	n := r.u32()
	if r.err == nil && int64(n)*28 > int64(len(r.b)) { // a record takes at least 28 bytes
		return nil, errShort
	}
	out.Records = make([]FetchedRecord, 0, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		rec := FetchedRecord{Topic: topic, Partition: partition, Offset: r.i64()}
		rec.Timestamp = time.UnixMilli(r.i64())
		if kl := int32(r.u32()); kl >= 0 {
			rec.Key = append([]byte{}, r.take(int(kl))...)
		} else if kl != -1 {
			r.err = fmt.Errorf("client: binary fetch answer: key length %d", kl)
		}
		rec.Value = append([]byte{}, r.take(int(r.u32()))...)
		if hc := r.u32(); hc > 0 && r.err == nil {
			if int64(hc)*8 > int64(len(r.b)) {
				return nil, errShort
			}
			rec.Headers = make(map[string]string, hc)
			for j := uint32(0); j < hc && r.err == nil; j++ {
				k := string(r.take(int(r.u32())))
				rec.Headers[k] = string(r.take(int(r.u32())))
			}
		}
		out.Records = append(out.Records, rec)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("client: binary fetch answer: %d bytes after the records", len(r.b))
	}
	return out, nil
}
