package server

import (
	"fmt"
	"sync"
	"testing"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// Single-record HTTP produces to one partition, many in flight: Raft
// proposals are shared between the produces that wait for one (group
// commit, core/commit.go), and still every produce is answered with its
// own record's offset, the offsets are dense, and none is given twice.
func TestConcurrentSingleRecordHTTPProduces(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "one", 1)
	const producers, each = 32, 10
	answered := make([][]int64, producers)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := map[string]any{"records": []map[string]any{{"value": fmt.Sprintf("p%d-%d", p, i)}}}
				r, err := tu.TryDo("POST", u+"/v1/topics/one/records", body)
				if err != nil || r.Status != 200 {
					t.Errorf("produce p%d-%d: %v %v", p, i, err, r)
					return
				}
				var o offsetsResp
				r.JSON(t, &o)
				if len(o.Offsets) != 1 || o.Offsets[0].Partition != 0 {
					t.Errorf("produce p%d-%d answered %+v", p, i, o)
					return
				}
				answered[p] = append(answered[p], o.Offsets[0].Offset)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	r := tu.Do(t, "GET", u+"/v1/topics/one/partitions/0/records?offset=earliest&max_records=10000", nil)
	var f fetchResp
	r.JSON(t, &f)
	if len(f.Records) != producers*each || f.HighWatermark != producers*each {
		t.Fatalf("fetched %d records, high watermark %d, want %d", len(f.Records), f.HighWatermark, producers*each)
	}
	for i, rec := range f.Records {
		if rec.Offset != int64(i) {
			t.Fatalf("record %d has offset %d: offsets not dense", i, rec.Offset)
		}
	}
	seen := map[int64]bool{}
	for p, offs := range answered {
		for i, off := range offs {
			if seen[off] {
				t.Fatalf("offset %d answered twice", off)
			}
			seen[off] = true
			if want := fmt.Sprintf("p%d-%d", p, i); f.Records[off].Value != want {
				t.Fatalf("produce %s answered offset %d, which holds %q", want, off, f.Records[off].Value)
			}
		}
	}
}
