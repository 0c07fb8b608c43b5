package main

import (
	"encoding/binary"
	"fmt"
)

// binaryMediaType selects Weir's binary fetch answer (docs/api.md, "Binary
// fetch answers").
const binaryMediaType = "application/vnd.weir.records"

// weirBinaryBodies is weirBodies in the binary produce framing (docs/api.md,
// "Binary produce bodies"): the same keys and values, no JSON.
func weirBinaryBodies(c *config, p, n int) [][]byte {
	body := func(keys []string, v int) []byte {
		be := binary.BigEndian
		b := append([]byte("WRP1"), 0, 0) // no producer id
		b = be.AppendUint64(b, 0)
		b = be.AppendUint32(b, uint32(len(keys)))
		for i, k := range keys {
			val := c.value(v*n + i)
			b = be.AppendUint32(b, 0xFFFFFFFF) // partition -1: by key
			b = be.AppendUint64(b, 0)          // the broker's clock
			b = be.AppendUint32(b, uint32(len(k)))
			b = append(b, k...)
			b = be.AppendUint32(b, uint32(len(val)))
			b = append(b, val...)
			b = be.AppendUint32(b, 0) // no headers
		}
		return b
	}
	var out [][]byte
	for v := 0; v < 8; v++ {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = keyOf(p, v*n+i)
		}
		out = append(out, body(keys, v))
	}
	if n == 1 { // one at a time: more keys, so that every partition is hit
		for v := 8; v < 64; v++ {
			out = append(out, body([]string{keyOf(p, v)}, v))
		}
	}
	return out
}

// countBinary walks a binary fetch answer and returns its next offset and
// the number of records, checking every length on the way.
func countBinary(b []byte) (next int64, n int, err error) {
	be := binary.BigEndian
	if len(b) < 32 || string(b[:4]) != "WRB1" {
		return 0, 0, fmt.Errorf("not a binary fetch answer")
	}
	next = int64(be.Uint64(b[4:]))
	count := int(be.Uint32(b[28:]))
	p := b[32:]
	take := func(k int) bool {
		if k < 0 || len(p) < k {
			err = fmt.Errorf("truncated binary fetch answer")
			return false
		}
		p = p[k:]
		return true
	}
	for i := 0; i < count; i++ {
		if !take(16) || len(p) < 4 {
			return 0, 0, fmt.Errorf("truncated binary fetch answer")
		}
		kl := int32(be.Uint32(p))
		p = p[4:]
		if kl > 0 && !take(int(kl)) {
			return 0, 0, err
		}
		if len(p) < 4 {
			return 0, 0, fmt.Errorf("truncated binary fetch answer")
		}
		vl := int(be.Uint32(p))
		if !take(4) || !take(vl) || len(p) < 4 {
			return 0, 0, fmt.Errorf("truncated binary fetch answer")
		}
		hn := int(be.Uint32(p))
		p = p[4:]
		for j := 0; j < hn; j++ {
			for f := 0; f < 2; f++ {
				if len(p) < 4 {
					return 0, 0, fmt.Errorf("truncated binary fetch answer")
				}
				l := int(be.Uint32(p))
				if !take(4) || !take(l) {
					return 0, 0, err
				}
			}
		}
	}
	return next, count, nil
}
