package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strconv"
	"strings"
)

// On-disk layout constants; doc.go describes the format.
const (
	segMagic      = "WSEG"
	segVersion    = 1
	segHeaderSize = 32 // [4 magic][u16 version][u16 flags][i64 base][u64 prevIndex][u32 reserved][u32 crc]

	framePrefix     = 8                             // [u32 length][u32 crc]
	frameHeaderSize = 37                            // prefix + [u64 raftIndex][u8 kind][i64 base][u32 count][i64 maxTs]
	frameFixed      = frameHeaderSize - framePrefix // bytes counted by length besides the payload
	maxPayload      = math.MaxUint32 - frameFixed   // largest payload a frame can describe
	segSuffix       = ".seg"                        // segment file name suffix
	tmpSuffix       = ".tmp"                        // a segment being created; removed by Open
	segNameLen      = 20 + 1 + 20 + len(segSuffix)  // "<base>-<prevIndex>.seg"
	headerChunk     = 4 << 10                       // window for header-only scans
	dataChunk       = 1 << 20                       // window for full scans and copies
	maxRetainedWBuf = 8 << 20                       // larger write buffers are dropped after use
)

// castagnoli is the CRC32C table; read-only after package initialisation.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var le = binary.LittleEndian

// segName is the file name of the segment whose header holds base and prevIndex.
// Both are zero-padded so that names sort in log order.
func segName(base int64, prevIndex uint64) string {
	return fmt.Sprintf("%020d-%020d%s", base, prevIndex, segSuffix)
}

// parseSegName is the inverse of segName.
func parseSegName(name string) (base int64, prevIndex uint64, ok bool) {
	if len(name) != segNameLen || !strings.HasSuffix(name, segSuffix) || name[20] != '-' {
		return 0, 0, false
	}
	b, err1 := strconv.ParseInt(name[:20], 10, 64)
	p, err2 := strconv.ParseUint(name[21:41], 10, 64)
	if err1 != nil || err2 != nil || b < 0 {
		return 0, 0, false
	}
	return b, p, true
}

// segHeader is the fixed header at the start of every segment file.
type segHeader struct {
	base      int64  // the log's NextOffset when the segment was created
	prevIndex uint64 // the log's LastIndex when the segment was created
}

func (h segHeader) encode() []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	le.PutUint16(b[4:], segVersion)
	le.PutUint64(b[8:], uint64(h.base))
	le.PutUint64(b[16:], h.prevIndex)
	le.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

func decodeSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHeaderSize {
		return segHeader{}, fmt.Errorf("%w: short segment header", ErrCorrupt)
	}
	if string(b[:4]) != segMagic {
		return segHeader{}, fmt.Errorf("%w: bad segment magic", ErrCorrupt)
	}
	if crc32.Checksum(b[:28], castagnoli) != le.Uint32(b[28:]) {
		return segHeader{}, fmt.Errorf("%w: segment header checksum mismatch", ErrCorrupt)
	}
	if v := le.Uint16(b[4:]); v != segVersion {
		return segHeader{}, fmt.Errorf("%w: segment format version %d not supported", ErrCorrupt, v)
	}
	h := segHeader{base: int64(le.Uint64(b[8:])), prevIndex: le.Uint64(b[16:])}
	if h.base < 0 {
		return segHeader{}, fmt.Errorf("%w: negative segment base offset", ErrCorrupt)
	}
	return h, nil
}

// appendFrame encodes b as one frame into dst[:0], reusing its capacity.
func appendFrame(dst []byte, b *Batch) []byte {
	n := frameHeaderSize + len(b.Payload)
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	le.PutUint32(dst[0:], uint32(frameFixed+len(b.Payload)))
	le.PutUint64(dst[8:], b.RaftIndex)
	dst[16] = b.Kind
	le.PutUint64(dst[17:], uint64(b.BaseOffset))
	le.PutUint32(dst[25:], b.Count)
	le.PutUint64(dst[29:], uint64(b.MaxTimestamp))
	copy(dst[frameHeaderSize:], b.Payload)
	le.PutUint32(dst[4:], frameCRC(dst))
	return dst
}

// frameCRC is the CRC32C of a whole frame except its crc field.
func frameCRC(frame []byte) uint32 {
	return crc32.Update(crc32.Checksum(frame[:4], castagnoli), castagnoli, frame[8:])
}

// frameHeader is a decoded frame header; b.Payload is nil.
type frameHeader struct {
	length uint32 // bytes after the prefix
	crc    uint32
	b      Batch
}

func (h *frameHeader) size() int64 { return framePrefix + int64(h.length) }

