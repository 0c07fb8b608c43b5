package core

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"
)

// GenerationsTable is the catalog table holding, per consumer group whose
// membership a node coordinates in memory (the Kafka listener's classic
// protocol), the highest generation number any coordinator has reserved.
// A coordinator hands out only numbers it reserved, so a group's
// generations keep increasing, and are never handed out twice, when the
// coordinator moves to another node or restarts; Kafka gets the same from
// the group metadata it writes to __consumer_offsets.
const GenerationsTable = "generations"

// ReservedGenerations returns the highest generation number reserved for
// group, as this node's copy of the catalog has it (0: none).
func (b *Broker) ReservedGenerations(group string) (int32, error) {
	raw, ok := b.store.CatalogGet(GenerationsTable, group)
	return parseReserved(group, raw, ok)
}

func parseReserved(group string, raw []byte, ok bool) (int32, error) {
	if !ok {
		return 0, nil
	}
	v, err := strconv.ParseInt(string(raw), 10, 32)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("group %q: corrupt generation reservation %q", group, raw)
	}
	return int32(v), nil
}

// ReserveGenerations reserves n generation numbers of group, above floor
// and above every number reserved before cluster-wide, and returns them
// as the range [first, last]. It reads the catalog linearizably first
// (ErrUnavailable when this node is cut off from the metadata's leader)
// and retries when another node reserves at the same time.
func (b *Broker) ReserveGenerations(ctx context.Context, group string, floor, n int32) (first, last int32, err error) {
	if !ValidGroupName(group) {
		return 0, 0, Invalidf("invalid group name %q", group)
	}
	if n <= 0 || floor < 0 {
		return 0, 0, Invalidf("reserve a positive number of generations above a floor ≥ 0")
	}
	for {
		if err := b.store.CatalogSync(ctx); err != nil {
			return 0, 0, err
		}
		raw, ok := b.store.CatalogGet(GenerationsTable, group)
		cur, err := parseReserved(group, raw, ok)
		if err != nil {
			return 0, 0, err
		}
		base := max(cur, floor)
		if base > math.MaxInt32-n {
			return 0, 0, fmt.Errorf("group %q: its generation numbers are used up", group)
		}
		cond := CatalogCond{IfAbsent: !ok}
		if ok {
			cond.IfEqual = raw
		}
		done, err := b.store.CatalogPut(ctx, GenerationsTable, group, strconv.AppendInt(nil, int64(base+n), 10), cond)
		if err != nil {
			return 0, 0, err
		}
		if done {
			return base + 1, base + n, nil
		}
		// Another node reserved first: sync again and reserve above it.
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("%w: group %q: %v", ErrUnavailable, group, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}
