package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestTieredKill9Leader runs three `weir serve` processes on a real S3
// server (versitygw; credentials from --tiered-storage-credentials-file),
// streams records into a tiered topic whose local copies go once
// uploaded, kills the partition leader with SIGKILL mid-stream, restarts
// it, and reads every record back from offset 0 on each node's own replica
// (mostly from object storage): all there, once, in order.
func TestTieredKill9Leader(t *testing.T) {
	srv := tu.StartS3(t)
	creds := filepath.Join(t.TempDir(), "credentials")
	body := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", srv.AccessKey, srv.SecretKey)
	if err := os.WriteFile(creds, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	procs := tu.StartWeirCluster(t, 3, "--tiered-storage-endpoint", srv.Endpoint, "--tiered-storage-bucket", "weir-e2e",
		"--tiered-storage-credentials-file", creds, "--tiered-storage-interval", "100ms")
	u := procs[0].URL()
	r := tu.Do(t, "POST", u+"/v1/topics", map[string]any{"name": "cold", "replication_factor": 3, "tiered": true,
		"segment_bytes": 2048, "local_retention_bytes": 1})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var want []string
	produce := func(from, to int) {
		for i := from; i < to; i += 10 {
			var recs []map[string]any
			var vals []string
			for j := i; j < i+10; j++ {
				v := fmt.Sprintf("r%d-%s", j, strings.Repeat("y", 50))
				recs = append(recs, map[string]any{"value": v})
				vals = append(vals, v)
			}
			body := map[string]any{"producer_id": "e2e", "sequence": i, "records": recs}
			tu.Eventually(t, 60*time.Second, fmt.Sprintf("records %d–%d acknowledged", i, i+9), func() bool {
				for _, p := range procs {
					if !p.Alive() {
						continue
					}
					if r, err := tu.TryDo("POST", p.URL()+"/v1/topics/cold/records", body); err == nil && r.Status == 200 {
						return true
					}
				}
				return false
			})
			want = append(want, vals...)
		}
	}
	type part struct {
		Leader     uint64 `json:"leader"`
		HWM        int64  `json:"high_watermark"`
		LocalStart int64  `json:"local_start_offset"`
		RemoteEnd  int64  `json:"remote_end_offset"`
	}
	state := func(url string) part {
		var tt struct{ Partitions []part }
		tu.Do(t, "GET", url+"/v1/topics/cold", nil).JSON(t, &tt)
		return tt.Partitions[0]
	}
	produce(0, 200)
	var leader uint64
	tu.Eventually(t, 60*time.Second, "uploads and local retention under way", func() bool {
		s := state(u)
		leader = s.Leader
		return s.RemoteEnd >= 100 && s.LocalStart >= 100 && leader != 0
	})
	procs[leader-1].Kill()
	produce(200, 400)
	procs[leader-1].Restart(90 * time.Second)
	produce(400, 500)
	for _, p := range procs {
		tu.Eventually(t, 60*time.Second, "node "+p.URL()+" applied everything, tiered", func() bool {
			s := state(p.URL())
			return s.HWM == 500 && s.RemoteEnd >= 400 && s.LocalStart >= 400
		})
		got := tu.ReadPartition(t, p.URL(), "cold", 0, true)
		if len(got) != len(want) {
			t.Fatalf("%s holds %d records, want %d", p.URL(), len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: offset %d is %q, want %q", p.URL(), i, got[i], want[i])
			}
		}
	}
}
