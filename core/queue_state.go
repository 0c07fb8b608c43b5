package core

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
)

// The replicated state of one subscription on one partition lives in the
// partition's state (PartitionState) under the prefix
//
//	sub/<name>/<uid>/
//
// with one header key "h" and one key "m/<offset as 16 hex digits>" per
// message that is neither fresh nor done:
//
//	offsets < cursor               done (acked or dead-lettered)
//	cursor ≤ offset < frontier     done when no m/ key exists, else as the key says
//	offset ≥ frontier              fresh: never looked at by this subscription
//
// Every transaction rewrites the header (its generation grows), and is
// conditional on the header it was computed from, so two nodes (or two
// workers) can never both lease the same message.

const (
	subHeaderVersion byte = 1
	subEntryVersion  byte = 1
)

// Message statuses kept in m/ entries.
const (
	entryReady  byte = 1 // not leased: deliverable from notBefore on (fresh but blocked by its key, delayed, or nacked)
	entryLeased byte = 2 // leased until leaseUntil; after that and the backoff it is deliverable again
	entryDead   byte = 3 // attempts exhausted: waiting to be appended to the dead-letter topic as dlqSeq
)

// subHeader is the per-partition header of a subscription.
type subHeader struct {
	gen      uint64
	tag      uint64 // random per transaction: a condition on the header matches one state only
	frontier int64  // first offset never examined
	cursor   int64  // every offset below is done
	dlqNext  int64  // the next dead-letter sequence number
	// Counters since the subscription was created (this partition).
	delivered, acked, nacked, expired, deadLettered, dropped int64
}

