package server

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	tu "github.com/weir-broker/weir/internal/testutil"
	"github.com/weir-broker/weir/objstore"
)

// Tiered storage against a real S3-compatible server (versitygw): every
// test starts its own, and the nodes upload closed segments of tiny
// tiered topics, drop the local copies, and serve every record back.

// tieredConfig points a node at srv with fast passes.
func tieredConfig(srv *tu.S3Server) func(*Config) {
	return func(c *Config) {
		c.TieredStorage = objstore.S3Config{Endpoint: srv.Endpoint, Bucket: "weir-tiered", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
			Timeout: 5 * time.Second}
		c.Raft.Tiered.Interval = 100 * time.Millisecond
		c.Raft.Tiered.MaxBackoff = 300 * time.Millisecond
		c.Raft.Tiered.RequestTimeout = 5 * time.Second
		c.Raft.Tiered.OrphanAge = 3 * time.Second
	}
}

type tieredTopic struct {
	Tiered              bool  `json:"tiered"`
	SegmentBytes        int64 `json:"segment_bytes"`
	LocalRetentionMs    int64 `json:"local_retention_ms"`
	LocalRetentionBytes int64 `json:"local_retention_bytes"`
	Partitions          []struct {
		Leader        uint64 `json:"leader"`
		LogStart      int64  `json:"log_start_offset"`
		HighWatermark int64  `json:"high_watermark"`
		LocalStart    int64  `json:"local_start_offset"`
		RemoteEnd     int64  `json:"remote_end_offset"`
	} `json:"partitions"`
}

func getTiered(t *testing.T, url, topic string) tieredTopic {
	t.Helper()
	var tt tieredTopic
	tu.Do(t, "GET", url+"/v1/topics/"+topic, nil).JSON(t, &tt)
	return tt
}

// createTieredTopic makes a tiered topic of 2 KiB segments whose local
// copies go as soon as they are uploaded.
func createTieredTopic(t *testing.T, url, name string, rf int) tieredTopic {
	t.Helper()
	r := tu.Do(t, "POST", url+"/v1/topics", map[string]any{"name": name, "partitions": 1, "replication_factor": rf,
		"tiered": true, "segment_bytes": 2048, "local_retention_bytes": 1})
	if r.Status != 201 {
		t.Fatalf("create tiered topic: %d %s", r.Status, r.Body)
	}
	var tt tieredTopic
	r.JSON(t, &tt)
	return tt
}

// produceValues produces records "<prefix>-<i>" with key "k<i>", batch
// records per request, and returns the values in offset order.
func produceValues(t *testing.T, url, topic, prefix string, from, n, batch int) []string {
	t.Helper()
	var vals []string
	for i := from; i < from+n; i += batch {
		recs, v := tieredRecords(prefix, i, min(batch, from+n-i))
		vals = append(vals, v...)
		r := tu.Do(t, "POST", url+"/v1/topics/"+topic+"/records", map[string]any{"records": recs})
		if r.Status != 200 {
			t.Fatalf("produce: %d %s", r.Status, r.Body)
		}
	}
	return vals
}

// tieredRecords are n records "<prefix>-<i>-xxx…" with keys "k<i>" from
// i = from on, and their values.
func tieredRecords(prefix string, from, n int) (recs []map[string]any, vals []string) {
	for j := from; j < from+n; j++ {
		v := fmt.Sprintf("%s-%d-%s", prefix, j, strings.Repeat("x", 60))
		recs = append(recs, map[string]any{"key": fmt.Sprintf("k%d", j), "value": v})
		vals = append(vals, v)
	}
	return recs, vals
}

// bucket is a client of the test's bucket, to look at the objects.
func bucket(t *testing.T, srv *tu.S3Server) *objstore.S3 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := objstore.NewS3(ctx, objstore.S3Config{Endpoint: srv.Endpoint, Bucket: "weir-tiered", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// waitTiered waits until the partition holds at least remoteEnd offsets
// remotely and its local log starts at localStart or later.
func waitTiered(t *testing.T, url, topic string, remoteEnd, localStart int64) tieredTopic {
	t.Helper()
	var tt tieredTopic
	tu.Eventually(t, 60*time.Second, fmt.Sprintf("remote_end_offset ≥ %d and local_start_offset ≥ %d", remoteEnd, localStart), func() bool {
		tt = getTiered(t, url, topic)
		p := tt.Partitions[0]
		return p.RemoteEnd >= remoteEnd && p.LocalStart >= localStart
	})
	return tt
}

func sameValues(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: offset %d is %q, want %q", what, i, got[i], want[i])
		}
	}
}

