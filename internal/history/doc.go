// Package history records what the clients of a chaos run or test did, and
// checks the record for the anomalies Jepsen's Kafka and queue workloads
// look for (issue 16).
//
// # Recording
//
// A workload makes one Recorder and shares it among its client goroutines.
// Each client wraps every request: Invoke before sending, then exactly one
// of OK, Fail or Info when the answer (or no answer) comes back:
//
//	rec := history.NewRecorder(nil) // monotonic stamps; tests pass a fake clock
//
//	p := rec.Invoke(history.Op{Kind: history.Produce, Process: "p1",
//		Partition: history.Partition{Topic: "orders", ID: -1}, Key: k, Value: "p1-42"})
//	res, err := client.Produce(ctx, ...)
//	switch {
//	case err == nil:
//		p.OK(history.Record{Partition: history.Partition{Topic: "orders", ID: res.Partition}, Offset: res.Offset})
//	case definitelyRejected(err): // e.g. 400, 409, 413: nothing was appended
//		p.Fail(err)
//	default: // timeout, reset, 503: it may have been appended
//		p.Info(err)
//	}
//
// When in doubt, record Info: a Fail that did happen shows up as
// failed-then-read. Produce values must be unique in the history (Jepsen's
// process-counter, "p1-42"). A fetch records its start offset and the
// records returned; a group poll records the consumer, group and
// generation (the rebalance epoch: bump it whenever the consumer's
// assignment changes) and every record, with its partition. Commits,
// queue receive/ack/nack and pipeline counts are recorded the same way;
// Kind documents the fields of each. An operation never completed (the
// client died) counts as Info.
//
// # Checking
//
// After the faults stop, let consumers read every partition to its end
// (the final drain), record the pipelines' input and output counts, then:
//
//	h := rec.History()
//	h.WriteTo(f) // JSON lines: keep them next to the test log
//	rep := history.Check(h, history.Config{Drained: true})
//	t.Log(rep) // "anomaly class=<name> count=<n>" per class, then examples
//	if rep.Total() > 0 { t.Fatal(...) }
//
// ReadHistory loads a saved history again, to re-check or inspect a
// failing run without re-running it. The report always lists every class,
// in the order of Classes. What each class means, per partition:
//
//   - inconsistent-offsets: one offset holds two values.
//   - duplicate: one value at two offsets. Expected from a producer that
//     retries without producer_id and sequence; a bug for an idempotent one.
//   - lost-write: an acknowledged value never read although a later offset
//     of its partition was; with Config.Drained, any acknowledged value
//     never read.
//   - failed-then-read: a produce recorded as Fail was read.
//   - poll-skip, nonmonotonic-poll: a consumer's successive offsets in one
//     generation jump over offsets known to hold values, or go back (or
//     repeat one).
//   - nonmonotonic-send: a producer's offsets in a partition go back.
//   - realtime-order: a produce acknowledged before another was sent got
//     the higher offset.
//   - commit-backwards: a group's committed offset went back below one
//     acknowledged before the commit was sent.
//   - queue-redelivered-after-ack: a receive sent after an ack returned got
//     the acknowledged message again.
//   - exactly-once-count: a pipeline's output count differs from its input.
//
// # Linearizability
//
// CheckLinearizable runs porcupine on one partition's produces and fetches
// against a model log. It is exponential in the worst case, so run it on a
// short phase (a few hundred operations of one partition, many clients,
// fetches from fixed offsets) rather than on a whole chaos run.
//
// Stamps come from one monotonic clock, taken under the recorder's lock:
// they order the history, and "A returned before B was invoked" is
// A.Return < B.Invoked. Tests build histories with a fake clock so that
// nothing depends on timing.
package history
