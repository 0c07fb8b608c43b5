package abi

import (
	"encoding/binary"
	"errors"
	"math"
)

// Version is the ABI version this package encodes. A guest declares the
// version it speaks by exporting a function named ExportVersionPrefix followed
// by the decimal version (for version 2: "weir_abi_version_2"), so the host
// can check it before running any guest code.
//
// Version 2 adds to version 1, changing nothing of it: the optional export
// ExportTick and the import ImportStateKeys. The host runs guests of every
// version from MinVersion to Version and writes the guest's own version in
// the batch header.
const Version uint32 = 2

// MinVersion is the oldest ABI version a host of this package still runs.
const MinVersion uint32 = 1

// Names of the functions a guest exports.
const (
	// ExportVersionPrefix + decimal version: () -> (). Never called; its name
	// is the handshake.
	ExportVersionPrefix = "weir_abi_version_"
	// ExportAlloc: (size i32) -> (ptr i32). Returns a guest buffer of at least
	// size bytes into which the host writes the next batch. The buffer stays
	// owned by the guest; the host may ask again for every batch.
	ExportAlloc = "weir_alloc"
	// ExportProcess: (ptr i32, len i32) -> (status i32). Runs one batch; 0 is
	// success, anything else fails the batch (see ImportFail).
	ExportProcess = "weir_process"
	// ExportInitialize is the WASI reactor initializer. The host calls it once
	// per instance before anything else when the guest exports it.
	ExportInitialize = "_initialize"
	// ExportMemory is the guest's linear memory; required.
	ExportMemory = "memory"
	// ExportTick (version 2, optional): (ptr i32, len i32) -> (status i32).
	// The host calls it for an input partition that has no new records, at
	// the pipeline's tick interval, with a batch of zero records at ptr
	// (written to a weir_alloc buffer like a batch), so that timers fire
	// without new input. TickIdle or TickPending is success; anything else
	// fails the tick (see ImportFail). Its emitted records and state
	// writes are committed like a batch's.
	ExportTick = "weir_tick"
)

// Status codes of ExportTick.
const (
	// TickIdle: success, and nothing is pending: the host need not tick
	// this partition again before its next batch.
	TickIdle int32 = 0
	// TickPending: success, and timers are pending: tick again at the
	// interval.
	TickPending int32 = 1
)

// ImportModule is the module name of the host functions.
const ImportModule = "weir"

// Names of the host functions a guest may import from ImportModule.
// Pointers and lengths are i32.
const (
	// emit(ptr, len) -> i32: one or more emitted records back to back.
	// Returns 0, or a negative Err* code (the batch fails).
	ImportEmit = "emit"
	// dead_letter(index i32, reason_ptr, reason_len) -> i32: reject input
	// record index of the current batch with a reason.
	ImportDeadLetter = "dead_letter"
	// state_get(key_ptr, key_len, buf_ptr, buf_cap) -> i32: -1 when the key
	// has no value, else the value's length n; the value is copied to buf
	// only when n <= buf_cap (call again with a larger buffer otherwise).
	ImportStateGet = "state_get"
	// state_put(key_ptr, key_len, val_ptr, val_len) -> i32: 0 or an Err* code.
	ImportStatePut = "state_put"
	// state_delete(key_ptr, key_len) -> i32: 0 or an Err* code.
	ImportStateDelete = "state_delete"
	// config_get(key_ptr, key_len, buf_ptr, buf_cap) -> i32: like state_get,
	// over the pipeline's config.
	ImportConfigGet = "config_get"
	// log(level i32, ptr, len): a log line; see Level*.
	ImportLog = "log"
	// now() -> i64: wall clock, nanoseconds since the Unix epoch.
	ImportNow = "now"
	// random(ptr, len): fills the buffer with cryptographically random bytes.
	ImportRandom = "random"
	// fail(ptr, len): sets the error message of the current batch; the guest
	// then returns non-zero from weir_process.
	ImportFail = "fail"
	// state_keys(prefix_ptr, prefix_len, start_ptr, start_len, buf_ptr,
	// buf_cap) -> i32 (version 2): the state keys that begin with prefix
	// and are at or after start, in byte order, including the batch's own
	// writes (and not its deletes), as back-to-back strs (u32 length,
	// bytes). The host writes as many whole keys as fit in buf and returns
	// the bytes written: 0 when no key is left. When even the first key does
	// not fit, it writes nothing and returns the bytes that key needs (more
	// than buf_cap): call again with a bigger buffer. Continue a listing
	// with start = the last key returned followed by a zero byte.
	ImportStateKeys = "state_keys"
)

// Log levels for ImportLog.
const (
	LevelDebug int32 = 0
	LevelInfo  int32 = 1
	LevelWarn  int32 = 2
	LevelError int32 = 3
)

