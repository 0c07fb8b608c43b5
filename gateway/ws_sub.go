package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-broker/weir/core"
)

// unlimitedCredit is the credit of the /v1/topics/{topic}/ws shortcut and
// the cap of any credit.
const unlimitedCredit = 1 << 62

// maxFrameRecords bounds the records of one records frame.
const maxFrameRecords = 1000

var framesTail = []byte("]}")

type startKind int

const (
	startLatest startKind = iota
	startEarliest
	startOffset
	startTime
)

// subSpec is a validated subscribe frame.
type subSpec struct {
	reqID      string // the subscribe frame's id (echoed)
	id         string
	topic      string
	partitions []int // all of the topic's, or the one asked for
	// all: the frame named no partition, so the subscription also reads
	// the partitions added to the topic later (watchGrowth); createdAt is
	// the topic's incarnation it subscribed to.
	all       bool
	createdAt int64
	kind      startKind
	value     int64         // the offset or timestamp
	positions map[int]int64 // resume points per partition
	b64       bool
	credit    int64
	group     string
	clientID  string
	session   time.Duration
	queue     string // a queue subscription's name (ws_queue.go); "" for log subscriptions
}

// parseSubscribe validates a subscribe frame against the topic.
func (h *wsHub) parseSubscribe(f *wsFrame) (*subSpec, error) {
	sp := &subSpec{reqID: f.ID, id: f.ID, topic: f.Topic, group: f.Group, clientID: f.ClientID, credit: int64(h.cfg.DefaultCredit)}
	if f.Topic == "" {
		return nil, core.Invalidf("subscribe needs a topic")
	}
	t, err := h.s.broker.Store().Topic(f.Topic)
	if err != nil {
		return nil, err
	}
	sp.createdAt = t.CreatedAt
	switch {
	case f.Partition == nil:
		sp.all = f.Group == ""
		for p := 0; p < t.Partitions; p++ {
			sp.partitions = append(sp.partitions, p)
		}
	case *f.Partition < 0 || *f.Partition >= t.Partitions:
		return nil, fmt.Errorf("%w: topic %q has %d partitions, no partition %d", core.ErrPartitionNotFound, f.Topic, t.Partitions, *f.Partition)
	default:
		sp.partitions = []int{*f.Partition}
	}
	if f.Group != "" {
		if f.Partition != nil {
			return nil, core.Invalidf("a group subscription gets its partitions from the group: give partition or group, not both")
		}
		if !core.ValidGroupName(f.Group) {
			return nil, core.Invalidf("group names must be 1–249 characters without '/'")
		}
		if len(f.Positions) > 0 {
			return nil, core.Invalidf("a group subscription resumes from the group's committed offsets: positions are not allowed")
		}
		sp.session = time.Duration(f.SessionTimeoutMs) * time.Millisecond
	}
	if err := sp.parseStart(f); err != nil {
		return nil, err
	}
	if len(f.Positions) > 0 {
		sp.positions = map[int]int64{}
		for _, p := range f.Positions {
			if !slices.Contains(sp.partitions, p.Partition) {
				return nil, core.Invalidf("positions name partition %d, which this subscription does not read", p.Partition)
			}
			if p.Offset < 0 {
				return nil, core.Invalidf("positions must be offsets ≥ 0")
			}
			sp.positions[p.Partition] = p.Offset
		}
	}
	switch f.Encoding {
	case "", "utf8", "utf-8":
	case "base64":
		sp.b64 = true
	default:
		return nil, core.Invalidf("encoding must be utf8 or base64, not %q", f.Encoding)
	}
	if f.Credit != nil {
		if *f.Credit < 0 {
			return nil, core.Invalidf("credit must be ≥ 0")
		}
		sp.credit = min(*f.Credit, unlimitedCredit)
	}
	return sp, nil
}

