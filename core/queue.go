package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// QueueConfig tunes the queue model. Zero values take the defaults named.
type QueueConfig struct {
	MaxReceiveRecords int // messages per receive; default 1000
	MaxReceiveBytes   int // about this many bytes per receive (at least one message); default 8 MiB
	// MaxWait is the longest receive long-poll; default 60 s.
	MaxWait time.Duration
	// MaxVisibilityTimeout bounds a lease; default 12 h (as SQS).
	MaxVisibilityTimeout time.Duration
	// MaxTracked bounds the messages of one subscription on one partition
	// that have state (leased, waiting for a retry, delayed, or blocked
	// behind their key); past it no new message is taken from the log
	// until some are done. Default 100,000.
	MaxTracked int
	// MaxScan bounds the fresh records one receive batch examines; default 1000.
	MaxScan int
	// MaintenanceInterval is how often the leader of each partition
	// dead-letters messages whose last lease expired and retries pending
	// dead-letter appends; default 1 s.
	MaintenanceInterval time.Duration
	// PipelineDepth is how many state transactions one subscription keeps in
	// flight per partition on this node; default 8.
	PipelineDepth int
	// OpTimeout bounds one state transaction; default 10 s.
	OpTimeout time.Duration
	// PriorityCacheBytes bounds the records a priority subscription keeps
	// in memory per partition on this node, between indexing them and
	// delivering them (a miss reads the log); default 8 MiB.
	PriorityCacheBytes int
	// Now is the clock leases and delays are computed with; default time.Now.
	// Only the proposing node reads it: the time goes into the replicated
	// state as data, so state machines stay pure.
	Now    func() time.Time
	Logger *slog.Logger
}

// Validate reports a negative count, size or duration (zero takes the
// default). NewQueues calls it and returns its error.
func (c *QueueConfig) Validate() error {
	return negative("QueueConfig",
		intField("MaxReceiveRecords", c.MaxReceiveRecords),
		intField("MaxReceiveBytes", c.MaxReceiveBytes),
		durField("MaxWait", c.MaxWait),
		durField("MaxVisibilityTimeout", c.MaxVisibilityTimeout),
		intField("MaxTracked", c.MaxTracked),
		intField("MaxScan", c.MaxScan),
		durField("MaintenanceInterval", c.MaintenanceInterval),
		intField("PipelineDepth", c.PipelineDepth),
		durField("OpTimeout", c.OpTimeout),
		intField("PriorityCacheBytes", c.PriorityCacheBytes),
	)
}