// Error codes host functions return. Every one of them also fails the batch
// on the host side, whatever the guest does next.
const (
	ErrMalformed   int32 = -1 // bytes did not decode
	ErrOutputLimit int32 = -2 // the batch's output byte limit was exceeded
	ErrBadOutput   int32 = -3 // output index out of range
	ErrBadIndex    int32 = -4 // dead_letter index out of range
	ErrStateLimit  int32 = -5 // key or value too large
)

// Forward marks an emitted frame that forwards an input record unchanged:
// the frame is u32 (Forward | output index), u32 input record index, and
// the host copies the record (key, value, headers, timestamp) itself. It
// spares the guest re-encoding records it passes on as they are.
const Forward uint32 = 1 << 31

// NotFound is what state_get and config_get return for a missing key.
const NotFound int32 = -1

// ErrShort is returned by decoders when the input ends early or a length is
// out of range.
var ErrShort = errors.New("abi: truncated or malformed data")

// Header is one record header.
type Header struct {
	Key   string
	Value string
}

// Record is the ABI view of a record. Decoded records alias the buffer they
// were decoded from.
type Record struct {
	Offset    int64
	Timestamp int64
	Key       []byte // nil: no key; non-nil and empty: an empty key
	Value     []byte
	Headers   []Header
}

// BatchHeader is what precedes the records of a batch.
type BatchHeader struct {
	Version   uint32
	Topic     string
	Partition int32
	Outputs   []string
	Count     uint32
}

// AppendU32 appends v little-endian.
func AppendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

// AppendU64 appends v little-endian.
func AppendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// AppendStr appends a u32 length and the bytes of s.
func AppendStr(b []byte, s string) []byte {
	b = AppendU32(b, uint32(len(s)))
	return append(b, s...)
}

// AppendBytes appends a u32 length and p.
func AppendBytes(b []byte, p []byte) []byte {
	b = AppendU32(b, uint32(len(p)))
	return append(b, p...)
}

// AppendBatchHeader appends the batch header of this package's Version;
// count records must follow.
func AppendBatchHeader(b []byte, topic string, partition int32, outputs []string, count int) []byte {
	return AppendBatchHeaderVersion(b, Version, topic, partition, outputs, count)
}

// AppendBatchHeaderVersion appends a batch header declaring ABI version v
// (the guest's: the layout is the same in every version).
func AppendBatchHeaderVersion(b []byte, v uint32, topic string, partition int32, outputs []string, count int) []byte {
	b = AppendU32(b, v)
	b = AppendStr(b, topic)
	b = AppendU32(b, uint32(partition))
	b = AppendU32(b, uint32(len(outputs)))
	for _, o := range outputs {
		b = AppendStr(b, o)
	}
	return AppendU32(b, uint32(count))
}

// AppendRecord appends one record.
func AppendRecord(b []byte, offset, timestamp int64, key, value []byte, headers []Header) []byte {
	n := RecordSize(key, value, headers)
	o := len(b)
	if cap(b)-o < n {
		b = append(b[:cap(b)], make([]byte, n+cap(b)/2)...)
	}
	b = b[:o+n]
	le := binary.LittleEndian
	le.PutUint64(b[o:], uint64(offset))
	le.PutUint64(b[o+8:], uint64(timestamp))
	o += 16
	if key == nil {
		le.PutUint32(b[o:], math.MaxUint32) // -1
		o += 4
	} else {
		le.PutUint32(b[o:], uint32(len(key)))
		o += 4 + copy(b[o+4:], key)
	}
	le.PutUint32(b[o:], uint32(len(value)))
	o += 4 + copy(b[o+4:], value)
	le.PutUint32(b[o:], uint32(len(headers)))
	o += 4
	for _, h := range headers {
		le.PutUint32(b[o:], uint32(len(h.Key)))
		o += 4 + copy(b[o+4:], h.Key)
		le.PutUint32(b[o:], uint32(len(h.Value)))
		o += 4 + copy(b[o+4:], h.Value)
	}
	return b
}

// AppendEmitted appends one emitted record for output index out.
func AppendEmitted(b []byte, out uint32, r *Record) []byte {
	b = AppendU32(b, out)
	return AppendRecord(b, 0, r.Timestamp, r.Key, r.Value, r.Headers)
}

// AppendForward appends a frame forwarding input record index to output.
func AppendForward(b []byte, out, index uint32) []byte {
	return AppendU32(AppendU32(b, Forward|out), index)
}

// RecordSize is the encoded size of a record with these fields.
func RecordSize(key, value []byte, headers []Header) int {
	n := 8 + 8 + 4 + len(key) + 4 + len(value) + 4
	for _, h := range headers {
		n += 8 + len(h.Key) + len(h.Value)
	}
	return n
}

// AppendKeys appends the keys that fit in limit bytes (each as a str) and
// returns the new slice and the number of keys appended; what state_keys
// writes. When not even keys[0] fits it appends nothing and returns its
// encoded size as need.
func AppendKeys(b []byte, keys []string, limit int) (out []byte, n, need int) {
	used := 0
	for _, k := range keys {
		sz := 4 + len(k)
		if used+sz > limit {
			if n == 0 {
				return b, 0, sz
			}
			break
		}
		b = AppendStr(b, k)
		used += sz
		n++
	}
	return b, n, 0
}