func (h *frameHeader) payloadLen() int { return int(h.length) - frameFixed }

func parseFrameHeader(p []byte) frameHeader {
	return frameHeader{
		length: le.Uint32(p[0:]),
		crc:    le.Uint32(p[4:]),
		b: Batch{
			RaftIndex:    le.Uint64(p[8:]),
			Kind:         p[16],
			BaseOffset:   int64(le.Uint64(p[17:])),
			Count:        le.Uint32(p[25:]),
			MaxTimestamp: int64(le.Uint64(p[29:])),
		},
	}
}

// checkNext reports why b cannot follow a log whose last batch has Raft index
// lastIndex and whose next offset is next; nil when it can.
func checkNext(b *Batch, lastIndex uint64, next int64) error {
	switch {
	case b.RaftIndex <= lastIndex:
		return fmt.Errorf("raft index %d is not above the last index %d", b.RaftIndex, lastIndex)
	case b.BaseOffset < next:
		return fmt.Errorf("base offset %d is below the next offset %d", b.BaseOffset, next)
	case b.Count == 0 && b.Kind == 0:
		return errors.New("a record batch (kind 0) with no records")
	case b.BaseOffset > math.MaxInt64-int64(b.Count):
		return fmt.Errorf("base offset %d + count %d overflows", b.BaseOffset, b.Count)
	}
	return nil
}

// scanner walks the frames of one segment file through a window read with
// ReadAt. It never reads at or past end. Errors that describe the bytes (a
// torn or implausible frame, a checksum mismatch) wrap ErrCorrupt; I/O errors
// do not, so that recovery never truncates because of a failing disk.
type scanner struct {
	r      io.ReaderAt
	pos    int64  // file position of the current frame
	end    int64  // frames must end at or before end
	win    []byte // file bytes [winOff, winOff+len(win))
	winOff int64
	chunk  int  // preferred window size
	fresh  bool // allocate a new window on every refill: frames handed out stay valid
	h      frameHeader
}

// reset points the scanner at another file, keeping its window buffer when
// frames are not retained.
func (s *scanner) reset(r io.ReaderAt, pos, end int64) {
	s.r, s.pos, s.end = r, pos, end
	s.winOff = 0
	s.win = s.win[:0]
}

// window returns file bytes [pos, pos+n); pos+n must not exceed s.end.
func (s *scanner) window(pos int64, n int) ([]byte, error) {
	if pos >= s.winOff && pos+int64(n) <= s.winOff+int64(len(s.win)) {
		i := pos - s.winOff
		return s.win[i : i+int64(n)], nil
	}
	size := int64(max(n, s.chunk))
	size = min(size, s.end-pos)
	var buf []byte
	if s.fresh || int64(cap(s.win)) < size {
		buf = make([]byte, size)
	} else {
		buf = s.win[:size]
	}
	m, err := s.r.ReadAt(buf, pos)
	if int64(m) < size {
		s.win = s.win[:0]
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF // the file is shorter than it was: not the bytes' fault
		}
		return nil, fmt.Errorf("read at %d: %w", pos, err)
	}
	s.win, s.winOff = buf, pos
	return buf[:n], nil
}

// next decodes the header of the frame at s.pos; io.EOF at s.end.
func (s *scanner) next() (frameHeader, error) {
	left := s.end - s.pos
	if left == 0 {
		return frameHeader{}, io.EOF
	}
	if left < frameHeaderSize {
		return frameHeader{}, fmt.Errorf("%w: torn frame header at %d", ErrCorrupt, s.pos)
	}
	p, err := s.window(s.pos, frameHeaderSize)
	if err != nil {
		return frameHeader{}, err
	}
	h := parseFrameHeader(p)
	if h.length < frameFixed {
		return frameHeader{}, fmt.Errorf("%w: frame length %d at %d", ErrCorrupt, h.length, s.pos)
	}
	if h.size() > left {
		return frameHeader{}, fmt.Errorf("%w: frame of %d bytes at %d runs past the end (%d)", ErrCorrupt, h.size(), s.pos, s.end)
	}
	s.h = h
	return h, nil
}

// frame returns the bytes of the current frame after checking its CRC. They
// stay valid until the next refill, or for good when s.fresh is set.
func (s *scanner) frame() ([]byte, error) {
	p, err := s.window(s.pos, int(s.h.size()))
	if err != nil {
		return nil, err
	}
	if frameCRC(p) != s.h.crc {
		return nil, fmt.Errorf("%w: frame checksum mismatch at %d", ErrCorrupt, s.pos)
	}
	return p, nil
}

// advance moves past the current frame.
func (s *scanner) advance() { s.pos += s.h.size() }