// parseStart reads where a subscription starts: from ("earliest",
// "latest" or an offset) or timestamp, not both; neither: latest.
func (sp *subSpec) parseStart(f *wsFrame) error {
	if len(f.From) > 0 && f.Timestamp != nil {
		return core.Invalidf("give from or timestamp, not both")
	}
	if f.Timestamp != nil {
		if *f.Timestamp < 0 {
			return core.Invalidf("timestamp must be milliseconds since the epoch")
		}
		sp.kind, sp.value = startTime, *f.Timestamp
	}
	if len(f.From) > 0 {
		from := string(f.From)
		if n := len(from); n >= 2 && from[0] == '"' && from[n-1] == '"' {
			from = from[1 : n-1]
		}
		switch from {
		case "latest", "null":
			sp.kind = startLatest
		case "earliest":
			sp.kind = startEarliest
		default:
			off, err := strconv.ParseInt(from, 10, 64)
			if err != nil || off < 0 {
				return core.Invalidf("from must be \"earliest\", \"latest\" or an offset ≥ 0, not %s", f.From)
			}
			sp.kind, sp.value = startOffset, off
		}
	}
	return nil
}

// startOffset resolves where a subscription starts on a partition that
// has no committed offset (or is not in a group).
func (sp *subSpec) startOffset(ctx context.Context, log core.PartitionLog, p int) (int64, error) {
	start, hwm := log.LogStart(), log.HighWatermark()
	if off, ok := sp.positions[p]; ok {
		// A resume point: below the log start the reader reports the skip
		// and goes on from the start; above the end (a node still replaying
		// its log after a restart) it waits for the log to get there.
		return off, nil
	}
	switch sp.kind {
	case startEarliest:
		return start, nil
	case startOffset:
		if sp.value < start || sp.value > hwm {
			return 0, &core.OffsetRangeError{Offset: sp.value, LogStart: start, HighWatermark: hwm}
		}
		return sp.value, nil
	case startTime:
		return log.OffsetForTime(ctx, sp.value)
	default:
		return hwm, nil
	}
}

func (sp *subSpec) resetPolicy() string {
	if sp.kind == startEarliest || sp.kind == startOffset || sp.kind == startTime {
		return core.FromEarliest
	}
	return core.FromLatest
}

// creditGate counts the records a subscription may still be sent. Its
// partition readers take credit before reading and give back what they
// did not use, so the client never gets more records than it granted.
type creditGate struct {
	mu      sync.Mutex
	avail   int64
	waiters int
	wake    chan struct{}
}

func newCreditGate(n int64) *creditGate { return &creditGate{avail: n, wake: make(chan struct{})} }

func (g *creditGate) add(n int64) {
	g.mu.Lock()
	g.avail = min(g.avail+n, unlimitedCredit)
	if g.waiters > 0 {
		close(g.wake)
		g.wake = make(chan struct{})
	}
	g.mu.Unlock()
}

// take waits for credit and takes up to max of it.
func (g *creditGate) take(ctx context.Context, max int) (int, error) {
	g.mu.Lock()
	for g.avail <= 0 {
		ch := g.wake
		g.waiters++
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			g.mu.Lock()
			g.waiters--
			g.mu.Unlock()
			return 0, ctx.Err()
		}
		g.mu.Lock()
		g.waiters--
	}
	n := int(min(g.avail, int64(max)))
	g.avail -= int64(n)
	g.mu.Unlock()
	return n, nil
}

func (g *creditGate) giveBack(n int) {
	if n > 0 {
		g.add(int64(n))
	}
}

// wsSub is one subscription of a connection: a reader goroutine per
// partition it delivers (pump), and for a group subscription a watcher
// that follows the group's generations and starts and stops the pumps.
type wsSub struct {
	c      *wsConn
	spec   *subSpec
	head   []byte // {"op":"records","sub":"…","records":[
	credit *creditGate

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // pumps and the group or growth watcher

	// mu guards the fields below. It is held only to read or change them,
	// never across I/O, a wait for a pump, or a send that can block
	// (reassign says how), and no other lock is taken while holding it.
	mu     sync.Mutex
	pumps  map[int]*pump
	member string
	gen    int64
	ended  bool
}

type pump struct {
	cancel context.CancelFunc
	done   chan struct{}
	pos    atomic.Int64 // next offset to deliver
}