// Reader decodes ABI data from a byte slice. Decoded byte slices alias the
// input; strings are copies. After the first failure every method returns
// zero values and Err reports ErrShort.
type Reader struct {
	buf    []byte
	off    int
	err    error
	shared bool
	str    string // a copy of buf made on the first Str of a shared Reader
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// NewSharedReader returns a Reader whose strings are substrings of one copy
// of b, made at the first Str: one allocation per buffer instead of one per
// string, at the price of every string keeping the whole copy alive.
func NewSharedReader(b []byte) *Reader { return &Reader{buf: b, shared: true} }

// Reset makes r read b from its start, keeping its sharing mode.
func (r *Reader) Reset(b []byte) { *r = Reader{buf: b, shared: r.shared} }

// Err is ErrShort after a failed read, else nil.
func (r *Reader) Err() error { return r.err }

// Len is the number of unread bytes.
func (r *Reader) Len() int { return len(r.buf) - r.off }

// Offset is the number of bytes read so far.
func (r *Reader) Offset() int { return r.off }

func (r *Reader) fail() { r.err = ErrShort; r.off = len(r.buf) }

// U32 reads a u32.
func (r *Reader) U32() uint32 {
	if r.err != nil || len(r.buf)-r.off < 4 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint32(r.buf[r.off:])
	r.off += 4
	return v
}

// U64 reads a u64.
func (r *Reader) U64() uint64 {
	if r.err != nil || len(r.buf)-r.off < 8 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(r.buf[r.off:])
	r.off += 8
	return v
}

// Bytes reads a u32 length and that many bytes (aliasing the input).
func (r *Reader) Bytes() []byte {
	n := r.U32()
	return r.take(n)
}

func (r *Reader) take(n uint32) []byte {
	if r.err != nil || uint64(len(r.buf)-r.off) < uint64(n) {
		r.fail()
		return nil
	}
	p := r.buf[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return p
}

// Str reads a str.
func (r *Reader) Str() string {
	b := r.Bytes()
	if !r.shared || len(b) == 0 {
		return string(b)
	}
	if len(r.str) != len(r.buf) {
		r.str = string(r.buf)
	}
	return r.str[r.off-len(b) : r.off]
}

// BatchHeader reads a batch header.
func (r *Reader) BatchHeader() BatchHeader {
	var h BatchHeader
	h.Version = r.U32()
	h.Topic = string(r.Bytes())
	h.Partition = int32(r.U32())
	n := r.U32()
	if uint64(n)*4 > uint64(r.Len()) {
		r.fail()
		return h
	}
	if n > 0 {
		h.Outputs = make([]string, n)
		for i := range h.Outputs {
			h.Outputs[i] = string(r.Bytes())
		}
	}
	h.Count = r.U32()
	return h
}

// Record reads one record into rec, reusing rec.Headers' storage.
func (r *Reader) Record(rec *Record) {
	if r.err != nil {
		r.fail()
		return
	}
	b := r.buf[r.off:]
	if len(b) < 28 {
		r.fail()
		return
	}
	le := binary.LittleEndian
	rec.Offset = int64(le.Uint64(b))
	rec.Timestamp = int64(le.Uint64(b[8:]))
	kl := le.Uint32(b[16:])
	o := 20
	if kl == math.MaxUint32 {
		rec.Key = nil
	} else {
		if uint64(len(b)-o) < uint64(kl)+8 {
			r.fail()
			return
		}
		rec.Key = b[o : o+int(kl) : o+int(kl)]
		o += int(kl)
	}
	vl := le.Uint32(b[o:])
	o += 4
	if uint64(len(b)-o) < uint64(vl)+4 {
		r.fail()
		return
	}
	rec.Value = b[o : o+int(vl) : o+int(vl)]
	o += int(vl)
	n := le.Uint32(b[o:])
	o += 4
	r.off += o
	rec.Headers = rec.Headers[:0]
	if n == 0 {
		return
	}
	if uint64(n)*8 > uint64(r.Len()) {
		r.fail()
		return
	}
	for i := uint32(0); i < n; i++ {
		k := r.Str()
		v := r.Str()
		rec.Headers = append(rec.Headers, Header{Key: k, Value: v})
	}
}

// Emitted reads one emitted record: its output index and the record.
func (r *Reader) Emitted(rec *Record) uint32 {
	out := r.U32()
	r.Record(rec)
	return out
}

// SkipRecord advances past one record without decoding it and returns its
// number of headers.
func (r *Reader) SkipRecord() int {
	r.U64()
	r.U64()
	if kl := r.U32(); kl != math.MaxUint32 {
		r.take(kl)
	}
	r.Bytes()
	n := r.U32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.Bytes()
		r.Bytes()
	}
	return int(n)
}
