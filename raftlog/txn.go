package raftlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/raftlog/internal/segment"
)

const (
	cmdTxn  byte  = 3
	kindTxn uint8 = 3 // a txn batch: [u32 opsLen][ops][envelope when Count > 0]

	resultCondFailed byte = 4 // Data[1:5] = index of the failing condition
)

// encodeTxn: [ver][cmdTxn][conds][ops][u8 hasAppend][append body]
// conds = u32 n, n × {u32 klen, key, u8 absent, u32 vlen, value}
// ops   = u32 n, n × {u32 klen, key, u8 delete, u32 vlen, value}
// append body = the cmdAppend encoding without its two leading bytes.
func encodeTxn(txn *core.StateTxn) ([]byte, error) {
	b := []byte{cmdVersion, cmdTxn}
	b = binary.BigEndian.AppendUint32(b, uint32(len(txn.Conds)))
	for _, c := range txn.Conds {
		b = appendKV(b, c.Key, c.Absent, c.Value)
	}
	b = appendOps(b, txn.Ops)
	if txn.Append == nil || len(txn.Append.Records) == 0 {
		return append(b, 0), nil
	}
	a := txn.Append
	if a.ProducerID != "" {
		return nil, errors.New("raftlog: a state transaction's append cannot be idempotent by producer id; use conditions")
	}
	b = append(b, 1)
	maxTs := a.Stamp()
	body := encodeAppend(nil, "", 0, a.Timestamp, maxTs, len(a.Records), nil)
	body = core.AppendRecords(body, a.Records)
	return append(b, body[2:]...), nil
}

func appendOps(b []byte, ops []core.StateOp) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(ops)))
	for _, o := range ops {
		b = appendKV(b, o.Key, o.Delete, o.Value)
	}
	return b
}

func appendKV(b []byte, k string, flag bool, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
	b = append(b, k...)
	if flag {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

type kvReader struct {
	b   []byte
	err error
}

func (r *kvReader) u32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.err = errBadCommand
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *kvReader) bytes(n uint32) []byte {
	if r.err != nil || uint64(n) > uint64(len(r.b)) {
		r.err = errBadCommand
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *kvReader) kv() (string, bool, []byte) {
	k := r.bytes(r.u32())
	f := r.bytes(1)
	v := r.bytes(r.u32())
	if r.err != nil {
		return "", false, nil
	}
	return string(k), f[0] == 1, v
}

// decodeOps parses an ops section and returns the rest of b.
func decodeOps(b []byte) ([]core.StateOp, []byte, error) {
	r := kvReader{b: b}
	n := r.u32()
	if uint64(n) > uint64(len(b)) {
		return nil, nil, errBadCommand
	}
	ops := make([]core.StateOp, 0, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		k, del, v := r.kv()
		ops = append(ops, core.StateOp{Key: k, Delete: del, Value: v})
	}
	return ops, r.b, r.err
}

// applyTxn checks the conditions against the state and, when they hold,
// writes one segment batch (ops + records) and applies the ops.
func (p *partitionSM) applyTxn(index uint64, cmd []byte) (sm.Result, error) {
	r := kvReader{b: cmd[2:]}
	n := r.u32()
	if uint64(n) > uint64(len(cmd)) {
		return sm.Result{Data: []byte{resultCorrupt}}, nil
	}
	failed := -1
	p.stateMu.RLock()
	for i := uint32(0); i < n && r.err == nil; i++ {
		k, absent, v := r.kv()
		cur, ok := p.state[k]
		if failed < 0 && ((absent && ok) || (!absent && (!ok || !bytes.Equal(cur, v)))) {
			failed = int(i)
		}
	}
	p.stateMu.RUnlock()
	if r.err != nil {
		return sm.Result{Data: []byte{resultCorrupt}}, nil
	}
	opsStart := r.b
	ops, rest, err := decodeOps(opsStart)
	if err != nil || len(rest) < 1 {
		return sm.Result{Data: []byte{resultCorrupt}}, nil
	}
	if failed >= 0 {
		return sm.Result{Data: binary.BigEndian.AppendUint32([]byte{resultCondFailed}, uint32(failed))}, nil
	}
	opsBytes := opsStart[:len(opsStart)-len(rest)]
	var c appendCmd
	hasAppend := rest[0] == 1
	if hasAppend {
		// Reuse the append decoder: it expects the two header bytes.
		c, err = decodeAppend(append([]byte{cmdVersion, cmdAppend}, rest[1:]...))
		if err != nil {
			return sm.Result{Data: []byte{resultCorrupt}}, nil
		}
	}
	payload := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(opsBytes)+len(c.envelope)), uint32(len(opsBytes)))
	payload = append(payload, opsBytes...)
	payload = append(payload, c.envelope...)
	base := p.seg.NextOffset()
	err = p.seg.Append(segment.Batch{RaftIndex: index, Kind: kindTxn, BaseOffset: base, Count: c.count, MaxTimestamp: c.maxTimestamp, Payload: payload})
	if err != nil {
		return sm.Result{}, fmt.Errorf("append txn to shard %d: %w", p.shardID, err)
	}
	p.applyOps(ops)
	return sm.Result{Value: uint64(base), Data: []byte{resultOK}}, nil
}

// applyOps applies state writes; values are copied (they alias the entry).
func (p *partitionSM) applyOps(ops []core.StateOp) {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	for _, o := range ops {
		if o.Delete {
			delete(p.state, o.Key)
		} else {
			p.state[o.Key] = bytes.Clone(o.Value)
		}
	}
}

// txnRecords returns the records envelope of a txn batch payload.
func txnEnvelope(payload []byte) ([]byte, error) {
	if len(payload) < 4 {
		return nil, errBadCommand
	}
	n := binary.BigEndian.Uint32(payload)
	if uint64(n) > uint64(len(payload)-4) {
		return nil, errBadCommand
	}
	return payload[4+n:], nil
}

// replayTxn re-applies a txn batch found after the checkpoint at Open.
func (p *partitionSM) replayTxn(b segment.Batch) error {
	if len(b.Payload) < 4 {
		return errBadCommand
	}
	n := binary.BigEndian.Uint32(b.Payload)
	if uint64(n) > uint64(len(b.Payload)-4) {
		return errBadCommand
	}
	ops, _, err := decodeOps(b.Payload[4 : 4+n])
	if err != nil {
		return err
	}
	p.applyOps(ops)
	return nil
}

// ApplyTxn implements core.PartitionState.
func (p *Partition) ApplyTxn(ctx context.Context, txn *core.StateTxn) (core.TxnResult, error) {
	cmd, err := encodeTxn(txn)
	if err != nil {
		return core.TxnResult{}, core.Invalidf("%v", err)
	}
	res, err := p.h.propose(ctx, p.shardID, cmd)
	if err != nil {
		return core.TxnResult{}, err
	}
	return txnResult(res)
}

// StateGet implements core.PartitionState.
func (p *Partition) StateGet(key string) ([]byte, bool) {
	p.sm.stateMu.RLock()
	defer p.sm.stateMu.RUnlock()
	v, ok := p.sm.state[key]
	return bytes.Clone(v), ok
}

// StateScan implements core.PartitionState.
func (p *Partition) StateScan(prefix string, fn func(string, []byte) bool) {
	p.sm.stateMu.RLock()
	keys := make([]string, 0, 16)
	for k := range p.sm.state {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = bytes.Clone(p.sm.state[k])
	}
	p.sm.stateMu.RUnlock()
	for i, k := range keys {
		if !fn(k, vals[i]) {
			return
		}
	}
}
