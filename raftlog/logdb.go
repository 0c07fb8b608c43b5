package raftlog

import (
	dbconfig "github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// skipEmptyFactory wraps a LogDB factory so that SaveRaftState never sees an
// update that persists nothing.
//
// Dragonboat hands the LogDB every update a step produced, including those
// that only carry committed entries or messages (State left empty because it
// did not change, no entries, no snapshot). The tan LogDB compares that empty
// State with the replica's stored one, finds the term "changed", writes a
// 16-byte record and fsyncs the replica's log file; it also caches the empty
// State, so the next real update looks changed as well. The result was two
// fsyncs per single-record produce (entry append, then the commit/apply
// step) and one per leader heartbeat round. Dropping those updates before the
// LogDB leaves one fsync per appended batch; docs/RATIONALE.md, "One fsync
// per proposal".
type skipEmptyFactory struct{ inner dbconfig.LogDBFactory }

func (f skipEmptyFactory) Create(cfg dbconfig.NodeHostConfig, cb dbconfig.LogDBCallback,
	dirs, walDirs []string) (raftio.ILogDB, error) {
	db, err := f.inner.Create(cfg, cb, dirs, walDirs)
	if err != nil {
		return nil, err
	}
	return skipEmptyLogDB{db}, nil
}

func (f skipEmptyFactory) Name() string { return f.inner.Name() }

// skipEmptyLogDB is a raftio.ILogDB that filters SaveRaftState's updates.
type skipEmptyLogDB struct{ raftio.ILogDB }

var _ raftio.ILogDB = skipEmptyLogDB{}

// persistsNothing reports whether u has nothing for the LogDB to store.
func persistsNothing(u *pb.Update) bool {
	return pb.IsEmptyState(u.State) && pb.IsEmptySnapshot(u.Snapshot) && len(u.EntriesToSave) == 0
}

// SaveRaftState passes on the updates that persist something; it copies the
// slice only when one must be dropped (the caller reuses its slice).
func (l skipEmptyLogDB) SaveRaftState(updates []pb.Update, workerID uint64) error {
	keep := updates
	for i := range updates {
		if persistsNothing(&updates[i]) {
			keep = make([]pb.Update, 0, len(updates)-1)
			for j := range updates {
				if !persistsNothing(&updates[j]) {
					keep = append(keep, updates[j])
				}
			}
			break
		}
	}
	if len(keep) == 0 {
		return nil
	}
	return l.ILogDB.SaveRaftState(keep, workerID)
}
