package raftlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lni/dragonboat/v4"
	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/weir-broker/weir/core"
)

// propose submits cmd to a shard and waits for its result. Proposals that
// were provably not applied (dropped, busy, no leader yet) are retried until
// ctx ends; a proposal whose outcome is unknown (timeout) is not retried:
// the caller learns ErrUnavailable and may retry idempotently.
func (h *Host) propose(ctx context.Context, shardID uint64, cmd []byte) (sm.Result, error) {
	backoff := 2 * time.Millisecond
	for {
		timeout := h.cfg.ProposalTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		if timeout < time.Duration(h.cfg.RTTMillisecond)*time.Millisecond*2 {
			return sm.Result{}, fmt.Errorf("%w: deadline too short for a proposal", core.ErrUnavailable)
		}
		rs, err := h.nh.Propose(h.nh.GetNoOPSession(shardID), cmd, timeout)
		if err == nil {
			var r dragonboat.RequestResult
			select {
			case r = <-rs.ResultC():
			case <-ctx.Done():
				// The proposal may still commit; the result is unknown.
				return sm.Result{}, ctx.Err()
			}
			rs.Release()
			switch {
			case r.Completed():
				return r.GetResult(), nil
			case r.Dropped():
				err = dragonboat.ErrShardNotReady
			case r.Timeout():
				return sm.Result{}, fmt.Errorf("%w: proposal timed out (its outcome is unknown)", core.ErrUnavailable)
			case r.Terminated():
				return sm.Result{}, fmt.Errorf("%w: shard is shutting down", core.ErrUnavailable)
			default:
				err = dragonboat.ErrAborted
			}
		}
		if errors.Is(err, dragonboat.ErrShardNotFound) {
			return sm.Result{}, fmt.Errorf("%w: shard %d is not on this node", core.ErrUnavailable, shardID)
		}
		if errors.Is(err, dragonboat.ErrPayloadTooBig) {
			return sm.Result{}, fmt.Errorf("%w: batch exceeds the Raft entry limit", core.ErrTooLarge)
		}
		if !dragonboat.IsTempError(err) {
			return sm.Result{}, fmt.Errorf("%w: %v", core.ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return sm.Result{}, fmt.Errorf("%w: %v", core.ErrUnavailable, err)
		case <-h.stopC:
			return sm.Result{}, fmt.Errorf("%w: node is stopping", core.ErrUnavailable)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 100*time.Millisecond)
	}
}

func (h *Host) proposeMeta(ctx context.Context, c *metaCmd) (sm.Result, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return sm.Result{}, err
	}
	return h.propose(ctx, metaShardID, b)
}
