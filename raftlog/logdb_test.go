package raftlog

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"

	"github.com/weir-broker/weir/core"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// recordingLogDB is an ILogDB whose SaveRaftState records what it is given.
type recordingLogDB struct {
	raftio.ILogDB
	calls [][]pb.Update
}

func (r *recordingLogDB) SaveRaftState(u []pb.Update, _ uint64) error {
	r.calls = append(r.calls, append([]pb.Update(nil), u...))
	return nil
}

func TestSkipEmptyLogDBDropsUpdatesThatPersistNothing(t *testing.T) {
	t.Parallel()
	state := pb.State{Term: 2, Vote: 1, Commit: 7}
	entry := []pb.Entry{{Index: 8, Term: 2}}
	onlyCommitted := pb.Update{ShardID: 1, CommittedEntries: entry}
	onlyMessages := pb.Update{ShardID: 2, Messages: []pb.Message{{Type: pb.Heartbeat}}}
	withState := pb.Update{ShardID: 3, State: state}
	withEntries := pb.Update{ShardID: 4, EntriesToSave: entry}
	withSnapshot := pb.Update{ShardID: 5, Snapshot: pb.Snapshot{Index: 3, Term: 1}}
	for _, tc := range []struct {
		name string
		in   []pb.Update
		want []uint64 // shard ids passed on; nil: no call
	}{
		{"nothing to persist", []pb.Update{onlyCommitted, onlyMessages}, nil},
		{"state kept", []pb.Update{onlyCommitted, withState}, []uint64{3}},
		{"entries and snapshot kept, order kept", []pb.Update{withEntries, onlyMessages, withSnapshot}, []uint64{4, 5}},
		{"all kept", []pb.Update{withState, withEntries}, []uint64{3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingLogDB{}
			in := append([]pb.Update(nil), tc.in...)
			if err := (skipEmptyLogDB{rec}).SaveRaftState(in, 1); err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(rec.calls) != 0 {
					t.Fatalf("SaveRaftState called with %v", rec.calls)
				}
				return
			}
			if len(rec.calls) != 1 {
				t.Fatalf("%d calls", len(rec.calls))
			}
			var got []uint64
			for _, u := range rec.calls[0] {
				got = append(got, u.ShardID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("passed on shards %v, want %v", got, tc.want)
			}
			for i := range tc.in { // the caller's slice is untouched
				if in[i].ShardID != tc.in[i].ShardID {
					t.Fatal("caller's slice modified")
				}
			}
		})
	}
}

// Concurrent single-record appends (the load whose second, empty-update
// fsync the filter removes) survive a restart exactly once each, and the
// node takes writes after it (its term and vote were persisted).
func TestSingleRecordAppendsSurviveRestart(t *testing.T) {
	dir, addr := t.TempDir(), tu.FreeAddr(t)
	h := startHost(t, dir, addr)
	ctx, pl := onePartition(t, h, "one", 60*time.Second)
	const producers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, producers*each)
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				v := fmt.Sprintf("p%d-%d", p, i)
				if _, err := pl.Append(ctx, &core.AppendBatch{Timestamp: 1, Records: []core.Record{{Value: []byte(v)}}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	check := func(pl core.PartitionLog, n int) {
		t.Helper()
		recs, err := pl.Read(ctx, 0, 10000, 16<<20)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, r := range recs {
			seen[string(r.Value)]++
		}
		if len(recs) != n {
			t.Fatalf("%d records, want %d", len(recs), n)
		}
		for p := 0; p < producers; p++ {
			for i := 0; i < each; i++ {
				if v := fmt.Sprintf("p%d-%d", p, i); seen[v] != 1 {
					t.Fatalf("%s stored %d times", v, seen[v])
				}
			}
		}
	}
	check(pl, producers*each)
	h.Close()

	h = startHost(t, dir, addr)
	defer h.Close()
	tu.Eventually(t, 20*time.Second, "partition back", func() bool {
		var err error
		pl, err = h.Partition("one", 0)
		return err == nil && pl.HighWatermark() == producers*each
	})
	check(pl, producers*each)
	if _, err := pl.Append(ctx, &core.AppendBatch{Timestamp: 2, Records: []core.Record{{Value: []byte("after")}}}); err != nil {
		t.Fatal(err)
	}
}
