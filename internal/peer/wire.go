package peer

import (
	"encoding/binary"

	"github.com/weir-broker/weir/core"
)

// Wire format of a forwarded append:
//
//	uvarint len(producerID), producerID, varint sequence, varint timestamp,
//	records (core.AppendRecords)
func encodeAppend(b *core.AppendBatch) []byte {
	size := 32 + len(b.ProducerID)
	for i := range b.Records {
		size += b.Records[i].Size()
	}
	out := make([]byte, 0, size)
	out = binary.AppendUvarint(out, uint64(len(b.ProducerID)))
	out = append(out, b.ProducerID...)
	out = binary.AppendVarint(out, b.Sequence)
	out = binary.AppendVarint(out, b.Timestamp)
	return core.AppendRecords(out, b.Records)
}

func decodeAppend(body []byte) (*core.AppendBatch, error) {
	bad := core.Invalidf("malformed forwarded batch")
	n, k := binary.Uvarint(body)
	if k <= 0 || n > uint64(len(body)-k) || n > 255 {
		return nil, bad
	}
	b := &core.AppendBatch{ProducerID: string(body[k : k+int(n)])}
	body = body[k+int(n):]
	if b.Sequence, k = binary.Varint(body); k <= 0 {
		return nil, bad
	}
	body = body[k:]
	if b.Timestamp, k = binary.Varint(body); k <= 0 {
		return nil, bad
	}
	recs, err := core.DecodeRecords(nil, body[k:], 0)
	if err != nil {
		return nil, bad
	}
	b.Records = recs
	return b, nil
}

// Wire format of a read answer:
//
//	varint hwm, varint logStart, varint offset, varint firstOffset,
//	records (core.AppendRecords; offsets are dense from firstOffset)
func encodeReadResult(r core.ReadResult) []byte {
	out := make([]byte, 0, 64)
	out = binary.AppendVarint(out, r.HighWatermark)
	out = binary.AppendVarint(out, r.LogStart)
	out = binary.AppendVarint(out, r.Offset)
	first := int64(0)
	if len(r.Records) > 0 {
		first = r.Records[0].Offset
	}
	out = binary.AppendVarint(out, first)
	return core.AppendRecords(out, r.Records)
}

func decodeReadResult(b []byte) (core.ReadResult, error) {
	var r core.ReadResult
	var vals [4]int64
	for i := range vals {
		v, k := binary.Varint(b)
		if k <= 0 {
			return r, core.ErrCorruptBatch
		}
		vals[i], b = v, b[k:]
	}
	r.HighWatermark, r.LogStart, r.Offset = vals[0], vals[1], vals[2]
	recs, err := core.DecodeRecords(nil, b, vals[3])
	if err != nil {
		return r, err
	}
	r.Records = recs
	return r, nil
}