// kafkaReadAll reads n records of topic from offset 0 with franz-go.
func kafkaReadAll(t *testing.T, s *Server, topic string, n int) []string {
	t.Helper()
	recs := consumeN(t, s, topic, n)
	var vals []string
	for i, r := range recs[:n] {
		if r.Offset != int64(i) || string(r.Key) != fmt.Sprintf("k%d", i) {
			t.Fatalf("kafka record %d: offset %d key %q", i, r.Offset, r.Key)
		}
		vals = append(vals, string(r.Value))
	}
	return vals
}

func TestTieredStorageReadBackAndRestart(t *testing.T) {
	t.Parallel()
	srv := tu.StartS3(t)
	dir := t.TempDir()
	mod := func(c *Config) { tieredConfig(srv)(c); c.KafkaAddr = "127.0.0.1:0" }
	s := startNode(t, dir, mod)

	tt := createTieredTopic(t, s.URL(), "cold", 1)
	if !tt.Tiered || tt.SegmentBytes != 2048 || tt.LocalRetentionBytes != 1 || tt.LocalRetentionMs <= 0 {
		t.Fatalf("created topic shows %+v", tt)
	}
	want := produceValues(t, s.URL(), "cold", "v", 0, 400, 20)
	tt = waitTiered(t, s.URL(), "cold", 300, 300)
	if p := tt.Partitions[0]; p.LogStart != 0 || p.HighWatermark != 400 {
		t.Fatalf("tiering moved the log: %+v", p)
	}
	sameValues(t, "HTTP fetch from 0", tu.ReadPartition(t, s.URL(), "cold", 0, false), want)
	sameValues(t, "Kafka fetch from 0", kafkaReadAll(t, s, "cold", len(want)), want)

	// Kafka's CreateTopics takes the KIP-405 names.
	adm := kadm.NewClient(kafkaClient(t, s))
	cr, err := adm.CreateTopic(kctx(t), 1, 1, map[string]*string{"remote.storage.enable": kadm.StringPtr("true"),
		"segment.bytes": kadm.StringPtr("4096"), "local.retention.ms": kadm.StringPtr("-2")}, "kcold")
	if err != nil || cr.Err != nil {
		t.Fatalf("kafka create: %v %v", err, cr.Err)
	}
	if kt := getTiered(t, s.URL(), "kcold"); !kt.Tiered || kt.SegmentBytes != 4096 || kt.LocalRetentionMs != 7*24*3600*1000 {
		t.Fatalf("topic made by Kafka CreateTopics: %+v", kt)
	}

	// A fetch by timestamp far in the past starts at offset 0, remotely.
	var f fetchResp
	tu.Do(t, "GET", s.URL()+"/v1/topics/cold/partitions/0/records?timestamp=1&max_records=3", nil).JSON(t, &f)
	if len(f.Records) != 3 || f.Records[0].Offset != 0 {
		t.Fatalf("fetch by timestamp: %+v", f.Records)
	}

	// Restart: the manifest comes back from the checkpoint.
	before := getTiered(t, s.URL(), "cold").Partitions[0]
	stop(t, s)
	s = startNode(t, dir, mod)
	defer stop(t, s)
	var after tieredTopic
	tu.Eventually(t, 30*time.Second, "the partition back after the restart", func() bool {
		after = getTiered(t, s.URL(), "cold")
		return after.Partitions[0].HighWatermark == 400
	})
	if after := after.Partitions[0]; after.RemoteEnd < before.RemoteEnd || after.LocalStart < before.LocalStart || after.LogStart != 0 {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	sameValues(t, "HTTP fetch after restart", tu.ReadPartition(t, s.URL(), "cold", 0, false), want)
}

func TestTieredStorageRetention(t *testing.T) {
	t.Parallel()
	srv := tu.StartS3(t)
	s := startNode(t, t.TempDir(), tieredConfig(srv), func(c *Config) { c.Broker.RetentionInterval = 100 * time.Millisecond })
	defer stop(t, s)
	r := tu.Do(t, "POST", s.URL()+"/v1/topics", map[string]any{"name": "short", "tiered": true, "segment_bytes": 2048,
		"local_retention_bytes": 1, "retention_bytes": 8192})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	want := produceValues(t, s.URL(), "short", "v", 0, 400, 20)
	// The topic's retention moves the log start over remote segments, and
	// their objects go from the bucket.
	var tt tieredTopic
	tu.Eventually(t, 60*time.Second, "retention over remote segments", func() bool {
		tt = getTiered(t, s.URL(), "short")
		return tt.Partitions[0].LogStart >= 200 && tt.Partitions[0].RemoteEnd >= 300
	})
	start := tt.Partitions[0].LogStart
	var f fetchResp
	tu.Do(t, "GET", s.URL()+"/v1/topics/short/partitions/0/records?offset=earliest&max_records=1", nil).JSON(t, &f)
	if len(f.Records) != 1 || f.Records[0].Offset < start || f.Records[0].Value != want[f.Records[0].Offset] {
		t.Fatalf("earliest record after retention: %+v (log start %d)", f.Records, start)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := bucket(t, srv)
	tu.Eventually(t, 30*time.Second, "no object below the log start", func() bool {
		objs, err := store.List(ctx, "weir/short/")
		if err != nil {
			return false
		}
		start := getTiered(t, s.URL(), "short").Partitions[0].LogStart
		for _, o := range objs {
			name := o.Key[strings.LastIndex(o.Key, "/")+1:]
			next, _ := strconv.ParseInt(strings.Split(name, "-")[1], 10, 64)
			if next <= start {
				return false
			}
		}
		return len(objs) > 0
	})
	// Deleting the topic deletes its objects.
	if r := tu.Do(t, "DELETE", s.URL()+"/v1/topics/short", nil); r.Status != 204 {
		t.Fatalf("delete topic: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 30*time.Second, "the deleted topic's objects gone", func() bool {
		objs, err := store.List(ctx, "weir/short/")
		return err == nil && len(objs) == 0
	})
}

// metricValue sums a metric's samples in a /metrics page.
func metricValue(page, name string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + name + `(\{[^}]*\})? ([0-9.e+-]+)$`)
	sum, found := 0.0, false
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		sum += v
		found = true
	}
	return sum, found
}

