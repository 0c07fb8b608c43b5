package history

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Class names a kind of anomaly, as in Jepsen's Kafka queue workload.
type Class string

// The anomaly classes, each with the unit it counts.
const (
	InconsistentOffsets      Class = "inconsistent-offsets"        // offsets holding two values
	Duplicate                Class = "duplicate"                   // values at two offsets
	LostWrite                Class = "lost-write"                  // acknowledged values not read (see Config.Drained)
	FailedThenRead           Class = "failed-then-read"            // values of failed produces that were read
	PollSkip                 Class = "poll-skip"                   // consumer steps that jump over known offsets
	NonmonotonicPoll         Class = "nonmonotonic-poll"           // consumer steps that go back (or repeat an offset)
	NonmonotonicSend         Class = "nonmonotonic-send"           // produces at a lower offset than the producer's previous
	RealtimeOrder            Class = "realtime-order"              // produces below one acknowledged before they began
	CommitBackwards          Class = "commit-backwards"            // commits below one acknowledged before they began
	QueueRedeliveredAfterAck Class = "queue-redelivered-after-ack" // deliveries of a message after its ack returned
	ExactlyOnceCount         Class = "exactly-once-count"          // pipeline observations with outputs ≠ inputs
)

// Classes returns every class, in the order a Report lists them.
func Classes() []Class {
	return []Class{InconsistentOffsets, Duplicate, LostWrite, FailedThenRead, PollSkip,
		NonmonotonicPoll, NonmonotonicSend, RealtimeOrder, CommitBackwards,
		QueueRedeliveredAfterAck, ExactlyOnceCount}
}

// Config tunes Check. The zero value checks a history without a final drain.
type Config struct {
	// Drained says the workload ended with a final drain: after the faults
	// stopped, consumers read every partition to its end. Every acknowledged
	// value must then have been read. Default false: only acknowledged
	// values below the highest offset read count as lost.
	Drained bool
	// Examples is how many examples each class keeps; 0 means 3.
	Examples int
}

// Anomaly is the count of one class and its first examples.
type Anomaly struct {
	Class    Class
	Count    int
	Examples []string
}

// Report lists every class, zero or not, in the order of Classes.
type Report struct {
	Anomalies []Anomaly
}

// Total is the number of anomalies of all classes.
func (r Report) Total() int {
	n := 0
	for _, a := range r.Anomalies {
		n += a.Count
	}
	return n
}

// Count is the number of anomalies of class c.
func (r Report) Count(c Class) int {
	for _, a := range r.Anomalies {
		if a.Class == c {
			return a.Count
		}
	}
	return 0
}

// Err is nil for a clean report, else an error holding String.
func (r Report) Err() error {
	if r.Total() == 0 {
		return nil
	}
	return errors.New("history: anomalies found\n" + r.String())
}

