package core

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"sync"
)

// memStore is a Store of in-memory partition logs (memLog) and an
// in-memory catalog, enough for the queue model: one node, which leads
// every partition. Anything else panics (the embedded Store is nil).
type memStore struct {
	*catalogStore
	mu     sync.Mutex
	topics map[string]TopicInfo
	logs   map[string][]*memLog
}

func newMemStore() *memStore {
	return &memStore{catalogStore: newCatalogStore(), topics: map[string]TopicInfo{}, logs: map[string][]*memLog{}}
}

func (s *memStore) addTopic(name string, partitions int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.topics[name] = TopicInfo{TopicConfig: TopicConfig{Name: name, Partitions: partitions}, CreatedAt: 1}
	for range partitions {
		s.logs[name] = append(s.logs[name], &memLog{state: map[string][]byte{}, changed: make(chan struct{})})
	}
}

func (s *memStore) Topic(name string) (TopicInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.topics[name]
	if !ok {
		return t, ErrTopicNotFound
	}
	return t, nil
}

func (s *memStore) Topics() []TopicInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TopicInfo
	for _, t := range s.topics {
		out = append(out, t)
	}
	return out
}

func (s *memStore) Partition(topic string, p int) (PartitionLog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	logs, ok := s.logs[topic]
	if !ok {
		return nil, ErrTopicNotFound
	}
	if p < 0 || p >= len(logs) {
		return nil, ErrPartitionNotFound
	}
	return logs[p], nil
}

// memLog is a partition log and its state in memory; its log starts at 0.
type memLog struct {
	mu      sync.Mutex
	recs    []Record
	state   map[string][]byte
	changed chan struct{}
}

var _ PartitionLog = (*memLog)(nil)

func (l *memLog) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *memLog) Append(_ context.Context, b *AppendBatch) (AppendResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	base := int64(len(l.recs))
	for i, r := range b.Records {
		r.Offset = base + int64(i)
		if r.Timestamp == 0 {
			r.Timestamp = b.Timestamp
		}
		l.recs = append(l.recs, r)
	}
	l.notify()
	return AppendResult{BaseOffset: base}, nil
}

func (l *memLog) Read(_ context.Context, from int64, maxRecords, maxBytes int) ([]Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	hwm := int64(len(l.recs))
	if from < 0 || from > hwm {
		return nil, &OffsetRangeError{Offset: from, HighWatermark: hwm}
	}
	var out []Record
	n := 0
	for off := from; off < hwm && len(out) < maxRecords && (n < maxBytes || len(out) == 0); off++ {
		out = append(out, l.recs[off])
		n += l.recs[off].Size()
	}
	return out, nil
}

func (l *memLog) OffsetForTime(context.Context, int64) (int64, error) { return l.HighWatermark(), nil }

func (l *memLog) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *memLog) HighWatermark() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.recs))
}

func (l *memLog) LogStart() int64                     { return 0 }
func (l *memLog) Segments() []SegmentInfo             { return nil }
func (l *memLog) TrimTo(context.Context, int64) error { return nil }
func (l *memLog) IsLeader() bool                      { return true }
func (l *memLog) StateGet(k string) ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.state[k]
	return v, ok
}
func (l *memLog) ApplyTxn(_ context.Context, txn *StateTxn) (TxnResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, c := range txn.Conds {
		v, ok := l.state[c.Key]
		if c.Absent && ok || !c.Absent && (!ok || !bytes.Equal(v, c.Value)) {
			return TxnResult{FailedCond: i}, nil
		}
	}
	for _, op := range txn.Ops {
		if op.Delete {
			delete(l.state, op.Key)
		} else {
			l.state[op.Key] = bytes.Clone(op.Value)
		}
	}
	l.notify()
	return TxnResult{Applied: true}, nil
}

func (l *memLog) StateScan(prefix string, fn func(string, []byte) bool) {
	l.mu.Lock()
	var keys []string
	for k := range l.state {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = l.state[k]
	}
	l.mu.Unlock()
	for i, k := range keys {
		if !fn(k, vals[i]) {
			return
		}
	}
}
