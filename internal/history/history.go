package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"time"
)

// Kind says what a client operation does.
type Kind string

// The operations a chaos workload records. The comments name the Op fields
// each kind uses and what its OK completion carries.
const (
	// Produce appends Op.Value (unique in the history) with Op.Key to
	// Op.Partition (ID -1: the broker picks). OK carries one Record: the
	// partition and offset the broker returned.
	Produce Kind = "produce"
	// Fetch reads Op.Partition from Op.Offset. OK carries the records
	// returned, in order; none means nothing was at Op.Offset.
	Fetch Kind = "fetch"
	// Poll is a consumer-group poll by consumer Op.Process of Op.Group in
	// rebalance epoch Op.Generation. OK carries the records of every
	// partition, each partition's in the order returned.
	Poll Kind = "poll"
	// Commit commits Op.Offset for Op.Group on Op.Partition.
	Commit Kind = "commit"
	// QueueReceive leases messages of a queue subscription named by
	// Op.Partition. OK carries the messages (offset = message id).
	QueueReceive Kind = "queue-receive"
	// QueueAck and QueueNack settle the messages in Op.Records.
	QueueAck  Kind = "queue-ack"
	QueueNack Kind = "queue-nack"
	// PipelineCount observes pipeline Op.Pipeline (and Op.Key, if counted
	// per key): Op.Inputs records went in, Op.Outputs came out. Record it
	// after the final drain.
	PipelineCount Kind = "pipeline-count"
)

// Type says which half of an operation an Event is, and how it ended.
type Type string

const (
	Invoke Type = "invoke" // the client is about to send the request
	OK     Type = "ok"     // the operation happened, with this result
	Fail   Type = "fail"   // the operation certainly did not happen
	Info   Type = "info"   // unknown: it may or may not have happened (timeout, reset)
)

// Partition names one partition of a topic (or a queue subscription).
type Partition struct {
	Topic string `json:"topic,omitempty"`
	ID    int32  `json:"partition,omitempty"`
}

func (p Partition) String() string { return fmt.Sprintf("%s/%d", p.Topic, p.ID) }

// Record is one value at one offset of a partition, as a client saw it.
type Record struct {
	Partition
	Offset int64  `json:"offset"`
	Value  string `json:"value,omitempty"`
}

func (r Record) String() string { return fmt.Sprintf("%v@%d=%q", r.Partition, r.Offset, r.Value) }

// Op is the request of an operation: Kind and the fields that kind uses.
type Op struct {
	Kind       Kind     `json:"kind"`
	Process    string   `json:"process,omitempty"` // producer or consumer id
	Partition           // topic and partition (requested, for Produce)
	Key        string   `json:"key,omitempty"`
	Value      string   `json:"value,omitempty"`
	Offset     int64    `json:"offset,omitempty"`     // Fetch start, Commit offset
	Group      string   `json:"group,omitempty"`      // Poll, Commit
	Generation int64    `json:"generation,omitempty"` // Poll: rebalance epoch
	Records    []Record `json:"records,omitempty"`    // QueueAck, QueueNack
	Pipeline   string   `json:"pipeline,omitempty"`
	Inputs     int      `json:"inputs,omitempty"`
	Outputs    int      `json:"outputs,omitempty"`
}

