// Package memstore is an in-memory core.Store for tests: topics, partition
// logs with their replicated key/value state, group offsets and the catalog,
// all in one process, with no Raft, no disk and no goroutines of its own.
//
// It implements the same contract as raftlog's store, and
// core/storetest's conformance suite runs against both: idempotent producer
// sequences (a retry of one of the last five batches answers its original
// offsets, a gap is a *core.SequenceError), dense offsets, the high
// watermark and log start, Changed channels, Read limits, OffsetForTime,
// segments that roll at Config.SegmentBytes (so retention can be tested)
// and TrimTo, state transactions with conditions, the catalog's
// compare-and-set with values stored as compact JSON, and the store's
// errors (core.ErrTopicExists, core.ErrTopicNotFound,
// core.ErrPartitionNotFound, core.ErrBadRequest).
//
// A write is applied when the call returns, so a test that appended a
// record can read it at once; reads never block. Where raftlog's timing
// differs (a write waits for a quorum; a restarted replica catches up), the
// domain code must not rely on either.
//
// # Faults
//
// Tests of the paths that handle failures inject them:
//
//	log, _ := st.Log("orders", 0)
//	log.Inject(memstore.Fault{Ops: memstore.OpTxn, Count: 2}) // the next two transactions fail with core.ErrUnavailable
//	log.Inject(memstore.Fault{Ops: memstore.OpAppend, Applied: true}) // applied, yet the caller sees an error: an unknown outcome
//	log.SetLeader(false) // services that work only on a partition's leader leave it alone
//	st.Inject(memstore.Fault{Ops: memstore.OpSync}) // CatalogSync fails: this node cannot reach the metadata leader
//
// Trims lists the offsets TrimTo was called with, for retention tests.
//
// Use it like this in a core test:
//
//	st := memstore.New(memstore.Config{SegmentBytes: 4 << 10})
//	b, err := core.NewBroker(st, core.BrokerConfig{})
//	b.CreateTopic(ctx, core.TopicConfig{Name: "orders", Partitions: 3})
package memstore
