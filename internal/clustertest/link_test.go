package clustertest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// rawPartition reads a whole partition from url in the binary fetch
// format (offsets, keys, values, header order, timestamps, log start and
// high watermark); "" when the node cannot answer.
func rawPartition(url, topic string, partition int) ([]byte, error) {
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=earliest&max_records=10000&max_bytes=16777216", url, topic, partition), nil)
	req.Header.Set("Accept", "application/vnd.weir.records")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("fetch %s/%d: %d %s", topic, partition, resp.StatusCode, b)
	}
	return b, err
}

// TestLinkKillBothSidesUnderLoad: a 3-node cluster A and a 1-node
// cluster B linked to it. Under a steady produce load on A, A's leader of
// f/0 and B's node are killed with SIGKILL and restarted. Once the load
// stops, every partition of B's mirror holds exactly A's bytes (same
// offsets, each acknowledged record once) and A holds exactly what was
// acknowledged.
func TestLinkKillBothSidesUnderLoad(t *testing.T) {
	a := newCluster(t)
	b := tu.StartWeirCluster(t, 1)[0]
	if r := tu.Do(t, "POST", b.URL()+"/v1/links", map[string]any{"name": "a", "source_url": a.url(1), "topics": []string{"f"}}); r.Status != 201 {
		t.Fatalf("create link: %d %s", r.Status, r.Body)
	}
	load := tu.StartLoad(t, a.urls(0), "f", 3, 6)
	load.AwaitAcks(t, 50, 60*time.Second, 0, 1, 2)
	tu.Eventually(t, 60*time.Second, "the mirror receives records", func() bool {
		r, err := tu.TryDo("GET", b.URL()+"/v1/topics/f", nil)
		return err == nil && r.Status == 200 && bytes.Contains(r.Body, []byte(`"mirror"`)) && !bytes.Contains(r.Body, []byte(`"high_watermark":0`))
	})

	// kill -9 on the source: the leader of f/0.
	victim := tu.LeaderOf(t, a.url(1), "f", 0)
	if victim == 0 {
		t.Fatal("no leader for f/0")
	}
	killed := time.Now()
	a.procs[victim-1].Kill()
	load.SetURLs(a.urls(victim))
	tu.Eventually(t, 30*time.Second, "writes to f/0 resume", func() bool {
		_, ok := load.Ledger.FirstAckAfter(0, killed.Add(100*time.Millisecond))
		return ok
	})
	load.AwaitAcks(t, 50, 60*time.Second, 0)

	// kill -9 on the destination, while A's node is still down.
	b.Kill()
	load.AwaitAcks(t, 50, 60*time.Second, 0, 1, 2)
	b.Restarted()
	b.WaitReady(90 * time.Second)
	a.procs[victim-1].Restarted()
	a.procs[victim-1].WaitReady(90 * time.Second)
	load.SetURLs(a.urls(0))
	load.AwaitAcks(t, 50, 60*time.Second, 0, 1, 2)
	load.Stop(t)
	a.waitSettled(a.url(1))
	a.check(load.Ledger)

	for p := 0; p < 3; p++ {
		want, err := rawPartition(a.url(1), "f", p)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		tu.Eventually(t, 90*time.Second, fmt.Sprintf("mirror of f/%d equal to the source", p), func() bool {
			got, err = rawPartition(b.URL(), "f", p)
			return err == nil && bytes.Equal(got, want)
		})
	}
	t.Logf("%d records acknowledged on A, all on B at the same offsets", load.Ledger.Count())
}
