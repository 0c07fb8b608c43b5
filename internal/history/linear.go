package history

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// CheckLinearizable checks that the produces and fetches of partition p in
// h are linearizable against a log: an append returns the next offset; a
// fetch from offset o returns a prefix of the log from o, and nothing only
// if o is at or past its end. Produces with an unknown outcome may or may
// not have happened; failed produces did not. Polls are not used (their
// start offset is not recorded).
//
// Checking is NP-complete: give it a short history (hundreds of
// operations of one partition), as a dedicated phase of a chaos run. A
// timeout of 0 means none; porcupine.Unknown means it ran out of time.
func CheckLinearizable(h History, p Partition, timeout time.Duration) porcupine.CheckResult {
	return porcupine.CheckOperationsTimeout(logModel(), logOps(h.Calls(), p, false), timeout)
}

// CheckLinearizableDrained is CheckLinearizable for a history that ends
// with a read of all of p (after the faults healed and the cluster
// settled, when every write that will ever land has landed). A produce
// with an unknown outcome that no read saw then certainly did not happen,
// and is left out: each unknown kept would stay open to the end of the
// history, and a few dozen of them (one per request a fault cut off) make
// porcupine's search explode. The unknown produces that were read stay
// in, pinned by the reads to where they landed.
func CheckLinearizableDrained(h History, p Partition, timeout time.Duration) porcupine.CheckResult {
	return porcupine.CheckOperationsTimeout(logModel(), logOps(h.Calls(), p, true), timeout)
}

// logInput is an append of value (read false) or a fetch from offset.
type logInput struct {
	read   bool
	value  string
	offset int64
}

// logOutput is an append's offset (unknown if its outcome is) or the
// values a fetch returned.
type logOutput struct {
	unknown bool
	offset  int64
	values  []string
}

// logOps turns the calls touching p into porcupine operations; drained
// leaves out the unknown produces no read saw (CheckLinearizableDrained).
func logOps(calls []Call, p Partition, drained bool) []porcupine.Operation {
	readHere := map[string]bool{}
	for _, c := range calls {
		if c.Status == OK && (c.Op.Kind == Fetch || c.Op.Kind == Poll) {
			for _, r := range c.Records {
				readHere[r.Value] = readHere[r.Value] || r.Partition == p
			}
		}
	}
	var ops []porcupine.Operation
	add := func(c Call, in logInput, out logOutput) {
		ret := int64(c.Return)
		if out.unknown {
			ret = math.MaxInt64
		}
		ops = append(ops, porcupine.Operation{ClientId: len(ops), Input: in, Call: int64(c.Invoked), Output: out, Return: ret})
	}
	for _, c := range calls {
		switch {
		case c.Op.Kind == Produce && c.Status == OK && len(c.Records) > 0 && c.Records[0].Partition == p:
			add(c, logInput{value: c.Op.Value}, logOutput{offset: c.Records[0].Offset})
		case c.Op.Kind == Produce && c.Status == Info && (!drained && c.Op.Partition == p || readHere[c.Op.Value]):
			add(c, logInput{value: c.Op.Value}, logOutput{unknown: true})
		case c.Op.Kind == Fetch && c.Status == OK && c.Op.Partition == p:
			var vs []string
			for _, r := range c.Records {
				vs = append(vs, r.Value)
			}
			add(c, logInput{read: true, offset: c.Op.Offset}, logOutput{values: vs})
		}
	}
	return ops
}

// logModel is the log as porcupine sees it; its state is a []string never
// modified in place.
func logModel() porcupine.Model {
	m := porcupine.NondeterministicModel{
		Init: func() []any { return []any{[]string(nil)} },
		Step: func(state, input, output any) []any {
			log, in, out := state.([]string), input.(logInput), output.(logOutput)
			appended := func() []string { return append(slices.Clip(log), in.value) }
			switch {
			case in.read && len(out.values) == 0:
				if in.offset >= int64(len(log)) {
					return []any{log}
				}
			case in.read:
				end := in.offset + int64(len(out.values))
				if in.offset >= 0 && end <= int64(len(log)) && slices.Equal(log[in.offset:end], out.values) {
					return []any{log}
				}
			case out.unknown:
				return []any{log, appended()}
			case out.offset == int64(len(log)):
				return []any{appended()}
			}
			return nil
		},
		Equal: func(a, b any) bool { return slices.Equal(a.([]string), b.([]string)) },
		DescribeOperation: func(input, output any) string {
			in, out := input.(logInput), output.(logOutput)
			switch {
			case in.read:
				return fmt.Sprintf("fetch(%d) → %q", in.offset, out.values)
			case out.unknown:
				return fmt.Sprintf("append(%q) → ?", in.value)
			}
			return fmt.Sprintf("append(%q) → %d", in.value, out.offset)
		},
		DescribeState: func(state any) string { return "[" + strings.Join(state.([]string), " ") + "]" },
	}
	return m.ToModel()
}
