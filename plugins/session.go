package plugins

import (
	"crypto/rand"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/sdk/abi"
)

// stateSource reads committed state for a session: the pipeline's
// core.StateReader in the broker process, a round trip to the broker in a
// worker.
type stateSource interface {
	get(key []byte) (value []byte, ok bool, err error)
	// keys lists at most limit committed keys with prefix, at or after
	// start, in order.
	keys(prefix, start string, limit int) ([]string, error)
}

type readerSource struct{ r core.StateReader }

func (s readerSource) keys(prefix, start string, limit int) ([]string, error) {
	if l, ok := s.r.(core.StateLister); ok {
		return l.Keys(prefix, start, limit), nil
	}
	return nil, nil
}

func (s readerSource) get(key []byte) ([]byte, bool, error) {
	if s.r == nil {
		return nil, false, nil
	}
	v, ok := s.r.Get(key)
	return v, ok, nil
}

type stateEntry struct {
	val []byte
	ok  bool
}

type logLine struct {
	level int32
	msg   string
}

const maxLogBytes = 64 << 10 // per batch; more is dropped

// session is the host side of one batch: what the guest's host calls read
// and write. Nothing in it outlives the batch, so a failed batch leaves no
// trace: its state writes live only in overlay and changes.
type session struct {
	config   map[string]string
	nOutputs int
	nRecords int
	lim      limits
	src      stateSource

	overlay  map[string]stateEntry // this batch's writes and cached reads
	changes  []core.StateChange
	emitted  []byte // validated emitted frames, back to back
	dead     []core.DeadRecord
	logs     []logLine
	logBytes int
	failMsg  string
	err      error // first host-side failure; fails the batch
	tick     bool  // the call is a tick (abi.ExportTick), not a batch
	pending  bool  // the tick reported abi.TickPending
}

func newSession(config map[string]string, nOutputs, nRecords int, lim limits, src stateSource) *session {
	return &session{config: config, nOutputs: nOutputs, nRecords: nRecords, lim: lim, src: src}
}

func (s *session) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

func (s *session) emit(frames []byte) int32 {
	if int64(len(s.emitted))+int64(len(frames)) > s.lim.maxOut {
		s.fail(batchErrf(ErrOutputLimit, "more than %d bytes emitted", s.lim.maxOut))
		return abi.ErrOutputLimit
	}
	r := abi.NewReader(frames)
	for r.Len() > 0 {
		out := r.U32()
		if out&abi.Forward != 0 {
			out &^= abi.Forward
			if i := r.U32(); int64(i) >= int64(s.nRecords) {
				s.fail(batchErrf(ErrABI, "forward of input record %d, the batch has %d", i, s.nRecords))
				return abi.ErrBadIndex
			}
		} else {
			r.SkipRecord()
		}
		if r.Err() != nil {
			s.fail(batchErrf(ErrABI, "malformed emitted record"))
			return abi.ErrMalformed
		}
		if int(out) >= s.nOutputs {
			s.fail(batchErrf(ErrABI, "emit to output %d, the pipeline has %d", out, s.nOutputs))
			return abi.ErrBadOutput
		}
	}
	s.emitted = append(s.emitted, frames...)
	return 0
}

func (s *session) deadLetter(i int32, reason string) int32 {
	if i < 0 || int(i) >= s.nRecords {
		s.fail(batchErrf(ErrABI, "dead_letter index %d, the batch has %d records", i, s.nRecords))
		return abi.ErrBadIndex
	}
	s.dead = append(s.dead, core.DeadRecord{Index: int(i), Reason: reason})
	return 0
}

// stateGet returns the value for key: this batch's write if any, else the
// committed value (cached for the rest of the batch).
func (s *session) stateGet(key []byte) ([]byte, bool) {
	if e, ok := s.overlay[string(key)]; ok {
		return e.val, e.ok
	}
	v, ok, err := s.src.get(key)
	if err != nil {
		s.fail(err)
		return nil, false
	}
	if s.overlay == nil {
		s.overlay = make(map[string]stateEntry)
	}
	s.overlay[string(key)] = stateEntry{val: v, ok: ok}
	return v, ok
}

func (s *session) statePut(key, val []byte) int32 {
	if len(key)+len(val) > s.lim.maxState {
		s.fail(batchErrf(ErrABI, "state entry of %d bytes, above the limit of %d", len(key)+len(val), s.lim.maxState))
		return abi.ErrStateLimit
	}
	k := string(key)
	v := append([]byte{}, val...)
	if s.overlay == nil {
		s.overlay = make(map[string]stateEntry)
	}
	s.overlay[k] = stateEntry{val: v, ok: true}
	s.changes = append(s.changes, core.StateChange{Key: []byte(k), Value: v})
	return 0
}

func (s *session) stateDelete(key []byte) int32 {
	if len(key) > s.lim.maxState {
		s.fail(batchErrf(ErrABI, "state key of %d bytes, above the limit of %d", len(key), s.lim.maxState))
		return abi.ErrStateLimit
	}
	if s.overlay == nil {
		s.overlay = make(map[string]stateEntry)
	}
	s.overlay[string(key)] = stateEntry{}
	s.changes = append(s.changes, core.StateChange{Key: append([]byte{}, key...), Delete: true})
	return 0
}

// keysPage is how many committed keys one state_keys call asks its
// source for.
const keysPage = 1024

