package core

import (
	"encoding/binary"
	"errors"
)

// ErrCorruptBatch is returned when an encoded record batch cannot be decoded.
var ErrCorruptBatch = errors.New("corrupt record batch")

// AppendRecords appends the binary encoding of recs to dst and returns it.
//
// The encoding is what one Raft entry and one segment batch carry:
//
//	uvarint count
//	count × { varint timestamp-delta (from the previous record, first from 0),
//	          uvarint keyLen+1 (0 = no key), key,
//	          uvarint valueLen, value,
//	          uvarint headerCount, headerCount × {uvarint len, key, uvarint len, value} }
func AppendRecords(dst []byte, recs []Record) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(recs)))
	var prev int64
	for i := range recs {
		r := &recs[i]
		dst = binary.AppendVarint(dst, r.Timestamp-prev)
		prev = r.Timestamp
		if r.Key == nil {
			dst = append(dst, 0)
		} else {
			dst = binary.AppendUvarint(dst, uint64(len(r.Key))+1)
			dst = append(dst, r.Key...)
		}
		dst = binary.AppendUvarint(dst, uint64(len(r.Value)))
		dst = append(dst, r.Value...)
		dst = binary.AppendUvarint(dst, uint64(len(r.Headers)))
		for _, h := range r.Headers {
			dst = binary.AppendUvarint(dst, uint64(len(h.Key)))
			dst = append(dst, h.Key...)
			dst = binary.AppendUvarint(dst, uint64(len(h.Value)))
			dst = append(dst, h.Value...)
		}
	}
	return dst
}

// RecordCount returns the number of records in an encoded batch.
func RecordCount(b []byte) (int, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return 0, ErrCorruptBatch
	}
	return int(n), nil
}

// DecodeRecords decodes an encoded batch, numbering records from baseOffset,
// and appends them to dst. Keys, values and headers are copied out of b, so b
// may be reused by the caller.
func DecodeRecords(dst []Record, b []byte, baseOffset int64) ([]Record, error) {
	d := decoder{b: b}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(b)) {
		return dst, ErrCorruptBatch
	}
	var ts int64
	for i := uint64(0); i < n; i++ {
		var r Record
		r.Offset = baseOffset + int64(i)
		ts += d.varint()
		r.Timestamp = ts
		if kl := d.uvarint(); kl > 0 {
			r.Key = d.bytes(kl - 1)
		}
		r.Value = d.bytes(d.uvarint())
		if r.Value == nil {
			r.Value = []byte{}
		}
		hn := d.uvarint()
		if hn > uint64(len(b)) {
			return dst, ErrCorruptBatch
		}
		if hn > 0 {
			r.Headers = make([]Header, 0, hn)
			for j := uint64(0); j < hn && d.err == nil; j++ {
				k := d.bytes(d.uvarint())
				v := d.bytes(d.uvarint())
				r.Headers = append(r.Headers, Header{Key: string(k), Value: string(v)})
			}
		}
		if d.err != nil {
			return dst, ErrCorruptBatch
		}
		dst = append(dst, r)
	}
	return dst, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = ErrCorruptBatch
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.err = ErrCorruptBatch
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = ErrCorruptBatch
		return nil
	}
	out := make([]byte, n)
	copy(out, d.b[:n])
	d.b = d.b[n:]
	return out
}
