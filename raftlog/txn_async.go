package raftlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/weir-broker/weir/core"
)

var (
	_ core.TxnProposer = (*Partition)(nil)
	_ core.TxnProposer = (*routed)(nil)
)

// ProposeTxn queues txn on the partition's shard and returns without
// waiting, so that one goroutine can keep several transactions in flight,
// each conditional on the state the one before leaves (the queue model
// pipelines its lease and ack transactions so). Proposals one goroutine
// makes are queued in the order made.
//
// wait blocks until the outcome is known or ctx ends. A proposal that was
// provably not applied (dropped, for instance on a leader change) reports
// TxnResult{Applied: false, FailedCond: -1} and no error, like a failed
// condition; an error means the outcome is unknown. ProposeTxn itself fails
// (nothing was queued) when the shard cannot take proposals now; the
// caller may then fall back to ApplyTxn, which retries.
func (p *Partition) ProposeTxn(txn *core.StateTxn) (wait func(ctx context.Context) (core.TxnResult, error), err error) {
	cmd, err := encodeTxn(txn)
	if err != nil {
		return nil, core.Invalidf("%v", err)
	}
	rs, err := p.h.nh.Propose(p.h.nh.GetNoOPSession(p.shardID), cmd, p.h.cfg.ProposalTimeout)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", core.ErrUnavailable, err)
	}
	return func(ctx context.Context) (core.TxnResult, error) {
		res, err := awaitQueued(ctx, rs)
		switch {
		case err == nil:
			return txnResult(res)
		case errors.Is(err, errNotApplied):
			return core.TxnResult{FailedCond: -1}, nil
		}
		return core.TxnResult{}, err
	}, nil
}

// txnResult decodes the state machine's answer to a txn entry.
func txnResult(res sm.Result) (core.TxnResult, error) {
	if len(res.Data) == 0 {
		return core.TxnResult{}, fmt.Errorf("%w: empty txn result", core.ErrUnavailable)
	}
	switch res.Data[0] {
	case resultOK:
		return core.TxnResult{Applied: true, BaseOffset: int64(res.Value)}, nil
	case resultCondFailed:
		idx := 0
		if len(res.Data) >= 5 {
			idx = int(binary.BigEndian.Uint32(res.Data[1:]))
		}
		return core.TxnResult{FailedCond: idx}, nil
	default:
		return core.TxnResult{}, fmt.Errorf("%w: the partition rejected a corrupt transaction", core.ErrBadRequest)
	}
}

// ProposeTxn implements ProposeTxn for the routed handle Host.Partition
// returns: only where this node's replica leads the partition (a follower
// or a node without a replica fails, and the caller falls back to
// ApplyTxn, which forwards to the leader).
func (r *routed) ProposeTxn(txn *core.StateTxn) (func(ctx context.Context) (core.TxnResult, error), error) {
	p, err := r.leading()
	if err != nil {
		return nil, err
	}
	return p.ProposeTxn(txn)
}

// leading returns the local replica where it leads the partition, else
// core.ErrNotLeader: where a proposal may be queued without forwarding.
func (r *routed) leading() (*Partition, error) {
	if r.local == nil {
		return nil, fmt.Errorf("%w: no replica of %s/%d on this node", core.ErrNotLeader, r.topic, r.partition)
	}
	lid, _, ok, err := r.h.nh.GetLeaderID(r.shard)
	if err != nil || !ok || lid != r.local.sm.replicaID {
		return nil, fmt.Errorf("%w: this node does not lead %s/%d", core.ErrNotLeader, r.topic, r.partition)
	}
	return r.local, nil
}