func (c *wsConn) opSubscribe(f *wsFrame) error {
	sp, err := c.hub.parseSubscribe(f)
	if err != nil {
		return err
	}
	s, err := c.addSub(sp)
	if err != nil {
		return err
	}
	s.head = append(appendJSONString(append([]byte(nil), `{"op":"records","sub":`...), sp.id), `,"records":[`...)

	if err := s.start(); err != nil {
		c.mu.Lock()
		delete(c.subs, sp.id)
		c.mu.Unlock()
		s.stop()
		return err
	}
	return nil
}

// addSub registers a new subscription on the connection, naming it when the
// client did not, within the per-connection cap.
func (c *wsConn) addSub(sp *subSpec) (*wsSub, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.subs) >= c.cfg.MaxSubscriptions {
		return nil, &StatusError{Status: 429, Code: "too_many_subscriptions",
			Msg: fmt.Sprintf("a connection may have at most %d subscriptions", c.cfg.MaxSubscriptions)}
	}
	if sp.id == "" {
		for {
			c.nextSub++
			sp.id = "s" + strconv.Itoa(c.nextSub)
			if c.subs[sp.id] == nil {
				break
			}
		}
	}
	if c.subs[sp.id] != nil {
		return nil, core.Invalidf("subscription id %q is in use on this connection", sp.id)
	}
	s := &wsSub{c: c, spec: sp, credit: newCreditGate(sp.credit), pumps: map[int]*pump{}}
	s.ctx, s.cancel = context.WithCancel(c.ctx)
	c.subs[sp.id] = s
	return s, nil
}

