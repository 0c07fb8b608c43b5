package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
)

// TryDoHeader is TryDo with extra request headers (e.g. Weir-Hops, which
// makes a node serve a fetch from its own replica).
func TryDoHeader(method, url string, body any, headers map[string]string) (*Response, error) {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// StartWeirCluster starts n `weir serve` processes forming one cluster
// (--peers), each with its own data dir and ports, and waits until every
// one is ready. procs[i] is node i+1.
func StartWeirCluster(t testing.TB, n int, args ...string) []*Proc {
	t.Helper()
	return StartWeirClusterWith(t, n, nil, args...)
}

// StartWeirClusterWith is StartWeirCluster with flags of each node's own
// after args: nodeArgs(i) for node i (1-based; nil: none), e.g. a Kafka
// listener on a FreeAddr port. A restarted process keeps them.
func StartWeirClusterWith(t testing.TB, n int, nodeArgs func(node int) []string, args ...string) []*Proc {
	t.Helper()
	var peers []string
	raft := make([]string, n)
	for i := range raft {
		raft[i] = FreeAddr(t)
		peers = append(peers, fmt.Sprintf("%d=%s", i+1, raft[i]))
	}
	procs := make([]*Proc, n)
	for i := range procs {
		http := FreeAddr(t)
		a := append([]string{"serve", "--http-addr", http, "--kafka-addr", "", "--node-id", fmt.Sprint(i + 1), "--raft-addr", raft[i],
			"--data-dir", t.TempDir(), "--peers", strings.Join(peers, ","), "--log-level", "warn"}, args...)
		if nodeArgs != nil {
			a = append(a, nodeArgs(i+1)...)
		}
		p := &Proc{t: t, Args: a, HTTPAddr: http}
		p.start()
		t.Cleanup(p.Kill)
		procs[i] = p
	}
	for _, p := range procs {
		p.WaitReady(90 * time.Second)
	}
	return procs
}

// Restarted starts a killed process again without waiting for it.
func (p *Proc) Restarted() {
	p.t.Helper()
	p.start()
}

// Alive reports whether the process is running.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Exited waits up to timeout for the process to end and reports whether it
// has.
func (p *Proc) Exited(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// ClusterStatus reads GET /v1/cluster?partitions=true from the node at url.
func ClusterStatus(t testing.TB, url string) core.ClusterStatus {
	t.Helper()
	var st core.ClusterStatus
	r := Do(t, "GET", url+"/v1/cluster?partitions=true", nil)
	if r.Status != 200 {
		t.Fatalf("cluster status: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &st)
	return st
}

// Settled reports a cluster whose partitions all have a leader, none
// moving, and no replica lagging or down.
func Settled(st core.ClusterStatus) bool {
	return st.Leaderless == 0 && st.Moving == 0 && len(st.Lagging) == 0
}

// LeaderOf returns the node leading topic/partition (0 none).
func LeaderOf(t testing.TB, url, topic string, partition int) uint64 {
	t.Helper()
	for _, cp := range ClusterStatus(t, url).PartitionsL {
		if cp.Topic == topic && cp.Partition == partition {
			return cp.Leader
		}
	}
	return 0
}

// ReadPartition reads a partition from offset 0 to its end through the node
// at url (its own replica when local: Weir-Hops), failing t on gaps.
func ReadPartition(t testing.TB, url, topic string, partition int, local bool) []string {
	t.Helper()
	return ReadPartitionFrom(t, url, topic, partition, 0, local)
}

// ReadPartitionFrom is ReadPartition from offset from on.
func ReadPartitionFrom(t testing.TB, url, topic string, partition int, from int64, local bool) []string {
	t.Helper()
	var vals []string
	next := from
	h := map[string]string{}
	if local {
		h["Weir-Hops"] = "1"
	}
	for {
		u := fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=%d&max_records=5000&max_bytes=16777216", url, topic, partition, next)
		r, err := TryDoHeader("GET", u, nil, h)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != 200 {
			t.Fatalf("fetch %s: %d %s", u, r.Status, r.Body)
		}
		var f struct {
			Records []struct {
				Offset int64  `json:"offset"`
				Value  string `json:"value"`
			} `json:"records"`
			NextOffset    int64 `json:"next_offset"`
			HighWatermark int64 `json:"high_watermark"`
		}
		r.JSON(t, &f)
		for i, rec := range f.Records {
			if rec.Offset != next+int64(i) {
				t.Fatalf("%s/%d: offsets not dense: got %d want %d", topic, partition, rec.Offset, next+int64(i))
			}
			vals = append(vals, rec.Value)
		}
		if len(f.Records) == 0 || f.NextOffset >= f.HighWatermark {
			return vals
		}
		next = f.NextOffset
	}
}

// CheckTopic reads every partition of topic from each voting member's own
// replica and checks it against the ledger (Ledger.Check). urlOf maps a
// node id to its base URL.
func CheckTopic(t testing.TB, l *Ledger, topic, statusURL string, urlOf func(node uint64) string) {
	t.Helper()
	for _, cp := range ClusterStatus(t, statusURL).PartitionsL {
		if cp.Topic != topic {
			continue
		}
		// Followers learn the last commits with the next heartbeat: wait
		// (bounded) until every replica holds as many records.
		var reps map[string][]string
		deadline := time.Now().Add(30 * time.Second)
		for {
			reps = map[string][]string{}
			lens := map[int]bool{}
			for _, n := range cp.Members {
				vals := ReadPartition(t, urlOf(n), topic, cp.Partition, true)
				reps[fmt.Sprintf("node%d", n)] = vals
				lens[len(vals)] = true
			}
			if len(lens) <= 1 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		l.Check(t, cp.Partition, reps)
	}
}
