package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"

	"github.com/weir-broker/weir/core"
)

// Partition shard commands. Every Raft entry of a partition shard starts with
// a version byte and a command type byte.
const (
	cmdVersion = 1

	cmdAppend byte = 1 // a producer batch
	cmdTrim   byte = 2 // retention: delete segments below an offset
	// cmdAppendS2 is cmdAppend with the records part of the envelope
	// compressed (S2 block format); the segment keeps it so
	// (kindRecordsS2). See compressAppend.
	cmdAppendS2 byte = 8
)

// Segment batch kinds. Kind 0 holds records; the others are control batches
// that carry state changes so that a restart can replay them.
const (
	kindRecords   uint8 = 0
	kindTrim      uint8 = 2
	kindRecordsS2 uint8 = 5 // kindRecords whose records part is S2-compressed
)

// Result codes carried in statemachine.Result.Data[0] for appends.
const (
	resultOK        byte = 0
	resultDuplicate byte = 1
	resultSequence  byte = 2 // Data[1:9] = expected sequence (big endian)
	resultCorrupt   byte = 3
)

var errBadCommand = errors.New("raftlog: malformed command")

// appendCmd is the decoded form of a cmdAppend entry:
//
//	[ver][cmdAppend][i64 timestamp][i64 maxTimestamp][u32 count][envelope...]
//
// where envelope (what the segment batch stores as its payload) is
//
//	uvarint len(producerID), producerID, varint sequence, records (core.AppendRecords)
type appendCmd struct {
	compressed   bool // cmdAppendS2: records is S2-compressed
	maxTimestamp int64
	count        uint32
	envelope     []byte // aliases the entry
	producerID   string
	sequence     int64
	records      []byte // aliases the entry
}

const appendHeaderLen = 2 + 8 + 8 + 4

// encodeAppend builds an append command. records is the core.AppendRecords encoding.
func encodeAppend(dst []byte, producerID string, seq int64, ts, maxTs int64, count int, records []byte) []byte {
	dst = append(dst, cmdVersion, cmdAppend)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	dst = binary.BigEndian.AppendUint64(dst, uint64(maxTs))
	dst = binary.BigEndian.AppendUint32(dst, uint32(count))
	dst = binary.AppendUvarint(dst, uint64(len(producerID)))
	dst = append(dst, producerID...)
	dst = binary.AppendVarint(dst, seq)
	return append(dst, records...)
}

func decodeAppend(b []byte) (appendCmd, error) {
	var c appendCmd
	if len(b) < appendHeaderLen {
		return c, errBadCommand
	}
	c.compressed = b[1] == cmdAppendS2
	c.maxTimestamp = int64(binary.BigEndian.Uint64(b[10:]))
	c.count = binary.BigEndian.Uint32(b[18:])
	c.envelope = b[appendHeaderLen:]
	pid, seq, recs, err := splitEnvelope(c.envelope)
	if err != nil {
		return c, err
	}
	c.producerID, c.sequence, c.records = pid, seq, recs
	return c, nil
}

// splitEnvelope parses a records batch payload into producer id, sequence and
// the records encoding.
func splitEnvelope(b []byte) (pid string, seq int64, records []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", 0, nil, errBadCommand
	}
	pid = string(b[k : k+int(n)])
	b = b[k+int(n):]
	seq, k = binary.Varint(b)
	if k <= 0 {
		return "", 0, nil, errBadCommand
	}
	return pid, seq, b[k:], nil
}

// skipEnvelope returns the records encoding of a batch payload without
// allocating the producer id.
func skipEnvelope(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, errBadCommand
	}
	b = b[k+int(n):]
	_, k = binary.Varint(b)
	if k <= 0 {
		return nil, errBadCommand
	}
	return b[k:], nil
}

// compressAppend returns cmd, an append command whose records start at
// cmd[head:], as a cmdAppendS2 command, or nil when S2 does not save
// enough (core.WorthCompressing).
func compressAppend(cmd []byte, head int) []byte {
	src := cmd[head:]
	out := make([]byte, head+s2.MaxEncodedLen(len(src)))
	copy(out, cmd[:head])
	enc := s2.Encode(out[head:], src)
	if !core.WorthCompressing(len(enc), len(src)) {
		return nil
	}
	out[1] = cmdAppendS2
	return out[:head+len(enc)]
}

// maxRecordsBytes bounds what the records of one batch may decompress to:
// more than any proposal can hold, so only a corrupt batch exceeds it.
const maxRecordsBytes = 256 << 20

// decompressRecords decodes the S2-compressed records part of a
// kindRecordsS2 batch into a new buffer (the records read from it alias it).
func decompressRecords(src []byte) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil || n > maxRecordsBytes {
		return nil, fmt.Errorf("%w: compressed records: length %d: %v", errBadCommand, n, err)
	}
	out, err := s2.Decode(make([]byte, n), src)
	if err != nil {
		return nil, fmt.Errorf("%w: compressed records: %v", errBadCommand, err)
	}
	return out, nil
}

func encodeTrim(offset int64) []byte {
	b := []byte{cmdVersion, cmdTrim}
	return binary.BigEndian.AppendUint64(b, uint64(offset))
}

func decodeTrim(b []byte) (int64, error) {
	if len(b) != 10 {
		return 0, errBadCommand
	}
	return int64(binary.BigEndian.Uint64(b[2:])), nil
}

func checkHeader(b []byte) (byte, error) {
	if len(b) < 2 {
		return 0, errBadCommand
	}
	if b[0] != cmdVersion {
		return 0, fmt.Errorf("raftlog: unknown command version %d", b[0])
	}
	return b[1], nil
}
