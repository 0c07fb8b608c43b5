package core

import "context"

// StateOp writes or deletes one key of a partition's replicated state.
type StateOp struct {
	Key    string
	Value  []byte
	Delete bool
}

// StateCond is a precondition of a StateTxn: the key must hold exactly Value,
// or be absent when Absent is set.
type StateCond struct {
	Key    string
	Value  []byte
	Absent bool
}

// StateTxn is one atomic change to a partition: conditions, state writes and
// optionally a batch of records, all applied in one Raft entry or not at all.
// Queue leases and acks, and the exactly-once pipeline outbox (outputs,
// module state and input position together) are built on it.
type StateTxn struct {
	Conds  []StateCond
	Ops    []StateOp
	Append *AppendBatch // may be nil
}

// TxnResult is the outcome of a StateTxn.
type TxnResult struct {
	Applied    bool  // false: a condition failed and nothing changed
	FailedCond int   // index of the first failing condition when !Applied
	BaseOffset int64 // of Append's first record, when there was one
}

// PartitionState is the replicated key/value state kept beside a partition
// log, by the same Raft group, in the same snapshots. Keys are namespaced by
// convention ("sub/<name>/...", "pipe/<name>/...").
type PartitionState interface {
	// ApplyTxn proposes txn and waits until it is applied on this node.
	ApplyTxn(ctx context.Context, txn *StateTxn) (TxnResult, error)
	// StateGet reads this node's applied state.
	StateGet(key string) ([]byte, bool)
	// StateScan calls fn for every key with prefix, in key order, until fn
	// returns false. fn must not call back into the state.
	StateScan(prefix string, fn func(key string, value []byte) bool)
}

// CatalogCond is a precondition of a catalog write.
type CatalogCond struct {
	IfAbsent bool   // the key must not exist
	IfEqual  []byte // when not nil, the key must hold exactly this
}

// Catalog is cluster-wide replicated storage of small records (the metadata
// shard): modules, pipelines, subscriptions' definitions, group membership,
// principals. Values are JSON documents.
type Catalog interface {
	// CatalogPut writes a record when cond holds; false when it did not.
	CatalogPut(ctx context.Context, table, key string, value []byte, cond CatalogCond) (bool, error)
	// CatalogDelete removes a record when cond holds (IfEqual only); false
	// when it was absent or cond failed.
	CatalogDelete(ctx context.Context, table, key string, cond CatalogCond) (bool, error)
	CatalogGet(table, key string) ([]byte, bool)
	CatalogList(table string) map[string][]byte
	// CatalogChanged returns a channel closed at the next metadata change.
	CatalogChanged() <-chan struct{}
	// CatalogSync returns once this node's copy holds every change
	// committed before the call (a linearizable read of the metadata), so
	// that what is read next is at least that fresh; ErrUnavailable when
	// this node cannot tell (cut off from the metadata's leader). Readers
	// that must not act on a stale copy call it first: a group member's
	// poll and heartbeat, committed-offset reads.
	CatalogSync(ctx context.Context) error
}