func TestTieredStorageStoreDown(t *testing.T) {
	t.Parallel()
	srv := tu.StartS3(t)
	s := startNode(t, t.TempDir(), tieredConfig(srv))
	defer stop(t, s)
	createTieredTopic(t, s.URL(), "outage", 1)
	want := produceValues(t, s.URL(), "outage", "a", 0, 100, 20)
	waitTiered(t, s.URL(), "outage", 50, 50)

	srv.Stop()
	// Produce goes on while the object store is down; the backlog grows.
	want = append(want, produceValues(t, s.URL(), "outage", "b", 100, 300, 20)...)
	backlog := func() float64 {
		v, _ := metricValue(string(tu.Do(t, "GET", s.URL()+"/metrics", nil).Body), "weir_tiered_backlog_bytes")
		return v
	}
	tu.Eventually(t, 30*time.Second, "a backlog of closed segments", func() bool { return backlog() > 4096 })
	held := getTiered(t, s.URL(), "outage").Partitions[0]
	if held.HighWatermark != 400 {
		t.Fatalf("produce while the store is down: %+v", held)
	}
	// Nothing past what was uploaded left the local disk.
	if held.LocalStart > held.RemoteEnd {
		t.Fatalf("local start %d past remote end %d", held.LocalStart, held.RemoteEnd)
	}
	sameValues(t, "fetch while the store is down (local part)", tu.ReadPartitionFrom(t, s.URL(), "outage", 0, held.LocalStart, false), want[held.LocalStart:])
	// Below the local start the answer is a clear 503 while it is down.
	if r := tu.Do(t, "GET", s.URL()+"/v1/topics/outage/partitions/0/records?offset=0", nil); r.Status != 503 || r.ErrorCode() != "unavailable" {
		t.Fatalf("fetch of a remote segment while the store is down: %d %s", r.Status, r.Body)
	}

	tu.Eventually(t, 30*time.Second, "failed uploads counted", func() bool {
		v, _ := metricValue(string(tu.Do(t, "GET", s.URL()+"/metrics", nil).Body), "weir_tiered_upload_failures_total")
		return v > 0
	})
	srv.Start()
	tu.Eventually(t, 60*time.Second, "the backlog drains", func() bool { return backlog() == 0 })
	waitTiered(t, s.URL(), "outage", 350, 350)
	sameValues(t, "fetch after the store came back", tu.ReadPartition(t, s.URL(), "outage", 0, false), want)
}