func (c *QueueConfig) setDefaults() {
	if c.MaxReceiveRecords <= 0 {
		c.MaxReceiveRecords = 1000
	}
	if c.MaxReceiveBytes <= 0 {
		c.MaxReceiveBytes = 8 << 20
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 60 * time.Second
	}
	if c.MaxVisibilityTimeout <= 0 {
		c.MaxVisibilityTimeout = 12 * time.Hour
	}
	if c.MaxTracked <= 0 {
		c.MaxTracked = 100000
	}
	if c.MaxScan <= 0 {
		c.MaxScan = 1000
	}
	if c.MaintenanceInterval <= 0 {
		c.MaintenanceInterval = time.Second
	}
	if c.PipelineDepth <= 0 {
		c.PipelineDepth = 8
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = 10 * time.Second
	}
	if c.PriorityCacheBytes <= 0 {
		c.PriorityCacheBytes = 8 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Ordering values of a subscription.
const (
	OrderingNone = "none" // any message to any receiver
	OrderingKey  = "key"  // one message per key at a time, in offset order
)

// Start positions of a new subscription.
const (
	StartEarliest = "earliest" // every message still in the log
	StartLatest   = "latest"   // messages produced after the subscription was created
)

// Headers the queue model reads or writes.
const (
	// HeaderDeliverAt (ms since the epoch, decimal) holds a record back from
	// subscriptions until then. The gateway sets it from "deliver_at" or
	// "delay_ms"; log consumers see the record at its offset as usual.
	HeaderDeliverAt = "weir-deliver-at"
	// HeaderPriority ("0" … "9", 9 first; absent: 0) orders delivery to
	// priority subscriptions. Produce refuses any other value.
	HeaderPriority = "weir-priority"

	HeaderDLQReason       = "weir-dlq-reason"
	HeaderSourceTopic     = "weir-source-topic"
	HeaderSourcePartition = "weir-source-partition"
	HeaderSourceOffset    = "weir-source-offset"
	HeaderSourceSub       = "weir-source-subscription"
	HeaderAttempts        = "weir-attempts"
	HeaderLastError       = "weir-last-error"
)

// dlqHeaders are the headers dead-lettering adds and redrive removes.
var dlqHeaders = map[string]bool{
	HeaderDLQReason: true, HeaderSourceTopic: true, HeaderSourcePartition: true,
	HeaderSourceOffset: true, HeaderSourceSub: true, HeaderAttempts: true, HeaderLastError: true,
}

// DeliverAt returns the time (ms) before which no subscription may have the
// record, or 0.
func DeliverAt(r *Record) int64 {
	v, ok := r.Header(HeaderDeliverAt)
	if !ok {
		return 0
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0
	}
	return ms
}

// MaxPriority is the highest record priority (HeaderPriority).
const MaxPriority = 9

// RecordPriority returns the record's priority for priority
// subscriptions: its HeaderPriority header (the first one), 0 when absent
// or not a valid priority (produce refuses those; records written
// otherwise, e.g. by a pipeline, count as 0).
func RecordPriority(r *Record) uint8 {
	v, ok := r.Header(HeaderPriority)
	if !ok || !validPriority(v) {
		return 0
	}
	return v[0] - '0'
}

// validPriority reports whether v is one of "0" … "9".
func validPriority(v string) bool { return len(v) == 1 && v[0] >= '0' && v[0] <= '0'+MaxPriority }

// SubscriptionConfig is what a subscription is created with.
type SubscriptionConfig struct {
	Topic string
	Name  string // 1–249 of [A-Za-z0-9._-], unique per topic
	// VisibilityTimeoutMs is how long a received message stays leased to its
	// receiver; 0: 30 s.
	VisibilityTimeoutMs int64
	// MaxAttempts is how many times a message is delivered before it goes to
	// the dead-letter topic. 0: 5 with a DeadLetterTopic, else unlimited.
	MaxAttempts int
	// Backoff between failed deliveries; nil: DefaultBackoff.
	Backoff *Backoff
	// DeadLetterTopic receives messages whose attempts are exhausted; created
	// (1 partition) when missing. Required when MaxAttempts > 0.
	DeadLetterTopic string
	Ordering        string // OrderingNone (default) or OrderingKey
	Start           string // StartEarliest (default) or StartLatest
	// Priority hands out higher-priority messages (HeaderPriority) first.
	Priority bool
	// PriorityGuardEvery, with Priority, makes every Nth delivery of a
	// partition the oldest deliverable message whatever its priority (a
	// starvation guard); 0: off, the order is strict.
	PriorityGuardEvery int
}

// Subscription is a subscription's definition as the catalog holds it.
type Subscription struct {
	Topic               string  `json:"topic"`
	Name                string  `json:"name"`
	UID                 string  `json:"uid"` // one incarnation: a re-created subscription starts afresh
	VisibilityTimeoutMs int64   `json:"visibility_timeout_ms"`
	MaxAttempts         int     `json:"max_attempts"`
	Backoff             Backoff `json:"backoff"`
	DeadLetterTopic     string  `json:"dead_letter_topic,omitempty"`
	Ordering            string  `json:"ordering"`
	Start               string  `json:"start"`
	Priority            bool    `json:"priority,omitempty"`
	PriorityGuardEvery  int     `json:"priority_guard_every,omitempty"`
	CreatedAt           int64   `json:"created_at"`
	TopicCreatedAt      int64   `json:"topic_created_at"` // tells a re-created topic from its namesake
}

func (s *Subscription) final(attempt int) bool {
	return s.MaxAttempts > 0 && attempt >= s.MaxAttempts
}

const subscriptionsTable = "subscriptions"

func subCatalogKey(topic, name string) string { return topic + "/" + name }

// Message is one leased message of a receive.
type Message struct {
	Receipt        string
	Partition      int
	Attempt        int   // 1 for the first delivery
	LeaseExpiresAt int64 // ms
	Record
}

// ReceiveRequest is one receive call.
type ReceiveRequest struct {
	Topic        string
	Subscription string
	MaxRecords   int           // default 10
	MaxBytes     int           // about; default and limit QueueConfig.MaxReceiveBytes
	Wait         time.Duration // long-poll while nothing is deliverable
	// VisibilityTimeout overrides the subscription's for these leases.
	VisibilityTimeout time.Duration
	// AutoAck acknowledges the messages as they are leased (at-most-once):
	// they are never redelivered.
	AutoAck bool
}

// ReceiptResult is the outcome of one receipt of an ack, nack or extend.
// Err is nil, or wraps ErrInvalidReceipt, ErrLeaseLost or an
// unavailability.
type ReceiptResult struct {
	Receipt        string
	Err            error
	LeaseExpiresAt int64 // extend: the new expiry
}

// Queues is the queue model over a Store: subscriptions with per-message
// leases, acks, nacks, retries with backoff, dead-letter topics and delayed
// delivery. Its state lives in the partitions' replicated state, so any
// node serves any consumer of the partitions it hosts, and a leader change
// loses no lease or count. It is safe for concurrent use. NewQueues starts
// nothing; Run runs its maintenance and, when it returns, every partition
// worker has stopped. Close stops it too.
type Queues struct {
	cfg    QueueConfig
	broker *Broker
	store  Store
	log    *slog.Logger

	ctx    context.Context // ends when Run's context ends, or at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // maintenance and partition workers; Add under mu

	mu      sync.Mutex // guards workers, subs; cancel is called under it
	workers map[workerKey]*partWorker
	subs    map[string]cachedSub // catalog key → decoded definition

	rr atomic.Uint64
}

type workerKey struct {
	uid       string
	partition int
}

type cachedSub struct {
	raw string
	sub *Subscription
}

// NewQueues returns the queue service over broker's store. It starts no
// goroutine: Run runs the maintenance loop. Calls start the partition
// workers they need (before Run too); they run until Run's context ends
// or Close. It returns cfg.Validate's error.
func NewQueues(broker *Broker, cfg QueueConfig) (*Queues, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	q := &Queues{cfg: cfg, broker: broker, store: broker.Store(), log: cfg.Logger,
		workers: map[workerKey]*partWorker{}, subs: map[string]cachedSub{}}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	return q, nil
}

// Run runs the maintenance loop (dead-lettering expired leases, retrying
// dead-letter appends, collecting deleted subscriptions' state) until ctx
// ends or Close is called; then it stops every partition worker and
// returns once they and the loop have stopped. Calls in flight fail with
// ErrUnavailable. Call it once; after Close it returns at once.
func (q *Queues) Run(ctx context.Context) {
	stop := context.AfterFunc(ctx, q.stop)
	defer stop()
	q.mu.Lock()
	if q.ctx.Err() != nil {
		q.mu.Unlock()
		q.wg.Wait()
		return
	}
	q.wg.Add(1)
	q.mu.Unlock()
	q.maintain() // until q.ctx ends
	q.wg.Wait()
}

// Close stops the maintenance loop and every partition worker, and waits
// for them. Calls in flight fail with ErrUnavailable.
func (q *Queues) Close() {
	q.stop()
	q.wg.Wait()
}

// stop ends q.ctx. Under mu, so no worker is added to wg once it ended.
func (q *Queues) stop() {
	q.mu.Lock()
	q.cancel()
	q.mu.Unlock()
}

// Config returns the effective configuration.
func (q *Queues) Config() QueueConfig { return q.cfg }

// CreateSubscription validates cfg, fills defaults, creates the
// dead-letter topic when missing and stores the definition.
// ErrTopicNotFound, ErrSubscriptionExists, ErrBadRequest; ErrMirrorTopic
// (*MirrorError) when the dead-letter topic is a mirror topic not yet
// promoted (docs/geo-replication.md).
func (q *Queues) CreateSubscription(ctx context.Context, cfg SubscriptionConfig) (*Subscription, error) {
	if !ValidTopicName(cfg.Name) {
		return nil, Invalidf("subscription name %q must be 1–249 characters of [A-Za-z0-9._-]", cfg.Name)
	}
	t, err := q.store.Topic(cfg.Topic)
	if err != nil {
		return nil, err
	}
	s := &Subscription{
		Topic: cfg.Topic, Name: cfg.Name, VisibilityTimeoutMs: cfg.VisibilityTimeoutMs,
		MaxAttempts: cfg.MaxAttempts, Backoff: DefaultBackoff, DeadLetterTopic: cfg.DeadLetterTopic,
		Ordering: cfg.Ordering, Start: cfg.Start, TopicCreatedAt: t.CreatedAt,
		Priority: cfg.Priority, PriorityGuardEvery: cfg.PriorityGuardEvery,
	}
	if cfg.Backoff != nil {
		s.Backoff = *cfg.Backoff
	}
	if err := s.fill(q.cfg.MaxVisibilityTimeout); err != nil {
		return nil, err
	}
	key := subCatalogKey(s.Topic, s.Name)
	if _, ok := q.store.CatalogGet(subscriptionsTable, key); ok {
		return nil, fmt.Errorf("%w: subscription %q on topic %q already exists", ErrSubscriptionExists, s.Name, s.Topic)
	}
	if s.DeadLetterTopic != "" {
		if err := checkWritableTopic(q.store, s.DeadLetterTopic); err != nil {
			return nil, fmt.Errorf("subscription %q cannot write its dead-letter topic: %w", s.Name, err)
		}
		if _, err := q.store.Topic(s.DeadLetterTopic); errors.Is(err, ErrTopicNotFound) {
			_, err := q.broker.CreateTopic(ctx, TopicConfig{Name: s.DeadLetterTopic, Partitions: 1,
				ReplicationFactor: t.ReplicationFactor, RetentionMs: t.RetentionMs})
			if err != nil && !errors.Is(err, ErrTopicExists) {
				return nil, fmt.Errorf("create the dead-letter topic %q: %w", s.DeadLetterTopic, err)
			}
		}
	}
	var uid [8]byte
	rand.Read(uid[:])
	s.UID = hex.EncodeToString(uid[:])
	s.CreatedAt = q.cfg.Now().UnixMilli()
	if s.Start == StartLatest {
		// Pin every partition's frontier at its end now, before the
		// definition exists, so nothing produced after this call is skipped.
		for p := 0; p < t.Partitions; p++ {
			if err := q.initLatest(ctx, s, p); err != nil {
				return nil, err
			}
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	ok, err := q.store.CatalogPut(ctx, subscriptionsTable, key, b, CatalogCond{IfAbsent: true})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: subscription %q on topic %q already exists", ErrSubscriptionExists, s.Name, s.Topic)
	}
	return s, nil
}

// fill validates a new subscription's settings and fills the defaults
// (ErrBadRequest).
func (s *Subscription) fill(maxVisibility time.Duration) error {
	if err := s.Backoff.validate(); err != nil {
		return err
	}
	if s.VisibilityTimeoutMs == 0 {
		s.VisibilityTimeoutMs = 30000
	}
	if s.VisibilityTimeoutMs < 1 || s.VisibilityTimeoutMs > maxVisibility.Milliseconds() {
		return Invalidf("visibility_timeout_ms must be between 1 and %d", maxVisibility.Milliseconds())
	}
	switch s.Ordering {
	case "":
		s.Ordering = OrderingNone
	case OrderingNone, OrderingKey:
	default:
		return Invalidf("ordering must be %q or %q, not %q", OrderingNone, OrderingKey, s.Ordering)
	}
	switch s.Start {
	case "":
		s.Start = StartEarliest
	case StartEarliest, StartLatest:
	default:
		return Invalidf("start must be %q or %q, not %q", StartEarliest, StartLatest, s.Start)
	}
	if s.PriorityGuardEvery < 0 || s.PriorityGuardEvery > 1000000 {
		return Invalidf("priority_guard_every must be between 0 (off) and 1000000")
	}
	if s.PriorityGuardEvery > 0 && !s.Priority {
		return Invalidf("priority_guard_every needs priority")
	}
	if s.MaxAttempts < 0 || s.MaxAttempts > 1000000 {
		return Invalidf("max_attempts must be between 0 (unlimited) and 1000000")
	}
	if s.DeadLetterTopic != "" {
		if s.DeadLetterTopic == s.Topic {
			return Invalidf("the dead-letter topic must differ from the subscription's topic")
		}
		if !ValidTopicName(s.DeadLetterTopic) {
			return Invalidf("dead_letter_topic %q must be 1–249 characters of [A-Za-z0-9._-]", s.DeadLetterTopic)
		}
		if s.MaxAttempts == 0 {
			s.MaxAttempts = 5
		}
	} else if s.MaxAttempts > 0 {
		return Invalidf("max_attempts needs a dead_letter_topic (without one, messages are retried forever)")
	}
	return nil
}

func (q *Queues) initLatest(ctx context.Context, s *Subscription, p int) error {
	log, err := q.store.Partition(s.Topic, p)
	if err != nil {
		return err
	}
	prefix := subStatePrefix(s.Name, s.UID)
	hwm := log.HighWatermark()
	h := subHeader{gen: 1, frontier: hwm, cursor: hwm}
	_, err = log.ApplyTxn(ctx, &StateTxn{
		Conds: []StateCond{{Key: prefix + "h", Absent: true}},
		Ops:   []StateOp{{Key: prefix + "h", Value: h.encode()}},
	})
	return err
}

// Subscription returns a subscription's definition. ErrSubscriptionNotFound.
func (q *Queues) Subscription(topic, name string) (*Subscription, error) {
	key := subCatalogKey(topic, name)
	raw, ok := q.store.CatalogGet(subscriptionsTable, key)
	if !ok {
		if _, err := q.store.Topic(topic); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: topic %q has no subscription %q", ErrSubscriptionNotFound, topic, name)
	}
	q.mu.Lock()
	c, ok := q.subs[key]
	q.mu.Unlock()
	if ok && c.raw == string(raw) {
		return c.sub, nil
	}
	s := new(Subscription)
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("subscription %q: %w", key, err)
	}
	q.mu.Lock()
	q.subs[key] = cachedSub{raw: string(raw), sub: s}
	q.mu.Unlock()
	return s, nil
}

// Subscriptions lists the subscriptions of topic (every topic when topic is
// empty), sorted by topic and name.
func (q *Queues) Subscriptions(topic string) []*Subscription {
	var out []*Subscription
	for k, raw := range q.store.CatalogList(subscriptionsTable) {
		if topic != "" && !strings.HasPrefix(k, topic+"/") {
			continue
		}
		s := new(Subscription)
		if json.Unmarshal(raw, s) == nil {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// DeleteSubscription removes a subscription and its state. Messages stay
// in the topic (retention governs them).
func (q *Queues) DeleteSubscription(ctx context.Context, topic, name string) error {
	key := subCatalogKey(topic, name)
	raw, ok := q.store.CatalogGet(subscriptionsTable, key)
	if !ok {
		_, err := q.Subscription(topic, name)
		return err
	}
	s := new(Subscription)
	if err := json.Unmarshal(raw, s); err != nil {
		return err
	}
	ok, err := q.store.CatalogDelete(ctx, subscriptionsTable, key, CatalogCond{IfEqual: raw})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: topic %q has no subscription %q", ErrSubscriptionNotFound, topic, name)
	}
	q.stopWorkers(s.UID)
	// Best effort: the maintenance loop collects whatever is left.
	if t, err := q.store.Topic(topic); err == nil {
		for p := 0; p < t.Partitions; p++ {
			if log, err := q.store.Partition(topic, p); err == nil {
				q.deletePrefix(ctx, log, subStatePrefix(s.Name, s.UID))
			}
		}
	}
	return nil
}

// deletePrefix deletes every state key under prefix, in bounded transactions.
func (q *Queues) deletePrefix(ctx context.Context, log PartitionLog, prefix string) {
	var keys []string
	log.StateScan(prefix, func(k string, _ []byte) bool { keys = append(keys, k); return true })
	for len(keys) > 0 {
		n := min(len(keys), 5000)
		ops := make([]StateOp, n)
		for i, k := range keys[:n] {
			ops[i] = StateOp{Key: k, Delete: true}
		}
		keys = keys[n:]
		if _, err := log.ApplyTxn(ctx, &StateTxn{Ops: ops}); err != nil {
			q.log.Debug("subscription state cleanup", "prefix", prefix, "err", err)
			return
		}
	}
}

// SubscriptionPartitionStats is one partition's view of a subscription, as
// this node's replica knows it.
type SubscriptionPartitionStats struct {
	Partition     int
	Cursor        int64 // every offset below is acknowledged or dead-lettered
	Frontier      int64 // the first offset the subscription has not looked at yet
	HighWatermark int64
	Backlog       int64 // messages not done yet: fresh ones plus the tracked ones below
	InFlight      int   // leased now
	Retrying      int   // failed at least once, waiting for the backoff or a receiver
	Delayed       int   // never delivered, due later (deliver_at)
	Blocked       int   // ordering "key": waiting behind an earlier message of the same key
	DeadPending   int   // attempts exhausted, not yet in the dead-letter topic
	// Pending counts, for a priority subscription, the indexed messages
	// waiting for delivery (not leased, not dead) per priority.
	Pending                                                  [MaxPriority + 1]int
	Delivered, Acked, Nacked, Expired, DeadLettered, Dropped int64
	Err                                                      error // the partition is not readable here
}

// Stats returns per-partition statistics of a subscription.
func (q *Queues) Stats(topic, name string) (*Subscription, []SubscriptionPartitionStats, error) {
	s, err := q.Subscription(topic, name)
	if err != nil {
		return nil, nil, err
	}
	t, err := q.store.Topic(topic)
	if err != nil {
		return nil, nil, err
	}
	now := q.cfg.Now().UnixMilli()
	prefix := subStatePrefix(s.Name, s.UID)
	out := make([]SubscriptionPartitionStats, t.Partitions)
	for p := range out {
		st := &out[p]
		st.Partition = p
		log, err := q.store.Partition(topic, p)
		if err != nil {
			st.Err = err
			continue
		}
		m, err := loadMirror(log, prefix)
		if err != nil {
			st.Err = err
			continue
		}
		h := m.h
		st.Cursor, st.Frontier, st.HighWatermark = h.cursor, h.frontier, log.HighWatermark()
		st.Delivered, st.Acked, st.Nacked, st.Expired, st.DeadLettered, st.Dropped = h.delivered, h.acked, h.nacked, h.expired, h.deadLettered, h.dropped
		heads := map[uint64]int64{}
		if s.Ordering == OrderingKey {
			for off, e := range m.entries {
				if e.hasKey {
					if cur, ok := heads[e.keyHash]; !ok || off < cur {
						heads[e.keyHash] = off
					}
				}
			}
		}
		for off, e := range m.entries {
			if s.Priority && e.status == entryReady {
				st.Pending[e.prio]++
			}
			switch {
			case e.status == entryDead:
				st.DeadPending++
			case e.status == entryLeased && now < e.leaseUntil:
				st.InFlight++
			case s.Ordering == OrderingKey && e.hasKey && heads[e.keyHash] != off:
				st.Blocked++
			case e.attempt == 0 && e.notBefore > now:
				st.Delayed++
			case s.Priority && e.attempt == 0:
				// Indexed by a priority subscription, not delivered yet:
				// in the backlog only, like the records beyond the frontier.
			default:
				st.Retrying++
			}
		}
		st.Backlog = max(0, st.HighWatermark-max(h.frontier, log.LogStart())) + int64(len(m.entries))
	}
	return s, out, nil
}

// QueuePending is the number of messages a priority subscription has
// indexed and not yet delivered, of one priority, on the partitions this
// node leads.
type QueuePending struct {
	Topic, Subscription string
	Priority            int
	Pending             int64
}

// PendingByPriority reports, for every priority subscription, its pending
// messages per priority on the partitions this node leads (as their
// workers last saw them). Subscriptions without priority are left out.
func (q *Queues) PendingByPriority() []QueuePending {
	type key struct {
		topic, name string
		prio        int
	}
	sums := map[key]int64{}
	q.mu.Lock()
	var ws []*partWorker
	for _, w := range q.workers {
		if w.pub != nil {
			ws = append(ws, w)
		}
	}
	q.mu.Unlock()
	for _, w := range ws {
		log, err := q.store.Partition(w.sub.Topic, w.part)
		if err != nil || !log.IsLeader() {
			continue
		}
		for p := range w.pub.pending {
			sums[key{w.sub.Topic, w.sub.Name, p}] += w.pub.pending[p].Load()
		}
	}
	out := make([]QueuePending, 0, len(sums))
	for k, n := range sums {
		out = append(out, QueuePending{Topic: k.topic, Subscription: k.name, Priority: k.prio, Pending: n})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		if a.Subscription != b.Subscription {
			return a.Subscription < b.Subscription
		}
		return a.Priority > b.Priority
	})
	return out
}

// Receive leases up to req.MaxRecords deliverable messages, long-polling up
// to req.Wait while there are none. Messages of one partition come in
// offset order (retries first); for a priority subscription, highest
// priority first, across partitions too (see priorityPass).
func (q *Queues) Receive(ctx context.Context, req *ReceiveRequest) ([]Message, error) {
	s, err := q.Subscription(req.Topic, req.Subscription)
	if err != nil {
		return nil, err
	}
	rp, err := q.receiveParams(s, req)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(min(req.Wait, q.cfg.MaxWait))
	var timer *time.Timer
	for {
		var ps recvPass
		var err error
		if s.Priority {
			err = q.priorityPass(ctx, rp, &ps)
		} else {
			err = q.plainPass(ctx, rp, &ps)
		}
		if err != nil {
			return nil, err
		}
		if len(ps.out) > 0 {
			return ps.out, nil
		}
		d := time.Until(deadline)
		nextDue := ps.nextDue
		if ps.served == 0 && ps.lastErr != nil {
			// Nothing could be served. A replica catching up after a
			// restart, or a partition between leaders, is worth waiting
			// for while the long-poll lasts.
			if !errors.Is(ps.lastErr, ErrUnavailable) || d <= 0 {
				return nil, ps.lastErr
			}
			nextDue = time.Now().Add(min(d, 100*time.Millisecond)).UnixMilli()
		}
		if d <= 0 {
			return nil, nil
		}
		if nextDue > 0 {
			d = min(d, time.Until(time.UnixMilli(nextDue))+time.Millisecond)
		}
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		} else {
			timer.Reset(d)
		}
		select {
		case <-q.broker.WaitsEnded(): // the node is shutting down
			return nil, nil
		default:
		}
		if err := waitSubChange(ctx, append(ps.chans[:len(ps.chans):len(ps.chans)], q.broker.WaitsEnded()), timer.C); err != nil {
			return nil, err
		}
	}
}

// receiveParams checks a receive's limits against the configuration and
// fills their defaults: 10 records, MaxReceiveBytes, the subscription's
// visibility timeout.
func (q *Queues) receiveParams(s *Subscription, req *ReceiveRequest) (*recvParams, error) {
	t, err := q.store.Topic(req.Topic)
	if err != nil {
		return nil, err
	}
	maxRecs := req.MaxRecords
	if maxRecs == 0 {
		maxRecs = 10
	}
	if maxRecs < 0 || maxRecs > q.cfg.MaxReceiveRecords {
		return nil, Invalidf("max_records must be between 1 and %d", q.cfg.MaxReceiveRecords)
	}
	maxBytes := req.MaxBytes
	if maxBytes <= 0 || maxBytes > q.cfg.MaxReceiveBytes {
		maxBytes = q.cfg.MaxReceiveBytes
	}
	vt := s.VisibilityTimeoutMs
	if req.VisibilityTimeout != 0 {
		vt = req.VisibilityTimeout.Milliseconds()
		if vt < 1 || vt > q.cfg.MaxVisibilityTimeout.Milliseconds() {
			return nil, Invalidf("visibility_timeout_ms must be between 1 and %d", q.cfg.MaxVisibilityTimeout.Milliseconds())
		}
	}
	if req.Wait < 0 {
		return nil, Invalidf("wait_ms must be ≥ 0")
	}
	return &recvParams{sub: s, partitions: t.Partitions, max: maxRecs, maxBytes: maxBytes, vt: vt, autoAck: req.AutoAck}, nil
}

// recvParams is a Receive call's validated request.
type recvParams struct {
	sub           *Subscription
	partitions    int
	max, maxBytes int
	vt            int64 // ms
	autoAck       bool
}

// recvPass is what one pass of Receive over the partitions found.
type recvPass struct {
	out     []Message
	chans   []<-chan struct{} // the partitions' change notifications, to long-poll on
	nextDue int64             // ms: the earliest time something not deliverable now becomes so
	served  int               // partitions that answered
	lastErr error
}

func (ps *recvPass) due(at int64) {
	if at > 0 && (ps.nextDue == 0 || at < ps.nextDue) {
		ps.nextDue = at
	}
}

// partition returns partition p's log and worker, noting the log's change
// channel; a nil worker with a nil error means p cannot be served here now.
func (q *Queues) partition(rp *recvParams, ps *recvPass, p int) (PartitionLog, *partWorker, error) {
	log, err := q.store.Partition(rp.sub.Topic, p)
	if err != nil {
		ps.lastErr = err
		return nil, nil, nil
	}
	ps.chans = append(ps.chans, log.Changed())
	w, err := q.worker(rp.sub, p)
	return log, w, err
}

// plainPass leases from the partitions in turn, starting at a rotating
// one, until rp.max messages (or rp.maxBytes) are leased.
func (q *Queues) plainPass(ctx context.Context, rp *recvParams, ps *recvPass) error {
	maxBytes := rp.maxBytes
	start := int(q.rr.Add(1) % uint64(rp.partitions))
	for i := 0; i < rp.partitions && len(ps.out) < rp.max; i++ {
		_, w, err := q.partition(rp, ps, (start+i)%rp.partitions)
		if err != nil {
			return err
		}
		if w == nil {
			continue
		}
		op := &wop{kind: wopReceive, max: rp.max - len(ps.out), maxBytes: maxBytes, vt: rp.vt, autoAck: rp.autoAck}
		if err := w.do(ctx, op); err != nil {
			ps.lastErr = err
			continue
		}
		ps.served++
		ps.out = append(ps.out, op.msgs...)
		for _, m := range op.msgs {
			maxBytes -= m.Size()
		}
		ps.due(op.nextDue)
		if maxBytes <= 0 {
			break
		}
	}
	return nil
}

// waitSubChange blocks until one of chans is closed, tick fires or ctx ends.
func waitSubChange(ctx context.Context, chans []<-chan struct{}, tick <-chan time.Time) error {
	if len(chans) == 1 {
		select {
		case <-chans[0]:
		case <-tick:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	cases := make([]reflect.SelectCase, 0, len(chans)+2)
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(tick)})
	for _, c := range chans {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	if i, _, _ := reflect.Select(cases); i == 0 {
		return ctx.Err()
	}
	return nil
}

// Ack acknowledges messages: they are done and never delivered again. An
// ack of a message that is already done succeeds (acks are idempotent); of
// one leased again to someone else, or nacked, it fails with ErrLeaseLost.
func (q *Queues) Ack(ctx context.Context, topic, sub string, receipts []string) ([]ReceiptResult, error) {
	return q.receiptOp(ctx, topic, sub, receipts, func() *wop { return &wop{kind: wopAck} })
}

// NackRequest gives messages back before their lease expires.
type NackRequest struct {
	Topic, Subscription string
	Receipts            []string
	// Delay before the next delivery; nil: the subscription's backoff.
	Delay *time.Duration
	// Error is kept as the message's last error (weir-last-error when it is
	// dead-lettered); at most 1 KiB is kept.
	Error string
}

// Nack gives messages back for redelivery after the delay (or backoff), or
// dead-letters those whose attempts are exhausted.
func (q *Queues) Nack(ctx context.Context, req *NackRequest) ([]ReceiptResult, error) {
	delay := int64(-1)
	if req.Delay != nil {
		if *req.Delay < 0 || *req.Delay > q.cfg.MaxVisibilityTimeout {
			return nil, Invalidf("delay_ms must be between 0 and %d", q.cfg.MaxVisibilityTimeout.Milliseconds())
		}
		delay = req.Delay.Milliseconds()
	}
	reason := req.Error
	if len(reason) > maxLastError {
		reason = reason[:maxLastError]
	}
	return q.receiptOp(ctx, req.Topic, req.Subscription, req.Receipts, func() *wop {
		return &wop{kind: wopNack, delay: delay, reason: reason}
	})
}

// Extend sets the leases of messages to expire vt from now.
func (q *Queues) Extend(ctx context.Context, topic, sub string, receipts []string, vt time.Duration) ([]ReceiptResult, error) {
	if vt < time.Millisecond || vt > q.cfg.MaxVisibilityTimeout {
		return nil, Invalidf("visibility_timeout_ms must be between 1 and %d", q.cfg.MaxVisibilityTimeout.Milliseconds())
	}
	return q.receiptOp(ctx, topic, sub, receipts, func() *wop { return &wop{kind: wopExtend, vt: vt.Milliseconds()} })
}

func (q *Queues) receiptOp(ctx context.Context, topic, name string, receipts []string, mk func() *wop) ([]ReceiptResult, error) {
	s, err := q.Subscription(topic, name)
	if err != nil {
		return nil, err
	}
	if len(receipts) == 0 {
		return nil, Invalidf("receipts must not be empty")
	}
	if len(receipts) > q.cfg.MaxReceiveRecords {
		return nil, Invalidf("at most %d receipts per request", q.cfg.MaxReceiveRecords)
	}
	t, err := q.store.Topic(topic)
	if err != nil {
		return nil, err
	}
	out := make([]ReceiptResult, len(receipts))
	byPart := map[int]*wop{}
	var parts []int
	tag := uidTag(s.UID)
	for i, rs := range receipts {
		out[i].Receipt = rs
		r, err := parseReceipt(rs)
		if err == nil && (r.tag != tag || r.partition >= t.Partitions) {
			err = fmt.Errorf("%w: the receipt is not one of subscription %q", ErrInvalidReceipt, name)
		}
		if err != nil {
			out[i].Err = err
			continue
		}
		op := byPart[r.partition]
		if op == nil {
			op = mk()
			byPart[r.partition] = op
			parts = append(parts, r.partition)
		}
		op.receipts = append(op.receipts, r)
		op.idx = append(op.idx, i)
	}
	run := func(p int) {
		op := byPart[p]
		w, err := q.worker(s, p)
		if err == nil {
			err = w.do(ctx, op)
		}
		for j, i := range op.idx {
			if err != nil {
				out[i].Err = err
				continue
			}
			out[i].Err = op.errs[j]
			if op.expires != nil {
				out[i].LeaseExpiresAt = op.expires[j]
			}
		}
	}
	if len(parts) == 1 {
		run(parts[0])
	} else {
		var wg sync.WaitGroup
		for _, p := range parts {
			wg.Add(1)
			go func() { defer wg.Done(); run(p) }()
		}
		wg.Wait()
	}
	return out, nil
}

// worker returns the partition worker of (s, p), starting it when needed.
func (q *Queues) worker(s *Subscription, p int) (*partWorker, error) {
	k := workerKey{s.UID, p}
	q.mu.Lock()
	defer q.mu.Unlock()
	if w := q.workers[k]; w != nil {
		return w, nil
	}
	if q.ctx.Err() != nil {
		return nil, fmt.Errorf("%w: the queue service is stopping", ErrUnavailable)
	}
	w := newPartWorker(q, s, p)
	q.workers[k] = w
	q.wg.Add(1)
	go w.run()
	return w, nil
}

func (q *Queues) stopWorkers(uid string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, w := range q.workers {
		if k.uid == uid {
			close(w.stopC)
			delete(q.workers, k)
		}
	}
}

// maintain runs, every MaintenanceInterval, the work no receiver asks
// for: dead-lettering messages whose last lease expired and retrying
// dead-letter appends, on the partitions this node leads; and now and then
// the collection of state left by deleted subscriptions.
func (q *Queues) maintain() {
	defer q.wg.Done()
	t := time.NewTicker(q.cfg.MaintenanceInterval)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-q.ctx.Done():
			return
		case <-t.C:
		}
		live := map[string]bool{} // uid
		for _, s := range q.Subscriptions("") {
			ti, err := q.store.Topic(s.Topic)
			if err != nil || ti.CreatedAt != s.TopicCreatedAt {
				// The topic is gone (or re-created): so is the subscription.
				if errors.Is(err, ErrTopicNotFound) || err == nil {
					q.dropOrphan(s)
				}
				continue
			}
			live[s.UID] = true
			for p := 0; p < ti.Partitions; p++ {
				log, err := q.store.Partition(s.Topic, p)
				if err != nil || !log.IsLeader() {
					continue
				}
				if w, err := q.worker(s, p); err == nil {
					w.kick()
				}
			}
		}
		q.mu.Lock()
		for k, w := range q.workers {
			if !live[k.uid] {
				close(w.stopC)
				delete(q.workers, k)
			}
		}
		q.mu.Unlock()
		if n%30 == 29 {
			q.collectGarbage(live)
		}
	}
}

func (q *Queues) dropOrphan(s *Subscription) {
	raw, ok := q.store.CatalogGet(subscriptionsTable, subCatalogKey(s.Topic, s.Name))
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(q.ctx, q.cfg.OpTimeout)
	defer cancel()
	if _, err := q.store.CatalogDelete(ctx, subscriptionsTable, subCatalogKey(s.Topic, s.Name), CatalogCond{IfEqual: raw}); err != nil {
		q.log.Debug("drop subscription of a deleted topic", "topic", s.Topic, "subscription", s.Name, "err", err)
	}
}

// collectGarbage deletes subscription state whose incarnation is not live,
// on the partitions this node leads.
func (q *Queues) collectGarbage(live map[string]bool) {
	ctx, cancel := context.WithTimeout(q.ctx, q.cfg.OpTimeout)
	defer cancel()
	for _, t := range q.store.Topics() {
		for p := 0; p < t.Partitions; p++ {
			log, err := q.store.Partition(t.Name, p)
			if err != nil || !log.IsLeader() {
				continue
			}
			dead := map[string]bool{}
			log.StateScan("sub/", func(k string, _ []byte) bool {
				parts := strings.SplitN(k, "/", 4)
				if len(parts) == 4 && !live[parts[2]] {
					dead[subStatePrefix(parts[1], parts[2])] = true
				}
				return true
			})
			for prefix := range dead {
				// A subscription created since the list was taken is live.
				uid := strings.Split(prefix, "/")[2]
				if q.uidLive(uid) {
					continue
				}
				q.deletePrefix(ctx, log, prefix)
			}
		}
	}
}

func (q *Queues) uidLive(uid string) bool {
	for _, s := range q.Subscriptions("") {
		if s.UID == uid {
			return true
		}
	}
	return false
}

// RedriveRequest moves dead-lettered messages back to a topic.
type RedriveRequest struct {
	From       string // the dead-letter topic
	To         string // where to send them
	MaxRecords int64  // 0: every message in From when the call starts
}

// RedriveGroup is the consumer group whose offsets on a dead-letter topic
// say how far it has been redriven.
const RedriveGroup = "weir-redrive"

// Redrive produces the messages of a dead-letter topic, from the position
// the last redrive reached, to another topic, without the dead-letter
// headers (key, value and the original headers as they were), and commits
// the new position after each batch. It is at-least-once: a crash between
// a produce and its commit sends that batch again next time. A To that is
// a mirror topic not yet promoted is ErrMirrorTopic (*MirrorError), before
// anything is read; Broker.Produce refuses each batch the same way.
func (q *Queues) Redrive(ctx context.Context, req *RedriveRequest) (int64, error) {
	ft, err := q.store.Topic(req.From)
	if err != nil {
		return 0, err
	}
	tt, err := q.store.Topic(req.To)
	if err != nil {
		return 0, err
	}
	if err := CheckWritable(q.store, tt); err != nil { // before reading anything
		return 0, err
	}
	if req.From == req.To {
		return 0, Invalidf("redrive needs two different topics")
	}
	pos := map[int]int64{}
	for _, o := range q.store.GroupOffsets(RedriveGroup) {
		if o.Topic == req.From {
			pos[o.Partition] = o.Offset
		}
	}
	var n int64
	for p := 0; p < ft.Partitions; p++ {
		log, err := q.store.Partition(req.From, p)
		if err != nil {
			return n, err
		}
		end := log.HighWatermark()
		off := max(pos[p], log.LogStart())
		for off < end && (req.MaxRecords == 0 || n < req.MaxRecords) {
			want := 500
			if req.MaxRecords > 0 {
				want = int(min(int64(want), req.MaxRecords-n))
			}
			recs, err := log.Read(ctx, off, want, 4<<20)
			var re *OffsetRangeError
			if errors.As(err, &re) {
				off = re.LogStart
				continue
			}
			if err != nil {
				return n, err
			}
			if len(recs) == 0 {
				break
			}
			var pr []ProduceRecord
			for _, r := range recs {
				if r.Offset >= end {
					break
				}
				out := ProduceRecord{Partition: -1, Record: Record{Key: r.Key, Value: r.Value}}
				for _, h := range r.Headers {
					if !dlqHeaders[h.Key] {
						out.Headers = append(out.Headers, h)
					}
				}
				pr = append(pr, out)
			}
			if len(pr) == 0 {
				break
			}
			if _, err := q.broker.Produce(ctx, &ProduceRequest{Topic: req.To, Records: pr}); err != nil {
				return n, err
			}
			off = recs[len(pr)-1].Offset + 1
			n += int64(len(pr))
			if err := q.store.CommitOffsets(ctx, RedriveGroup, []GroupOffset{{Topic: req.From, Partition: p, Offset: off}}); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}