// stateKeys lists the keys with prefix at or after start, in order: one
// page of committed keys merged with this batch's writes and deletes.
// An empty result ends the listing.
func (s *session) stateKeys(prefix, start string) ([]string, error) {
	for {
		committed, err := s.src.keys(prefix, start, keysPage)
		if err != nil {
			return nil, err
		}
		full := len(committed) == keysPage
		in := func(k string) bool {
			return strings.HasPrefix(k, prefix) && k >= start && (!full || k <= committed[len(committed)-1])
		}
		out := make([]string, 0, len(committed))
		for _, k := range committed {
			if e, ok := s.overlay[k]; !ok || e.ok {
				out = append(out, k)
			}
		}
		added := false
		for k, e := range s.overlay {
			if _, dup := slices.BinarySearch(committed, k); e.ok && !dup && in(k) {
				out = append(out, k)
				added = true
			}
		}
		if added {
			sort.Strings(out)
		}
		if len(out) > 0 || !full {
			return out, nil
		}
		start = committed[len(committed)-1] + "\x00" // a page of deleted keys
	}
}

func (s *session) configGet(key []byte) (string, bool) {
	v, ok := s.config[string(key)]
	return v, ok
}

func (s *session) log(level int32, msg string) {
	if s.logBytes+len(msg) > maxLogBytes {
		return
	}
	s.logBytes += len(msg)
	s.logs = append(s.logs, logLine{level, msg})
}

// saw reports whether a log line of the batch contains sub.
func (s *session) saw(sub string) bool {
	for _, l := range s.logs {
		if strings.Contains(l.msg, sub) {
			return true
		}
	}
	return false
}

func (s *session) now() int64 { return time.Now().UnixNano() }

func (s *session) random(p []byte) { _, _ = rand.Read(p) }

// output decodes the emitted frames into a ProcessOutput.
func (s *session) output(in []core.Record) (*core.ProcessOutput, error) {
	out := &core.ProcessOutput{State: s.changes, Dead: s.dead}
	recs, err := decodeEmitted(s.emitted, in, s.lim.maxOut)
	if err != nil {
		return nil, err
	}
	out.Records = recs
	return out, nil
}

// decodeEmitted decodes emitted frames (validated by session.emit, but
// decoded again with checks: in a worker they crossed a pipe). Records alias
// b, and forwarded records share the memory of the input records in. The
// output limit counts forwarded records at their encoded size.
func decodeEmitted(b []byte, in []core.Record, maxOut int64) ([]core.OutputRecord, error) {
	if len(b) == 0 {
		return nil, nil
	}
	n, nh := 0, 0
	size := int64(len(b))
	r := abi.NewReader(b)
	for r.Len() > 0 {
		if out := r.U32(); out&abi.Forward != 0 {
			i := r.U32()
			if int64(i) >= int64(len(in)) {
				return nil, batchErrf(ErrABI, "forward of input record %d, the batch has %d", i, len(in))
			}
			size += int64(in[i].Size())
		} else {
			nh += r.SkipRecord()
		}
		n++
	}
	if r.Err() != nil {
		return nil, batchErrf(ErrABI, "malformed emitted record")
	}
	if size > maxOut {
		return nil, batchErrf(ErrOutputLimit, "more than %d bytes emitted", maxOut)
	}
	out := make([]core.OutputRecord, 0, n)
	headers := make([]core.Header, 0, nh)
	r = abi.NewSharedReader(b)
	var ar abi.Record
	for r.Len() > 0 {
		idx := r.U32()
		if idx&abi.Forward != 0 {
			src := &in[r.U32()]
			rec := core.Record{Timestamp: src.Timestamp, Key: src.Key, Value: src.Value, Headers: src.Headers}
			out = append(out, core.OutputRecord{Output: int(idx &^ abi.Forward), Record: rec})
			continue
		}
		r.Record(&ar)
		rec := core.Record{Timestamp: ar.Timestamp, Key: ar.Key, Value: ar.Value}
		if len(ar.Headers) > 0 {
			for _, h := range ar.Headers {
				headers = append(headers, core.Header{Key: h.Key, Value: h.Value})
			}
			rec.Headers = headers[len(headers)-len(ar.Headers) : len(headers) : len(headers)]
		}
		out = append(out, core.OutputRecord{Output: int(idx), Record: rec})
	}
	return out, nil
}

// appendBatch encodes a ProcessInput's records as an abi batch of the
// guest's ABI version.
func appendBatch(b []byte, version uint32, in *core.ProcessInput) []byte {
	b = abi.AppendBatchHeaderVersion(b, version, in.Topic, int32(in.Partition), in.Outputs, len(in.Records))
	for i := range in.Records {
		r := &in.Records[i]
		b = abi.AppendU64(b, uint64(r.Offset))
		b = abi.AppendU64(b, uint64(r.Timestamp))
		if r.Key == nil {
			b = abi.AppendU32(b, 0xffffffff)
		} else {
			b = abi.AppendBytes(b, r.Key)
		}
		b = abi.AppendBytes(b, r.Value)
		b = abi.AppendU32(b, uint32(len(r.Headers)))
		for _, h := range r.Headers {
			b = abi.AppendStr(b, h.Key)
			b = abi.AppendStr(b, h.Value)
		}
	}
	return b
}