func TestTieredStorageLeaderChange(t *testing.T) {
	t.Parallel()
	srv := tu.StartS3(t)
	c := startCluster(t, 3, tieredConfig(srv))
	var url string
	for _, n := range c.nodes {
		url = n.URL()
		break
	}
	createTieredTopic(t, url, "moving", 3)
	var urls atomic.Value
	var all []string
	for _, n := range c.nodes {
		all = append(all, n.URL())
	}
	urls.Store(all)

	// One idempotent producer streams 500 records in batches of 10,
	// moving to another node on errors, while the leader stops.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var want []string
	done := make(chan error, 1)
	go func() {
		for i, try := 0, 0; i < 500; try++ {
			live := urls.Load().([]string)
			vals, err := tryProduce(ctx, live[try%len(live)], "moving", "v", i, 10, i)
			if err == nil {
				want = append(want, vals...)
				i += 10
			} else if ctx.Err() != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	tt := waitTiered(t, url, "moving", 60, 60)
	leader := tt.Partitions[0].Leader
	var rest []string
	for id, n := range c.nodes {
		if id != leader {
			rest = append(rest, n.URL())
		}
	}
	urls.Store(rest)
	stop(t, c.nodes[leader])
	delete(c.nodes, leader)
	if err := <-done; err != nil {
		t.Fatalf("produce while the leader stopped: %v", err)
	}
	for _, u := range rest {
		tu.Eventually(t, 30*time.Second, "every acknowledged record applied at "+u, func() bool {
			return getTiered(t, u, "moving").Partitions[0].HighWatermark >= 500
		})
	}
	waitTiered(t, rest[0], "moving", 400, 400)
	for _, n := range c.nodes {
		sameValues(t, "fetch from "+n.URL(), tu.ReadPartition(t, n.URL(), "moving", 0, true), want)
	}
	// No orphan is kept: the bucket ends up holding exactly the manifest.
	var s *Server
	for _, n := range c.nodes {
		s = n
	}
	store := bucket(t, srv)
	tu.Eventually(t, 60*time.Second, "objects = manifest", func() bool {
		keys, err := s.Host.RemoteSegmentKeys("moving", 0)
		objs, lerr := store.List(ctx, "weir/moving/")
		if err != nil || lerr != nil || len(objs) != len(keys) {
			return false
		}
		var listed []string
		for _, o := range objs {
			listed = append(listed, o.Key)
		}
		sort.Strings(keys)
		return strings.Join(listed, ",") == strings.Join(keys, ",")
	})
}

// tryProduce is produceValues of one batch by an idempotent producer
// (a retry after an unknown outcome is answered as a duplicate), which
// reports errors instead of failing.
func tryProduce(ctx context.Context, url, topic, prefix string, from, n, seq int) ([]string, error) {
	recs, vals := tieredRecords(prefix, from, n)
	r, err := tu.TryDo("POST", url+"/v1/topics/"+topic+"/records", map[string]any{"producer_id": "tiered", "sequence": seq, "records": recs})
	if err != nil {
		return nil, err
	}
	if r.Status != 200 {
		return nil, fmt.Errorf("produce: %d %s", r.Status, r.Body)
	}
	return vals, nil
}

// Without an object store: plain topics show the tiered fields with their
// effective values, and tiered settings are refused with clear errors.
func TestTieredTopicFields(t *testing.T) {
	t.Parallel()
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	createTopic(t, s.URL(), "plain", 1)
	if tt := getTiered(t, s.URL(), "plain"); tt.Tiered || tt.SegmentBytes != 64<<20 || tt.LocalRetentionMs != 7*24*3600*1000 ||
		tt.LocalRetentionBytes != -1 || tt.Partitions[0].RemoteEnd != 0 || tt.Partitions[0].LocalStart != 0 {
		t.Fatalf("a plain topic shows %+v", tt)
	}
	for _, c := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"name": "t1", "tiered": true}, "tiered storage is not configured"},
		{map[string]any{"name": "t2", "local_retention_ms": 1000}, "tiered topics only"},
		{map[string]any{"name": "t3", "segment_bytes": 100}, "segment_bytes must be between"},
		{map[string]any{"name": "t4", "tiered": "yes"}, "tiered"},
	} {
		r := tu.Do(t, "POST", s.URL()+"/v1/topics", c.body)
		if r.Status != 400 || r.ErrorCode() != "bad_request" || !strings.Contains(string(r.Body), c.want) {
			t.Errorf("create %v: %d %s, want 400 naming %q", c.body, r.Status, r.Body, c.want)
		}
	}
}
