package main

import (
	"encoding/binary"
	"fmt"
)

// binaryMediaType selects Weir's binary fetch answer (docs/api.md, "Binary
// fetch answers").
const binaryMediaType = "application/vnd.weir.records"

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
