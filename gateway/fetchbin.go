package gateway

import (
	"bytes"
	"encoding/binary"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// RecordsMediaType selects the binary fetch answer (docs/api.md, "Binary
// fetch answers"): `Accept: application/vnd.weir.records` on
// GET /v1/topics/{t}/partitions/{p}/records. Errors stay JSON.
const RecordsMediaType = "application/vnd.weir.records"

// recordsMagic starts every binary fetch answer (format version 1).
const recordsMagic = "WRB1"

// wantsBinaryRecords reports whether the request asked for the binary fetch
// answer.
func wantsBinaryRecords(ctx *fasthttp.RequestCtx) bool {
	return bytes.Contains(ctx.Request.Header.Peek("Accept"), []byte(RecordsMediaType))
}

// writeFetchBinary answers a fetch in the binary framing: one allocation of
// the exact size, values copied once from the records, no escaping.
func writeFetchBinary(ctx *fasthttp.RequestCtx, res *core.FetchResult) {
	ctx.Response.Header.SetContentType(RecordsMediaType)
	ctx.SetStatusCode(200)
	ctx.Response.SetBodyRaw(AppendRecordsBinary(make([]byte, 0, recordsBinarySize(res.Records)), res))
}

func recordsBinarySize(recs []core.Record) int {
	n := 32
	for i := range recs {
		r := &recs[i]
		n += 8 + 8 + 4 + len(r.Key) + 4 + len(r.Value) + 4
		for _, h := range r.Headers {
			n += 8 + len(h.Key) + len(h.Value)
		}
	}
	return n
}

// AppendRecordsBinary appends a fetch result in the binary framing, all
// integers big-endian:
//
//	"WRB1" next_offset:i64 high_watermark:i64 log_start_offset:i64 count:u32
//	count × { offset:i64 timestamp:i64 key_len:i32 (-1: no key) key
//	          value_len:u32 value header_count:u32
//	          header_count × { name_len:u32 name value_len:u32 value } }
func AppendRecordsBinary(b []byte, res *core.FetchResult) []byte {
	be := binary.BigEndian
	b = append(b, recordsMagic...)
	b = be.AppendUint64(b, uint64(res.NextOffset))
	b = be.AppendUint64(b, uint64(res.HighWatermark))
	b = be.AppendUint64(b, uint64(res.LogStart))
	b = be.AppendUint32(b, uint32(len(res.Records)))
	for i := range res.Records {
		r := &res.Records[i]
		b = be.AppendUint64(b, uint64(r.Offset))
		b = be.AppendUint64(b, uint64(r.Timestamp))
		b = appendBinaryRecordBody(b, r)
	}
	return b
}

// appendBinaryRecordBody appends what the fetch and produce framings share
// after a record's timestamp: key_len:i32 (-1: no key) key value_len:u32
// value header_count:u32 { name_len:u32 name value_len:u32 value }.
func appendBinaryRecordBody(b []byte, r *core.Record) []byte {
	be := binary.BigEndian
	if r.Key == nil {
		b = be.AppendUint32(b, 0xFFFFFFFF) // -1
	} else {
		b = be.AppendUint32(b, uint32(len(r.Key)))
		b = append(b, r.Key...)
	}
	b = be.AppendUint32(b, uint32(len(r.Value)))
	b = append(b, r.Value...)
	b = be.AppendUint32(b, uint32(len(r.Headers)))
	for _, h := range r.Headers {
		b = be.AppendUint32(b, uint32(len(h.Key)))
		b = append(b, h.Key...)
		b = be.AppendUint32(b, uint32(len(h.Value)))
		b = append(b, h.Value...)
	}
	return b
}
