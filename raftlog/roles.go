package raftlog

import (
	"encoding/json"
	"errors"
	"os"
	"sync"

	"github.com/weir-broker/weir/raftlog/internal/segment"
)

// roleFile remembers which local replicas were started as non-voting
// learners and not yet seen promoted. Dragonboat needs IsNonVoting on a
// restart to match the replica's role (lni/dragonboat#373): a learner
// restarted as a voter panics when it re-applies its own AddNonVoting, a
// promoted voter restarted as a learner never votes again.
type roleFile struct {
	fs   segment.FS
	path string
	mu   sync.Mutex
	non  map[uint64]bool // shard id → still a learner
}

func loadRoles(fs segment.FS, path string) (*roleFile, error) {
	r := &roleFile{fs: fs, path: path, non: map[uint64]bool{}}
	b, err := readFile(fs, path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &r.non); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *roleFile) nonVoting(shard uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.non[shard]
}

// learners lists the shards still marked non-voting.
func (r *roleFile) learners() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]uint64, 0, len(r.non))
	for s := range r.non {
		out = append(out, s)
	}
	return out
}

func (r *roleFile) set(shard uint64, nonVoting bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.non[shard] == nonVoting {
		return nil
	}
	if nonVoting {
		r.non[shard] = true
	} else {
		delete(r.non, shard)
	}
	b, err := json.Marshal(r.non)
	if err != nil {
		return err
	}
	return writeFileAtomic(r.fs, r.path, b)
}

func (r *roleFile) clear(shard uint64) { _ = r.set(shard, false) }