// start resolves the start offsets (or joins the group), replies
// subscribed, and starts delivering.
func (s *wsSub) start() error {
	sp := s.spec
	store := s.c.hub.s.broker.Store()
	if sp.group != "" {
		groups := s.c.hub.s.groups
		ms, err := groups.Join(s.ctx, sp.group, core.GroupJoin{ClientID: sp.clientID, Kind: "ws",
			Topics: []string{sp.topic}, SessionTimeout: sp.session, From: sp.resetPolicy(), Principal: s.c.memberPrincipal()})
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.member = ms.MemberID
		s.mu.Unlock()
		b := frameStart("subscribed", sp.reqID, sp.id)
		b = append(b, `,"topic":`...)
		b = appendJSONString(b, sp.topic)
		b = append(b, `,"group":`...)
		b = appendJSONString(b, sp.group)
		b = append(b, `,"member":`...)
		b = appendJSONString(b, ms.MemberID)
		b = append(b, `,"generation":`...)
		b = strconv.AppendInt(b, ms.Generation, 10)
		if err := s.c.send(append(b, '}')); err != nil {
			return err
		}
		s.wg.Add(1)
		go s.watchGroup(ms)
		return nil
	}
	starts := make([]int64, len(sp.partitions))
	logs := make([]core.PartitionLog, len(sp.partitions))
	for i, p := range sp.partitions {
		log, err := store.Partition(sp.topic, p)
		if err != nil {
			return err
		}
		off, err := sp.startOffset(s.ctx, log, p)
		if err != nil {
			return err
		}
		starts[i], logs[i] = off, log
	}
	b := frameStart("subscribed", sp.reqID, sp.id)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, sp.topic)
	b = append(b, `,"partitions":[`...)
	for i, p := range sp.partitions {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"partition":`...)
		b = strconv.AppendInt(b, int64(p), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, starts[i], 10)
		b = append(b, '}')
	}
	if err := s.c.send(append(b, "]}"...)); err != nil {
		return err
	}
	s.mu.Lock()
	for i, p := range sp.partitions {
		s.startPump(p, logs[i], starts[i])
	}
	s.mu.Unlock()
	if sp.all {
		s.wg.Add(1)
		go s.watchGrowth()
	}
	return nil
}

// growthCheckEvery is the shortest time between two looks of a
// subscription at its topic's partition count.
const growthCheckEvery = time.Second

// watchGrowth gives a subscription to all of a topic's partitions those
// added to the topic later (POST /v1/topics/{t}/partitions, Kafka's
// CreatePartitions), each read from its start: all it holds was written
// after the subscription began. Their records arrive in records frames
// like the others', with their partition. It looks at most once a second
// (growthCheckEvery): the catalog changes with every group commit, a
// growth is rare, and a connection may hold many subscriptions.
func (s *wsSub) watchGrowth() {
	defer s.wg.Done()
	store := s.c.hub.s.broker.Store()
	for {
		changed := store.CatalogChanged()
		if t, err := store.Topic(s.spec.topic); err == nil && t.CreatedAt == s.spec.createdAt {
			s.mu.Lock()
			for p := 0; p < t.Partitions; p++ {
				if _, ok := s.pumps[p]; ok {
					continue
				}
				if log, err := store.Partition(s.spec.topic, p); err == nil {
					s.startPump(p, log, log.LogStart())
				}
			}
			s.mu.Unlock()
		}
		select {
		case <-changed:
		case <-s.ctx.Done():
			return
		}
		select {
		case <-time.After(growthCheckEvery):
		case <-s.ctx.Done():
			return
		}
	}
}

// stop ends the subscription: its pumps and watcher, and its group
// membership. It is idempotent.
func (s *wsSub) stop() {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	member, ended := s.member, s.ended
	s.ended = true
	s.mu.Unlock()
	if s.spec.group != "" && member != "" && !ended {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.c.hub.s.groups.Leave(ctx, s.spec.group, member); err != nil {
			s.c.hub.s.cfg.Logger.Debug("websocket group leave", "group", s.spec.group, "member", member, "err", err)
		}
	}
}

func (c *wsConn) opUnsubscribe(f *wsFrame) error {
	id := f.Sub
	if id == "" {
		return core.Invalidf("unsubscribe needs sub")
	}
	c.mu.Lock()
	s := c.subs[id]
	delete(c.subs, id)
	c.mu.Unlock()
	if s == nil {
		return core.Invalidf("no subscription %q on this connection", id)
	}
	s.stop()
	return c.send(append(frameStart("unsubscribed", f.ID, id), '}'))
}

func (c *wsConn) opCredit(f *wsFrame) error {
	c.mu.Lock()
	s := c.subs[f.Sub]
	c.mu.Unlock()
	if s == nil {
		return core.Invalidf("no subscription %q on this connection", f.Sub)
	}
	n, err := strconv.ParseInt(string(f.Records), 10, 64)
	if err != nil || n <= 0 {
		return core.Invalidf("credit needs records: a number ≥ 1")
	}
	s.credit.add(n)
	return nil
}

// drop ends a subscription the server cannot go on with (its topic went
// away), after the error frame was sent.
func (s *wsSub) drop() {
	c := s.c
	c.mu.Lock()
	if c.subs[s.spec.id] == s {
		delete(c.subs, s.spec.id)
	}
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		s.stop()
	}()
}

// startPump starts delivering partition p from off. s.mu must be held.
func (s *wsSub) startPump(p int, log core.PartitionLog, off int64) {
	ctx, cancel := context.WithCancel(s.ctx)
	pu := &pump{cancel: cancel, done: make(chan struct{})}
	pu.pos.Store(off)
	s.pumps[p] = pu
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(pu.done)
		s.runPump(ctx, p, log, pu)
	}()
}

// runPump delivers one partition: wait for records at the position, take
// credit, get them from the partition's shared feed, queue one frame
// (waiting while the connection's send buffer is full), go on.
func (s *wsSub) runPump(ctx context.Context, p int, log core.PartitionLog, pu *pump) {
	hub := s.c.hub
	f := hub.feeds.acquire(feedKey{topic: s.spec.topic, partition: p, b64: s.spec.b64})
	defer hub.feeds.release(f)
	off := pu.pos.Load()
	backoff := 10 * time.Millisecond
	for {
		for {
			ch := log.Changed()
			if log.HighWatermark() > off || log.LogStart() > off {
				break
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
			if log.HighWatermark() <= off {
				// Woken with nothing new: a handle taken before this node's
				// replica opened (a restart) keeps looking elsewhere, so
				// take a fresh one.
				if l, err := hub.s.broker.Store().Partition(s.spec.topic, p); err == nil {
					log = l
				}
			}
		}
		if s.c.awaitDelivery(ctx) != nil { // ws_quota.go
			return
		}
		n, err := s.credit.take(ctx, maxFrameRecords)
		if err != nil {
			return
		}
		body, got, next, err := f.get(ctx, log, off, n)
		s.credit.giveBack(n - got)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var re *core.OffsetRangeError
			switch {
			case errors.As(err, &re) && off < re.LogStart:
				// Retention deleted records this subscription had not read:
				// say so, and go on from the new log start.
				s.c.sendErrorCtx(ctx, "", s.spec.id, &p, err)
				off = re.LogStart
				pu.pos.Store(off)
			case errors.Is(err, core.ErrTopicNotFound) || errors.Is(err, core.ErrPartitionNotFound):
				s.c.sendErrorCtx(ctx, "", s.spec.id, &p, err)
				s.drop()
				return
			default:
				hub.s.cfg.Logger.Debug("websocket read", "topic", s.spec.topic, "partition", p, "err", err)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return
				}
				backoff = min(backoff*2, time.Second)
			}
			continue
		}
		backoff = 10 * time.Millisecond
		if got > 0 {
			fr := outFrame{head: s.head, body: body, tail: framesTail}
			hub.s.traceDelivery(ctx, &fr, f, s.spec.topic, p, off, got) // ws_trace.go
			if err := s.c.out.push(ctx, fr, &hub.paused); err != nil {
				hub.s.endDelivery(&fr, err)
				return
			}
			s.c.chargeDelivery(len(body))
		}
		off = next
		pu.pos.Store(off)
	}
}

// watchGroup follows the member's group: at each new generation it stops
// the pumps of partitions taken away, tells the client (assigned), and
// starts pumps for partitions given, at the group's committed offsets.
// A member that expired (this node could not renew it in time) joins again.
func (s *wsSub) watchGroup(ms core.Membership) {
	defer s.wg.Done()
	groups := s.c.hub.s.groups
	sp := s.spec
	release := groups.KeepAlive(sp.group, ms.MemberID)
	defer func() { release() }()
	gen := int64(-1)
	member := ms.MemberID
	backoff := 50 * time.Millisecond
	for {
		ch := groups.Changed()
		cur, err := groups.Member(sp.group, member)
		if errors.Is(err, core.ErrUnknownMember) {
			release()
			s.stopPumps()
			cur, err = groups.Join(s.ctx, sp.group, core.GroupJoin{ClientID: sp.clientID, Kind: "ws",
				Topics: []string{sp.topic}, SessionTimeout: sp.session, From: sp.resetPolicy(), Principal: s.c.memberPrincipal()})
			if err != nil {
				if s.ctx.Err() != nil {
					return
				}
				s.c.sendErrorCtx(s.ctx, "", sp.id, nil, fmt.Errorf("rejoining group %q: %w", sp.group, err))
				select {
				case <-time.After(backoff):
				case <-s.ctx.Done():
					return
				}
				backoff = min(backoff*2, 5*time.Second)
				continue
			}
			member = cur.MemberID
			release = groups.KeepAlive(sp.group, member)
			s.mu.Lock()
			s.member = member
			s.mu.Unlock()
		}
		if err == nil && cur.Generation != gen {
			if s.reassign(cur) != nil {
				return
			}
			gen = cur.Generation
		}
		select {
		case <-ch:
		case <-s.ctx.Done():
			return
		}
	}
}

// reassign applies a membership: pumps of partitions no longer assigned
// are stopped (their queued frames precede the assigned frame), the client
// is told, and pumps of new partitions start.
//
// It runs on the watcher goroutine, the only one that starts or stops a
// group subscription's pumps. s.mu is held only to detach and attach pumps
// and to record the generation: stopping pumps, reading start offsets
// (possibly from another node) and queueing the assigned frame (which
// waits while the connection's send buffer is full) happen outside it, so
// a commit or an unsubscribe never waits behind them.
func (s *wsSub) reassign(ms core.Membership) error {
	sp := s.spec
	want := map[int]bool{}
	for _, tp := range ms.Assignment {
		if tp.Topic == sp.topic {
			for _, p := range tp.Partitions {
				want[p] = true
			}
		}
	}
	s.mu.Lock()
	var gone []*pump
	kept := map[int]*pump{}
	for p, pu := range s.pumps {
		if want[p] {
			kept[p] = pu
		} else {
			gone = append(gone, pu)
			delete(s.pumps, p)
		}
	}
	s.gen, s.member = ms.Generation, ms.MemberID
	s.mu.Unlock()
	stopAll(gone)

	parts := make([]int, 0, len(want))
	for p := range want {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	starts, err := s.pumpStarts(parts, kept)
	if err != nil {
		return err
	}
	b := assignedFrame(sp, ms, parts, func(p int) int64 {
		if pu := kept[p]; pu != nil {
			return pu.pos.Load()
		}
		return starts[p].off
	})
	// Queued with the subscription's context: an unsubscribe does not wait
	// for a full send buffer to drain.
	if err := s.c.out.push(s.ctx, outFrame{head: b}, nil); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range parts {
		if st, ok := starts[p]; ok {
			s.startPump(p, st.log, st.off)
		}
	}
	return nil
}

// pumpStart is where a new pump of a group subscription starts reading.
type pumpStart struct {
	log core.PartitionLog
	off int64
}

// pumpStarts finds where the pumps of the newly assigned partitions (those
// of parts without a kept pump) start: the group's committed offset, else
// the subscription's start position (an error reading it is sent to the
// client, and the pump starts at the high watermark). It holds no lock:
// reading a start position may ask another node.
func (s *wsSub) pumpStarts(parts []int, kept map[int]*pump) (map[int]pumpStart, error) {
	sp := s.spec
	store := s.c.hub.s.broker.Store()
	committed := map[int]int64{}
	for _, o := range store.GroupOffsets(sp.group) {
		if o.Topic == sp.topic {
			committed[o.Partition] = o.Offset
		}
	}
	starts := map[int]pumpStart{}
	for _, p := range parts {
		if kept[p] != nil {
			continue
		}
		log, err := store.Partition(sp.topic, p)
		if err != nil {
			continue // the topic went away; the coordinator rebalances
		}
		off, ok := committed[p]
		if !ok {
			if off, err = sp.startOffset(s.ctx, log, p); err != nil {
				if s.ctx.Err() != nil {
					return nil, err
				}
				s.c.sendErrorCtx(s.ctx, "", sp.id, &p, err)
				off = log.HighWatermark()
			}
		}
		starts[p] = pumpStart{log, off}
	}
	return starts, nil
}

// assignedFrame is the "assigned" frame of a group subscription: its
// group, member, generation, partitions and the position of each.
func assignedFrame(sp *subSpec, ms core.Membership, parts []int, pos func(p int) int64) []byte {
	b := frameStart("assigned", "", sp.id)
	b = append(b, `,"group":`...)
	b = appendJSONString(b, sp.group)
	b = append(b, `,"member":`...)
	b = appendJSONString(b, ms.MemberID)
	b = append(b, `,"generation":`...)
	b = strconv.AppendInt(b, ms.Generation, 10)
	b = append(b, `,"partitions":[`...)
	for i, p := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	b = append(b, `],"positions":[`...)
	for i, p := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"partition":`...)
		b = strconv.AppendInt(b, int64(p), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, pos(p), 10)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// stopPumps stops delivering every partition.
func (s *wsSub) stopPumps() {
	s.mu.Lock()
	gone := make([]*pump, 0, len(s.pumps))
	for p, pu := range s.pumps {
		gone = append(gone, pu)
		delete(s.pumps, p)
	}
	s.mu.Unlock()
	stopAll(gone)
}

// stopAll stops pumps already detached from their subscription and waits
// for them to end. No lock is held: a pump may be in a log read or waiting
// for room in the send buffer until its context's end reaches it.
func stopAll(pumps []*pump) {
	for _, pu := range pumps {
		pu.cancel()
	}
	for _, pu := range pumps {
		<-pu.done
	}
}

// commit checks the member's generation (the one given, else the one
// last sent to the client) and assignment, then commits.
func (s *wsSub) commit(ctx context.Context, generation int64, offs []core.GroupOffset) error {
	s.mu.Lock()
	member, gen := s.member, s.gen
	s.mu.Unlock()
	if generation == 0 {
		generation = gen
	}
	return s.c.hub.s.groups.Commit(ctx, s.spec.group, member, generation, offs)
}