func (h *subHeader) encode() []byte {
	b := make([]byte, 0, 64)
	b = append(b, subHeaderVersion)
	b = binary.AppendUvarint(b, h.gen)
	b = binary.BigEndian.AppendUint64(b, h.tag)
	for _, v := range []int64{h.frontier, h.cursor, h.dlqNext, h.delivered, h.acked, h.nacked, h.expired, h.deadLettered, h.dropped} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

var errBadSubState = errors.New("corrupt subscription state")

func decodeSubHeader(b []byte) (subHeader, error) {
	var h subHeader
	if len(b) == 0 || b[0] != subHeaderVersion {
		return h, errBadSubState
	}
	r := stateReader{b: b[1:]}
	h.gen = r.uvarint()
	h.tag = r.u64()
	for _, p := range []*int64{&h.frontier, &h.cursor, &h.dlqNext, &h.delivered, &h.acked, &h.nacked, &h.expired, &h.deadLettered, &h.dropped} {
		*p = r.varint()
	}
	return h, r.err
}

// subEntry is the state of one message in [cursor, frontier).
type subEntry struct {
	status     byte
	attempt    int    // deliveries so far
	nonce      uint64 // of the current (or last) lease; receipts carry it
	leaseUntil int64  // ms; leased only
	notBefore  int64  // ms; ready only: not deliverable before
	hasKey     bool
	keyHash    uint64 // of the record key, for ordering "key"
	prio       uint8  // the record's priority (priority subscriptions; 0 otherwise)
	dlqSeq     int64  // dead only
	lastError  string // the reason of the last failed attempt
}

// maxLastError bounds the reason a nack may leave on a message.
const maxLastError = 1024

func (e *subEntry) encode() []byte {
	b := make([]byte, 0, 40+len(e.lastError))
	// flags: bit 0 hasKey, bits 1–4 the priority (0 in entries written
	// before priorities existed).
	flags := e.prio << 1
	if e.hasKey {
		flags |= 1
	}
	b = append(b, subEntryVersion, e.status, flags)
	b = binary.AppendUvarint(b, uint64(e.attempt))
	b = binary.BigEndian.AppendUint64(b, e.nonce)
	b = binary.AppendVarint(b, e.leaseUntil)
	b = binary.AppendVarint(b, e.notBefore)
	b = binary.BigEndian.AppendUint64(b, e.keyHash)
	b = binary.AppendVarint(b, e.dlqSeq)
	b = binary.AppendUvarint(b, uint64(len(e.lastError)))
	return append(b, e.lastError...)
}

func decodeSubEntry(b []byte) (*subEntry, error) {
	if len(b) < 3 || b[0] != subEntryVersion {
		return nil, errBadSubState
	}
	e := &subEntry{status: b[1], hasKey: b[2]&1 == 1, prio: b[2] >> 1}
	r := stateReader{b: b[3:]}
	e.attempt = int(r.uvarint())
	e.nonce = r.u64()
	e.leaseUntil = r.varint()
	e.notBefore = r.varint()
	e.keyHash = r.u64()
	e.dlqSeq = r.varint()
	e.lastError = string(r.bytes(r.uvarint()))
	if r.err != nil || e.status < entryReady || e.status > entryDead || e.prio > MaxPriority {
		return nil, errBadSubState
	}
	return e, nil
}

type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadSubState
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errBadSubState
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) u64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = errBadSubState
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *stateReader) bytes(n uint64) []byte {
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errBadSubState
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// subStatePrefix is the state prefix of one subscription incarnation.
func subStatePrefix(name, uid string) string { return "sub/" + name + "/" + uid + "/" }

func entryKey(prefix string, off int64) string {
	var b [16]byte
	const hex = "0123456789abcdef"
	u := uint64(off)
	for i := 15; i >= 0; i-- {
		b[i] = hex[u&0xf]
		u >>= 4
	}
	return prefix + "m/" + string(b[:])
}

// parseEntryKey returns the offset of an m/ key under prefix.
func parseEntryKey(prefix, key string) (int64, bool) {
	rest, ok := strings.CutPrefix(key, prefix+"m/")
	if !ok || len(rest) != 16 {
		return 0, false
	}
	u, err := strconv.ParseUint(rest, 16, 64)
	if err != nil {
		return 0, false
	}
	return int64(u), true
}

// keyHash hashes a record key for ordering "key" (FNV-1a, 64 bits: a
// collision only makes two keys share an order, never breaks one).
func keyHash(k []byte) uint64 {
	h := fnv.New64a()
	h.Write(k)
	return h.Sum64()
}

// Backoff is the delay between failed deliveries of a message: InitialMs
// after the first failure, multiplied by Multiplier after each further one,
// never more than MaxMs.
type Backoff struct {
	InitialMs  int64   `json:"initial_ms"`
	MaxMs      int64   `json:"max_ms"`
	Multiplier float64 `json:"multiplier"`
}

// DefaultBackoff is 1 s, doubling, at most 60 s.
var DefaultBackoff = Backoff{InitialMs: 1000, MaxMs: 60000, Multiplier: 2}

// Delay returns the backoff in ms after failed attempt number attempt (≥ 1).
func (b Backoff) Delay(attempt int) int64 {
	if attempt < 1 {
		attempt = 1
	}
	d := float64(b.InitialMs) * math.Pow(b.Multiplier, float64(attempt-1))
	if math.IsInf(d, 0) || math.IsNaN(d) || d > float64(b.MaxMs) {
		return b.MaxMs
	}
	return int64(d)
}

func (b Backoff) validate() error {
	switch {
	case b.InitialMs < 0:
		return Invalidf("backoff.initial_ms must be ≥ 0")
	case b.MaxMs < b.InitialMs:
		return Invalidf("backoff.max_ms must be ≥ backoff.initial_ms")
	case b.Multiplier < 1 || b.Multiplier > 1000 || math.IsNaN(b.Multiplier):
		return Invalidf("backoff.multiplier must be between 1 and 1000")
	}
	return nil
}

// receipt identifies one lease of one message: the partition, the offset,
// the attempt and the lease's random nonce, bound to the subscription
// incarnation by a tag of its uid. It is opaque to clients.
type receipt struct {
	tag       uint32
	partition int
	offset    int64
	attempt   int
	nonce     uint64
}

const receiptVersion byte = 1

func uidTag(uid string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(uid))
	return h.Sum32()
}

func (r receipt) String() string {
	b := make([]byte, 0, 32)
	b = append(b, receiptVersion)
	b = binary.BigEndian.AppendUint32(b, r.tag)
	b = binary.AppendUvarint(b, uint64(r.partition))
	b = binary.AppendUvarint(b, uint64(r.offset))
	b = binary.AppendUvarint(b, uint64(r.attempt))
	b = binary.BigEndian.AppendUint64(b, r.nonce)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseReceipt(s string) (receipt, error) {
	var r receipt
	if len(s) == 0 || len(s) > 64 {
		return r, fmt.Errorf("%w: malformed receipt", ErrInvalidReceipt)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 5 || b[0] != receiptVersion {
		return r, fmt.Errorf("%w: malformed receipt", ErrInvalidReceipt)
	}
	r.tag = binary.BigEndian.Uint32(b[1:5])
	sr := stateReader{b: b[5:]}
	p := sr.uvarint()
	off := sr.uvarint()
	att := sr.uvarint()
	r.nonce = sr.u64()
	if sr.err != nil || len(sr.b) != 0 || p > math.MaxInt32 || off > math.MaxInt64 || att > math.MaxInt32 {
		return r, fmt.Errorf("%w: malformed receipt", ErrInvalidReceipt)
	}
	r.partition, r.offset, r.attempt = int(p), int64(off), int(att)
	return r, nil
}
