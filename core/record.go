package core

// Header is one record header. Headers keep the order the producer gave.
type Header struct {
	Key   string
	Value string
}

// Record is one message in a partition log.
//
// Offset and Timestamp are assigned by the broker when the record is appended
// (Timestamp keeps the producer's value when it gave one). Key may be nil
// (no key); Value may be empty.
type Record struct {
	Offset    int64
	Timestamp int64 // milliseconds since the Unix epoch
	Key       []byte
	Value     []byte
	Headers   []Header
}

// Header returns the value of the first header named k.
func (r *Record) Header(k string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == k {
			return h.Value, true
		}
	}
	return "", false
}

// Size is the approximate number of bytes the record takes on the wire and on
// disk; limits and max_bytes budgets use it.
func (r *Record) Size() int {
	n := 24 + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += 4 + len(h.Key) + len(h.Value)
	}
	return n
}
