package memstore

import (
	"bytes"
	"context"
	"fmt"

	"github.com/weir-broker/weir/core"
)

// preparedTxn is a transaction checked and encoded outside the lock.
type preparedTxn struct {
	txn     *core.StateTxn
	b       batch // its records (count 0: none)
	payload int   // raftlog's segment payload bytes
}

var _ core.TxnProposer = (*Partition)(nil)

func prepareTxn(cfg *Config, txn *core.StateTxn) (*preparedTxn, error) {
	pt := &preparedTxn{txn: txn, payload: 4 + 4}
	for _, o := range txn.Ops {
		pt.payload += 4 + len(o.Key) + 1 + 4 + len(o.Value)
	}
	if a := txn.Append; a != nil && len(a.Records) > 0 {
		if a.ProducerID != "" {
			return nil, core.Invalidf("a state transaction's append cannot be idempotent by producer id; use conditions")
		}
		pt.b = batch{count: len(a.Records), maxTs: a.Stamp(), recs: core.AppendRecords(nil, a.Records)}
		pt.payload += envelopeBytes("", 0, pt.b.recs)
	}
	if pt.payload > cfg.MaxEntryBytes {
		return nil, fmt.Errorf("%w: transaction exceeds the entry limit", core.ErrTooLarge)
	}
	return pt, nil
}

// applyTxn is raftlog's rule: the first failing condition (in order)
// refuses the whole transaction; otherwise one batch is written (records,
// or a control batch) and the ops applied in order. BaseOffset is the
// high watermark before the batch. The caller holds p.mu.
func (p *Partition) applyTxn(pt *preparedTxn) core.TxnResult {
	for i, c := range pt.txn.Conds {
		cur, ok := p.state[c.Key]
		if c.Absent && ok || !c.Absent && (!ok || !bytes.Equal(cur, c.Value)) {
			return core.TxnResult{FailedCond: i}
		}
	}
	base := p.next
	b := pt.b
	b.base = base
	p.add(b, pt.payload)
	for _, o := range pt.txn.Ops {
		if o.Delete {
			delete(p.state, o.Key)
		} else {
			p.state[o.Key] = bytes.Clone(o.Value)
		}
	}
	return core.TxnResult{Applied: true, BaseOffset: base}
}

// ApplyTxn implements core.PartitionState. Errors: core.ErrBadRequest (an
// append with a producer id), core.ErrTooLarge, core.ErrTopicNotFound,
// injected faults.
func (p *Partition) ApplyTxn(ctx context.Context, txn *core.StateTxn) (core.TxnResult, error) {
	pt, err := prepareTxn(p.cfg, txn)
	if err != nil {
		return core.TxnResult{}, err
	}
	var res core.TxnResult
	err = p.write(ctx, OpTxn, func() error { res = p.applyTxn(pt); return nil })
	return res, err
}

// ProposeTxn queues txn and returns without waiting, as raftlog's
// partitions do for the queue model's pipelined transactions. Here it is
// applied before ProposeTxn returns, in call order. It fails (nothing
// applied) with core.ErrNotLeader when the partition does not lead, and
// with an armed OpTxn fault; a fault with Applied set is returned by wait.
func (p *Partition) ProposeTxn(txn *core.StateTxn) (wait func(context.Context) (core.TxnResult, error), err error) {
	if !p.IsLeader() {
		return nil, fmt.Errorf("%w: this node does not lead %s/%d", core.ErrNotLeader, p.topic, p.index)
	}
	pt, err := prepareTxn(p.cfg, txn)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return nil, fmt.Errorf("%w: topic %q does not exist", core.ErrTopicNotFound, p.topic)
	}
	fault := p.faults.take(OpTxn)
	if fault != nil && !fault.Applied {
		return nil, fault.err()
	}
	res := p.applyTxn(pt)
	p.publish()
	return func(ctx context.Context) (core.TxnResult, error) {
		if fault != nil {
			return core.TxnResult{}, fault.err()
		}
		return res, nil
	}, nil
}
