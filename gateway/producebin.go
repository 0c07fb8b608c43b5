package gateway

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// produceMagic starts a binary produce body (format version 1; docs/api.md,
// "Binary produce bodies").
const produceMagic = "WRP1"

// minBinaryRecord is the smallest encoding of one record: partition,
// timestamp, key_len, value_len, header_count.
const minBinaryRecord = 4 + 8 + 4 + 4 + 4

// isBinaryRecords reports whether the request body is in the binary
// framing (Content-Type: application/vnd.weir.records).
func isBinaryRecords(ctx *fasthttp.RequestCtx) bool {
	ct := ctx.Request.Header.ContentType()
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return bytes.EqualFold(bytes.TrimSpace(ct), []byte(RecordsMediaType))
}

// DecodeProduceBinary decodes a binary produce body into the domain
// request for topic. Keys, values and header values alias body; the caller
// clones body when the records outlive it. All integers are big-endian:
//
//	"WRP1" producer_id_len:u16 producer_id sequence:i64 count:u32
//	count × { partition:i32 (-1: by key, or round robin)
//	          timestamp:i64 (0: the broker's clock)
//	          key_len:i32 (-1: no key) key value_len:u32 value
//	          header_count:u32
//	          header_count × { name_len:u32 name value_len:u32 value } }
//
// sequence counts only with a producer id (producer_id_len > 0).
func DecodeProduceBinary(topic string, body []byte) (*core.ProduceRequest, error) {
	d := binReader{b: body}
	if string(d.take(4)) != produceMagic {
		return nil, core.Invalidf("binary produce body must start with %q", produceMagic)
	}
	pid := d.take(int(d.u16()))
	seq := int64(d.u64())
	n := d.u32()
	if d.err != nil {
		return nil, d.failed()
	}
	// Bound the allocation by what the body can hold.
	if uint64(n)*minBinaryRecord > uint64(len(d.b)) {
		return nil, core.Invalidf("binary produce body: %d records cannot fit in %d bytes", n, len(d.b))
	}
	if !utf8.Valid(pid) {
		return nil, core.Invalidf("producer_id must be UTF-8")
	}
	req := &core.ProduceRequest{Topic: topic, Records: make([]core.ProduceRecord, n)}
	if len(pid) > 0 {
		req.ProducerID, req.Sequence = string(pid), seq
	}
	for i := range req.Records {
		out := &req.Records[i]
		out.Partition = int(int32(d.u32()))
		out.Timestamp = int64(d.u64())
		if kl := int32(d.u32()); kl >= 0 {
			out.Key = d.take(int(kl))
			if out.Key == nil {
				out.Key = []byte{}
			}
		} else if kl != -1 {
			return nil, core.Invalidf("records[%d].key_len must be ≥ -1", i)
		}
		out.Value = d.take(int(d.u32()))
		if out.Value == nil {
			out.Value = []byte{}
		}
		nh := d.u32()
		if d.err != nil {
			return nil, d.failed()
		}
		if uint64(nh)*8 > uint64(len(d.b)) {
			return nil, core.Invalidf("records[%d]: %d headers cannot fit in the body", i, nh)
		}
		if nh > 0 {
			out.Headers = make([]core.Header, nh)
		}
		for j := range out.Headers {
			name, value := d.take(int(d.u32())), d.take(int(d.u32()))
			if d.err != nil {
				return nil, d.failed()
			}
			if !utf8.Valid(name) || !utf8.Valid(value) {
				return nil, core.Invalidf("records[%d].headers[%d] must be UTF-8", i, j)
			}
			out.Headers[j] = core.Header{Key: string(name), Value: string(value)}
		}
		if out.Partition < -1 {
			return nil, core.Invalidf("records[%d].partition must be ≥ 0, or -1 for none", i)
		}
	}
	if d.err != nil {
		return nil, d.failed()
	}
	if len(d.b) != 0 {
		return nil, core.Invalidf("binary produce body: %d bytes after the last record", len(d.b))
	}
	return req, nil
}

// binReader reads big-endian fields; the first short read sets err and
// every later read returns zero values.
type binReader struct {
	b   []byte
	err error
}

var errShortBody = core.Invalidf("binary produce body ends inside a field")

func (d *binReader) failed() error { return errShortBody }

func (d *binReader) take(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.err = errShortBody
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	if n == 0 {
		return nil
	}
	return v
}

func (d *binReader) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *binReader) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *binReader) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// AppendProduceBinary encodes a produce request in the binary framing (the
// inverse of DecodeProduceBinary; clients and tests use it).
func AppendProduceBinary(b []byte, req *core.ProduceRequest) []byte {
	be := binary.BigEndian
	b = append(b, produceMagic...)
	b = be.AppendUint16(b, uint16(len(req.ProducerID)))
	b = append(b, req.ProducerID...)
	b = be.AppendUint64(b, uint64(req.Sequence))
	b = be.AppendUint32(b, uint32(len(req.Records)))
	for i := range req.Records {
		r := &req.Records[i]
		b = be.AppendUint32(b, uint32(int32(r.Partition)))
		b = be.AppendUint64(b, uint64(r.Timestamp))
		b = appendBinaryRecordBody(b, &r.Record) // fetchbin.go
	}
	return b
}