// String prints "anomaly class=<name> count=<n>" for every class, each
// followed by its examples indented.
func (r Report) String() string {
	var b strings.Builder
	for _, a := range r.Anomalies {
		fmt.Fprintf(&b, "anomaly class=%s count=%d\n", a.Class, a.Count)
		for _, e := range a.Examples {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	return b.String()
}

// Check looks for anomalies in h. Only OK operations are evidence, except
// failed produces (for failed-then-read). Queue receives are checked only
// for redelivery after ack; the log checks use Produce, Fetch and Poll.
// Check is deterministic: the same history gives the same report.
func Check(h History, cfg Config) Report {
	if cfg.Examples <= 0 {
		cfg.Examples = 3
	}
	c := &checker{cfg: cfg, rep: Report{}}
	for _, cl := range Classes() {
		c.rep.Anomalies = append(c.rep.Anomalies, Anomaly{Class: cl})
	}
	c.index(h.Calls())
	c.offsets()
	c.writes()
	c.polls()
	c.commits()
	c.queue()
	c.pipelines()
	return c.rep
}

// write is an acknowledged produce.
type write struct {
	Record
	process           string
	invoked, returned time.Duration
}

type checker struct {
	cfg   Config
	rep   Report
	calls []Call

	acked   []write                                 // in invocation order
	failed  map[string]bool                         // values of failed produces
	read    map[string]bool                         // values read
	at      map[Partition]map[int64]map[string]bool // values seen at each offset
	where   map[string]map[Record]bool              // positions of each value (Value cleared)
	maxRead map[Partition]int64                     // highest offset read
	known   map[Partition][]int64                   // offsets known to hold a value, sorted
}

func (c *checker) add(cl Class, format string, args ...any) {
	for i := range c.rep.Anomalies {
		if a := &c.rep.Anomalies[i]; a.Class == cl {
			a.Count++
			if len(a.Examples) < c.cfg.Examples {
				a.Examples = append(a.Examples, fmt.Sprintf(format, args...))
			}
		}
	}
}

// index collects what writes and reads say about each partition.
func (c *checker) index(calls []Call) {
	c.calls = calls
	c.failed, c.read = map[string]bool{}, map[string]bool{}
	c.at, c.where = map[Partition]map[int64]map[string]bool{}, map[string]map[Record]bool{}
	c.maxRead, c.known = map[Partition]int64{}, map[Partition][]int64{}
	see := func(r Record) {
		if c.at[r.Partition] == nil {
			c.at[r.Partition] = map[int64]map[string]bool{}
		}
		if c.at[r.Partition][r.Offset] == nil {
			c.at[r.Partition][r.Offset] = map[string]bool{}
		}
		c.at[r.Partition][r.Offset][r.Value] = true
		if c.where[r.Value] == nil {
			c.where[r.Value] = map[Record]bool{}
		}
		c.where[r.Value][Record{Partition: r.Partition, Offset: r.Offset}] = true
	}
	for _, call := range calls {
		switch {
		case call.Op.Kind == Produce && call.Status == Fail:
			c.failed[call.Op.Value] = true
		case call.Op.Kind == Produce && call.Status == OK && len(call.Records) > 0:
			r := call.Records[0]
			r.Value = call.Op.Value
			c.acked = append(c.acked, write{r, call.Op.Process, call.Invoked, call.Return})
			see(r)
		case (call.Op.Kind == Fetch || call.Op.Kind == Poll) && call.Status == OK:
			for _, r := range call.Records {
				c.read[r.Value] = true
				if m, ok := c.maxRead[r.Partition]; !ok || r.Offset > m {
					c.maxRead[r.Partition] = r.Offset
				}
				see(r)
			}
		}
	}
	for p, offs := range c.at {
		c.known[p] = slices.Sorted(maps.Keys(offs))
	}
}

// offsets finds inconsistent offsets, duplicates and failed-then-read.
func (c *checker) offsets() {
	for _, p := range slices.SortedFunc(maps.Keys(c.at), cmpPartition) {
		for _, off := range c.known[p] {
			if vs := c.at[p][off]; len(vs) > 1 {
				c.add(InconsistentOffsets, "%v offset %d holds %q", p, off, slices.Sorted(maps.Keys(vs)))
			}
		}
	}
	for _, v := range slices.Sorted(maps.Keys(c.where)) {
		if len(c.where[v]) > 1 {
			var at []string
			for _, r := range slices.SortedFunc(maps.Keys(c.where[v]), cmpRecord) {
				at = append(at, fmt.Sprintf("%v@%d", r.Partition, r.Offset))
			}
			c.add(Duplicate, "value %q at %s", v, strings.Join(at, ", "))
		}
	}
	for _, v := range slices.Sorted(maps.Keys(c.failed)) {
		if c.read[v] {
			c.add(FailedThenRead, "value %q: produce failed, then read", v)
		}
	}
}

// writes finds lost writes, nonmonotonic sends and realtime-order faults.
func (c *checker) writes() {
	type prodPart struct {
		process string
		p       Partition
	}
	last := map[prodPart]write{}
	byPart := map[Partition][]write{}
	for _, w := range c.acked {
		if !c.read[w.Value] {
			switch m, ok := c.maxRead[w.Partition]; {
			case ok && (c.cfg.Drained || w.Offset < m):
				c.add(LostWrite, "%v acknowledged, never read (highest offset read %d)", w.Record, m)
			case c.cfg.Drained:
				c.add(LostWrite, "%v acknowledged, never read (nothing read in %v)", w.Record, w.Partition)
			}
		}
		k := prodPart{w.process, w.Partition}
		if prev, ok := last[k]; ok && w.Offset < prev.Offset {
			c.add(NonmonotonicSend, "producer %s: %v after %v", w.process, w.Record, prev.Record)
		}
		last[k] = w
		byPart[w.Partition] = append(byPart[w.Partition], w)
	}
	for _, p := range slices.SortedFunc(maps.Keys(byPart), cmpPartition) {
		ws := byPart[p]
		prior := highestBefore(len(ws), func(i int) (time.Duration, time.Duration, int64) {
			return ws[i].invoked, ws[i].returned, ws[i].Offset
		})
		for i, j := range prior {
			if j >= 0 && ws[j].Offset > ws[i].Offset {
				c.add(RealtimeOrder, "%v acknowledged before %v was sent", ws[j].Record, ws[i].Record)
			}
		}
	}
}

// highestBefore returns, for each of n operations, the index of the one
// with the highest key among those that returned before it was invoked
// (-1 if none): a sweep in O(n log n). op(i) gives invoked, return, key.
func highestBefore(n int, op func(i int) (invoked, returned time.Duration, key int64)) []int {
	byInvoke, byReturn := make([]int, n), make([]int, n)
	for i := range n {
		byInvoke[i], byReturn[i] = i, i
	}
	slices.SortStableFunc(byInvoke, func(a, b int) int { ia, _, _ := op(a); ib, _, _ := op(b); return cmp.Compare(ia, ib) })
	slices.SortStableFunc(byReturn, func(a, b int) int { _, ra, _ := op(a); _, rb, _ := op(b); return cmp.Compare(ra, rb) })
	prior, best, bestKey, j := make([]int, n), -1, int64(0), 0
	for _, i := range byInvoke {
		inv, _, _ := op(i)
		for ; j < n; j++ {
			_, ret, key := op(byReturn[j])
			if ret >= inv {
				break
			}
			if best < 0 || key > bestKey {
				best, bestKey = byReturn[j], key
			}
		}
		prior[i] = best
	}
	return prior
}

// polls follows each consumer's position per partition: a Fetch starts at
// its Op.Offset; a Poll continues from the consumer's last offset in the
// same group generation (a rebalance starts afresh).
func (c *checker) polls() {
	type consumerPart struct {
		process string
		p       Partition
	}
	type position struct {
		group      string
		generation int64
		offset     int64
	}
	pos := map[consumerPart]position{}
	for _, call := range c.calls {
		if call.Status != OK || (call.Op.Kind != Fetch && call.Op.Kind != Poll) {
			continue
		}
		if call.Op.Kind == Fetch {
			pos[consumerPart{call.Op.Process, call.Op.Partition}] = position{offset: call.Op.Offset - 1}
		}
		for _, r := range call.Records {
			k := consumerPart{call.Op.Process, r.Partition}
			prev, ok := pos[k]
			cur := position{call.Op.Group, call.Op.Generation, r.Offset}
			if ok && prev.group == cur.group && prev.generation == cur.generation {
				switch skipped := c.between(r.Partition, prev.offset, r.Offset); {
				case r.Offset <= prev.offset:
					c.add(NonmonotonicPoll, "consumer %s: %v after offset %d", call.Op.Process, r, prev.offset)
				case skipped > 0:
					c.add(PollSkip, "consumer %s: %v after offset %d skips %d known offsets", call.Op.Process, r, prev.offset, skipped)
				}
			}
			pos[k] = cur
		}
	}
}

// between counts the known offsets of p strictly between lo and hi.
func (c *checker) between(p Partition, lo, hi int64) int {
	offs := c.known[p]
	i, _ := slices.BinarySearch(offs, lo+1)
	j, _ := slices.BinarySearch(offs, hi)
	return max(j-i, 0)
}

// commits finds commits below one that was acknowledged before they began.
func (c *checker) commits() {
	type groupPart struct {
		group string
		p     Partition
	}
	byGroup := map[groupPart][]Call{}
	var keys []groupPart
	for _, call := range c.calls {
		if call.Op.Kind == Commit && call.Status == OK {
			k := groupPart{call.Op.Group, call.Op.Partition}
			if byGroup[k] == nil {
				keys = append(keys, k)
			}
			byGroup[k] = append(byGroup[k], call)
		}
	}
	for _, k := range keys {
		cs := byGroup[k]
		prior := highestBefore(len(cs), func(i int) (time.Duration, time.Duration, int64) {
			return cs[i].Invoked, cs[i].Return, cs[i].Op.Offset
		})
		for i, j := range prior {
			if j >= 0 && cs[j].Op.Offset > cs[i].Op.Offset {
				c.add(CommitBackwards, "group %s %v: commit %d after commit %d was acknowledged", k.group, k.p, cs[i].Op.Offset, cs[j].Op.Offset)
			}
		}
	}
}

// queue finds messages delivered by a receive that began after an ack of
// the same message had returned OK.
func (c *checker) queue() {
	acked := map[Record]time.Duration{} // message (Value cleared) → earliest ack return
	for _, call := range c.calls {
		if call.Op.Kind == QueueAck && call.Status == OK {
			for _, r := range call.Op.Records {
				r.Value = ""
				if t, ok := acked[r]; !ok || call.Return < t {
					acked[r] = call.Return
				}
			}
		}
	}
	for _, call := range c.calls {
		if call.Op.Kind != QueueReceive || call.Status != OK {
			continue
		}
		for _, r := range call.Records {
			m := Record{Partition: r.Partition, Offset: r.Offset}
			if t, ok := acked[m]; ok && t < call.Invoked {
				c.add(QueueRedeliveredAfterAck, "%v delivered to %s after its ack returned", r, call.Op.Process)
			}
		}
	}
}

// pipelines finds pipeline counts whose outputs differ from their inputs.
func (c *checker) pipelines() {
	for _, call := range c.calls {
		if call.Status == OK && call.Op.Kind == PipelineCount && call.Op.Inputs != call.Op.Outputs {
			c.add(ExactlyOnceCount, "pipeline %q key %q: %d inputs, %d outputs",
				call.Op.Pipeline, call.Op.Key, call.Op.Inputs, call.Op.Outputs)
		}
	}
}

func cmpPartition(a, b Partition) int {
	return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.ID, b.ID))
}

func cmpRecord(a, b Record) int {
	return cmp.Or(cmpPartition(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
}
