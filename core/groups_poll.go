package core

import (
	"context"
	"errors"
	"reflect"
	"time"
)

// PollRequest reads records for a group member over HTTP, where nothing
// ties the member to one node: its read positions travel with the
// requests (Positions), and where it gives none it starts at the group's
// committed offset, else at its reset policy.
type PollRequest struct {
	Group, Member string
	// Generation, when not 0, must be the current generation
	// (*StaleGenerationError otherwise).
	Generation int64
	// Positions are the next offsets to read, as the previous poll
	// returned them; positions of partitions not assigned are ignored.
	Positions  []GroupOffset
	MaxRecords int           // default 500
	MaxBytes   int           // default 1 MiB
	Wait       time.Duration // long-poll while nothing is there
}

// PartitionRecords are records of one partition.
type PartitionRecords struct {
	Topic     string
	Partition int
	Records   []Record
}

// PollResult is a member's poll: its membership (generation and
// assignment), the records read, and the next position of every assigned
// partition, to send back with the next poll.
type PollResult struct {
	Membership
	Batches   []PartitionRecords
	Positions []GroupOffset
}

type pollPart struct {
	topic string
	p     int
	log   PartitionLog
	pos   int64
}

// Poll renews the member's session and reads its assigned partitions of
// the current generation, long-polling up to req.Wait. A rebalance during
// the wait ends it early with the new assignment.
func (c *GroupCoordinator) Poll(ctx context.Context, req *PollRequest) (*PollResult, error) {
	ms, err := c.Heartbeat(ctx, req.Group, req.Member)
	if err != nil {
		return nil, err
	}
	if req.Generation != 0 && req.Generation != ms.Generation {
		return nil, &StaleGenerationError{Group: req.Group, Generation: req.Generation, Current: ms.Generation}
	}
	bc := c.broker.Config()
	maxRecs := req.MaxRecords
	if maxRecs <= 0 {
		maxRecs = 500
	}
	maxRecs = min(maxRecs, bc.MaxFetchRecords)
	maxBytes := req.MaxBytes
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	maxBytes = min(maxBytes, bc.MaxFetchBytes)
	wait := min(req.Wait, bc.MaxWait)

	parts := c.pollParts(req, ms)
	res := &PollResult{Membership: ms}
	var timer *time.Timer
	start := int(ms.Generation) // rotate the first partition read between polls
	for round := 0; ; round++ {
		chans := make([]<-chan struct{}, 0, len(parts)+1)
		chans = append(chans, c.store.CatalogChanged())
		for _, pp := range parts {
			chans = append(chans, pp.log.Changed())
		}
		batches, err := readPollParts(ctx, parts, start+round, maxRecs, maxBytes, ms.From)
		if err != nil {
			return nil, err
		}
		res.Batches = append(res.Batches, batches...)
		if len(batches) > 0 || wait <= 0 {
			break
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		switch i := waitAny(ctx, timer.C, append(chans[:len(chans):len(chans)], c.broker.WaitsEnded())); {
		case i == -1:
			return nil, ctx.Err()
		case i == -2, i == len(chans): // the wait ran out, or the node is shutting down
			wait = 0 // one last read, then answer
		case i == 0:
			cur, err := c.Member(req.Group, req.Member)
			if err != nil {
				return nil, err
			}
			if cur.Generation != ms.Generation {
				// Rebalanced: answer now with the new assignment and no
				// records; positions of the old one still help the member.
				res.Membership = cur
				res.Positions = positionsOf(parts)
				return res, nil
			}
		}
	}
	res.Positions = positionsOf(parts)
	return res, nil
}

// pollParts are the member's assigned partitions with where it reads
// each: the position the request gives, else the group's committed
// offset, else the member's reset policy.
func (c *GroupCoordinator) pollParts(req *PollRequest, ms Membership) []*pollPart {
	type tp struct {
		t string
		p int
	}
	given := map[tp]int64{}
	for _, o := range req.Positions {
		given[tp{o.Topic, o.Partition}] = o.Offset
	}
	committed := map[tp]int64{}
	for _, o := range c.store.GroupOffsets(req.Group) {
		committed[tp{o.Topic, o.Partition}] = o.Offset
	}
	var parts []*pollPart
	for _, a := range ms.Assignment {
		for _, p := range a.Partitions {
			log, err := c.store.Partition(a.Topic, p)
			if err != nil {
				continue // the topic went away; the next rebalance drops it
			}
			pp := &pollPart{topic: a.Topic, p: p, log: log}
			if off, ok := given[tp{a.Topic, p}]; ok {
				pp.pos = off
			} else if off, ok := committed[tp{a.Topic, p}]; ok {
				pp.pos = off
			} else {
				pp.pos = resetPosition(log, ms.From)
			}
			parts = append(parts, pp)
		}
	}
	return parts
}

// readPollParts reads the partitions once, starting at parts[first %
// len], until maxRecs records or maxBytes bytes, advancing each position
// past what it read; a position trimmed by retention is reset by from.
func readPollParts(ctx context.Context, parts []*pollPart, first, maxRecs, maxBytes int, from string) ([]PartitionRecords, error) {
	var batches []PartitionRecords
	recs, bytes := 0, 0
	for i := range parts {
		if recs >= maxRecs || bytes >= maxBytes {
			break
		}
		pp := parts[(first+i)%len(parts)]
		got, err := pp.log.Read(ctx, pp.pos, maxRecs-recs, maxBytes-bytes)
		var re *OffsetRangeError
		if errors.As(err, &re) {
			if re.Offset > re.HighWatermark {
				// Past the end as this replica sees it: a replica
				// behind the leader (after a restart, a partition) or a
				// position ahead of the log. Offsets are never taken
				// back once committed, so resetting would re-read the
				// partition (or, from latest, skip it): wait instead.
				continue
			}
			// Trimmed by retention: the member's reset policy decides
			// where it goes on.
			pp.pos = resetPosition(pp.log, from)
			got, err = pp.log.Read(ctx, pp.pos, maxRecs-recs, maxBytes-bytes)
		}
		if err != nil {
			return nil, err
		}
		if len(got) == 0 {
			continue
		}
		for i := range got {
			bytes += got[i].Size()
		}
		recs += len(got)
		pp.pos = got[len(got)-1].Offset + 1
		batches = append(batches, PartitionRecords{Topic: pp.topic, Partition: pp.p, Records: got})
	}
	return batches, nil
}

func positionsOf(parts []*pollPart) []GroupOffset {
	out := make([]GroupOffset, len(parts))
	for i, pp := range parts {
		out[i] = GroupOffset{Topic: pp.topic, Partition: pp.p, Offset: pp.pos}
	}
	return out
}

// resetPosition is where a member with no position and no committed
// offset starts on a partition.
func resetPosition(log PartitionLog, from string) int64 {
	if from == FromEarliest {
		return log.LogStart()
	}
	return log.HighWatermark()
}

// waitAny blocks until ctx ends (-1), timer fires (-2) or one of chans is
// closed (its index).
func waitAny(ctx context.Context, timer <-chan time.Time, chans []<-chan struct{}) int {
	cases := make([]reflect.SelectCase, 0, len(chans)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer)})
	for _, ch := range chans {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	switch i, _, _ := reflect.Select(cases); i {
	case 0:
		return -1
	case 1:
		return -2
	default:
		return i - 2
	}
}