// Event is one line of a history: an invocation (Type Invoke, with Op) or
// a completion (OK with Records, Fail or Info with Error) of operation ID.
type Event struct {
	ID      int64         `json:"id"`
	Type    Type          `json:"type"`
	Time    time.Duration `json:"time"` // monotonic, since the recorder started
	Op      *Op           `json:"op,omitempty"`
	Records []Record      `json:"records,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// History is a sequence of events in the order they were recorded.
type History []Event

// Recorder records a history. It is safe for concurrent use by any number
// of client goroutines; events are stamped in the order they are recorded,
// so the stamps never decrease along the history.
type Recorder struct {
	now func() time.Duration

	mu     sync.Mutex // guards the fields below
	events History
	nextID int64
	done   map[int64]bool
}

// NewRecorder returns an empty recorder. now gives the time stamps; nil
// means monotonic time since NewRecorder. Tests pass a fake clock.
func NewRecorder(now func() time.Duration) *Recorder {
	if now == nil {
		start := time.Now()
		now = func() time.Duration { return time.Since(start) }
	}
	return &Recorder{now: now, done: map[int64]bool{}}
}

// Invoke records that op is about to be sent, and returns the handle that
// records its completion. The recorder keeps its own copy of op.
func (r *Recorder) Invoke(op Op) *Pending {
	op.Records = append([]Record(nil), op.Records...)
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.nextID
	r.nextID++
	r.events = append(r.events, Event{ID: id, Type: Invoke, Time: r.now(), Op: &op})
	return &Pending{r: r, id: id}
}

// History returns a copy of the events recorded so far.
func (r *Recorder) History() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(History(nil), r.events...)
}

func (r *Recorder) complete(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done[e.ID] {
		return
	}
	r.done[e.ID] = true
	e.Time = r.now()
	r.events = append(r.events, e)
}

// Pending is an invoked operation. The first of OK, Fail or Info records
// its completion; later calls do nothing. An operation never completed
// counts as Info. Safe for concurrent use.
type Pending struct {
	r  *Recorder
	id int64
}

// OK records that the operation happened and returned records (see Kind
// for what each kind returns). The recorder keeps its own copy.
func (p *Pending) OK(records ...Record) {
	p.r.complete(Event{ID: p.id, Type: OK, Records: append([]Record(nil), records...)})
}

// Fail records that the operation certainly did not happen.
func (p *Pending) Fail(err error) { p.r.complete(Event{ID: p.id, Type: Fail, Error: errText(err)}) }

// Info records that the outcome is unknown (timeout, connection lost).
func (p *Pending) Info(err error) { p.r.complete(Event{ID: p.id, Type: Info, Error: errText(err)}) }

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// WriteTo writes h as JSON lines, one event per line.
func (h History) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	enc := json.NewEncoder(cw)
	for _, e := range h {
		if err := enc.Encode(e); err != nil {
			return cw.n, fmt.Errorf("history: write event %d: %w", e.ID, err)
		}
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadHistory reads a history written by WriteTo.
func ReadHistory(r io.Reader) (History, error) {
	var h History
	dec := json.NewDecoder(bufio.NewReader(r))
	for line := 1; ; line++ {
		var e Event
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			return h, nil
		}
		if err != nil {
			return h, fmt.Errorf("history: event %d: %w", line, err)
		}
		h = append(h, e)
	}
}

// Never is the Return of an operation that was never completed.
const Never = time.Duration(math.MaxInt64)

// Call is an operation with its invocation and completion paired.
type Call struct {
	ID      int64
	Op      Op
	Status  Type          // OK, Fail or Info (also when never completed)
	Invoked time.Duration // stamp of the invocation
	Return  time.Duration // stamp of the completion, or Never
	Records []Record      // what an OK operation returned
	Error   string
}

// Calls pairs invocations with completions, in invocation order.
// Completions without an invocation are dropped.
func (h History) Calls() []Call {
	calls := make([]Call, 0, len(h)/2+1)
	at := make(map[int64]int, len(h)/2+1)
	for _, e := range h {
		if e.Type == Invoke && e.Op != nil {
			at[e.ID] = len(calls)
			calls = append(calls, Call{ID: e.ID, Op: *e.Op, Status: Info, Invoked: e.Time, Return: Never})
			continue
		}
		i, ok := at[e.ID]
		if !ok || calls[i].Return != Never {
			continue
		}
		calls[i].Status, calls[i].Return, calls[i].Records, calls[i].Error = e.Type, e.Time, e.Records, e.Error
	}
	sort.SliceStable(calls, func(i, j int) bool { return calls[i].Invoked < calls[j].Invoked })
	return calls
}
