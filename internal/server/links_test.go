package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/internal/link"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// Cluster links (docs/geo-replication.md): two single-node clusters in
// one process, A the source and B the destination.

// linkCfg makes B's runner quick to notice links and leaders.
func linkCfg(c *Config) {
	c.Links = link.Config{Interval: 100 * time.Millisecond, FetchWait: 200 * time.Millisecond, Backoff: 20 * time.Millisecond}
}

// produceLinked produces n keyed records with headers and explicit
// timestamps to one partition of topic on url.
func produceLinked(t *testing.T, url, topic string, partition, from, n int) {
	t.Helper()
	var recs []map[string]any
	for i := from; i < from+n; i++ {
		recs = append(recs, map[string]any{"key": fmt.Sprintf("k%d", i%7), "value": fmt.Sprintf("%s-%d-%d", topic, partition, i),
			"partition": partition, "timestamp": 1_700_000_000_000 + int64(i),
			"headers": map[string]string{"h1": fmt.Sprint(i), "h2": "x", "trace": "t"}})
	}
	r := tu.Do(t, "POST", url+"/v1/topics/"+topic+"/records", map[string]any{"records": recs})
	if r.Status != 200 {
		t.Fatalf("produce to %s: %d %s", topic, r.Status, r.Body)
	}
}

// rawPartition reads a whole partition in the binary fetch format: equal
// answers of A and B mean equal offsets, keys, values, header order and
// timestamps, and equal log start and high watermark.
func rawPartition(t *testing.T, url, topic string, partition int) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=earliest&max_records=10000&max_bytes=16777216", url, topic, partition), nil)
	req.Header.Set("Accept", "application/vnd.weir.records")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("fetch %s/%d: %d %s", topic, partition, resp.StatusCode, b)
	}
	return b
}

type topicView struct {
	Partitions []struct {
		HighWatermark int64 `json:"high_watermark"`
		LogStart      int64 `json:"log_start_offset"`
	} `json:"partitions"`
	Mirror *struct {
		Link        string `json:"link"`
		SourceTopic string `json:"source_topic"`
		Promoted    bool   `json:"promoted"`
	} `json:"mirror"`
}

func topicOf(t *testing.T, url, topic string) (topicView, bool) {
	t.Helper()
	r, err := tu.TryDo("GET", url+"/v1/topics/"+topic, nil)
	if err != nil || r.Status != 200 {
		return topicView{}, false
	}
	var v topicView
	r.JSON(t, &v)
	return v, true
}

// waitMirrored waits until B's topic holds exactly A's partitions' bytes.
func waitMirrored(t *testing.T, a, b, topic string) {
	t.Helper()
	src, _ := topicOf(t, a, topic)
	tu.Eventually(t, 30*time.Second, "mirror of "+topic+" caught up", func() bool {
		v, ok := topicOf(t, b, topic)
		if !ok || len(v.Partitions) != len(src.Partitions) {
			return false
		}
		for p := range v.Partitions {
			if v.Partitions[p].HighWatermark != src.Partitions[p].HighWatermark {
				return false
			}
		}
		return true
	})
	for p := range src.Partitions {
		if !bytes.Equal(rawPartition(t, a, topic, p), rawPartition(t, b, topic, p)) {
			t.Fatalf("%s/%d differs between A and B", topic, p)
		}
	}
}

func groupOffsets(t *testing.T, url, group string) map[string]int64 {
	t.Helper()
	var raw struct {
		Offsets []struct {
			Topic     string `json:"topic"`
			Partition int    `json:"partition"`
			Offset    int64  `json:"offset"`
		} `json:"offsets"`
	}
	r := tu.Do(t, "GET", url+"/v1/groups/"+group+"/offsets", nil)
	if r.Status == 404 {
		return map[string]int64{}
	}
	r.JSON(t, &raw)
	m := map[string]int64{}
	for _, o := range raw.Offsets {
		m[fmt.Sprintf("%s/%d", o.Topic, o.Partition)] = o.Offset
	}
	return m
}

// TestLinkMirrorsTopicsGroupsAndPromote: a link mirrors the topics it
// names (same bytes: offsets, keys, headers, timestamps, log start),
// syncs the chosen groups' offsets without moving them backwards, refuses
// produces to a mirror over HTTP, WebSocket and Kafka until promotion,
// and a promoted topic takes produces after the mirrored offsets.
func TestLinkMirrorsTopicsGroupsAndPromote(t *testing.T) {
	a := startNode(t, t.TempDir())
	defer stop(t, a)
	b := startNode(t, t.TempDir(), linkCfg, func(c *Config) { c.KafkaAddr = "127.0.0.1:0" })
	defer stop(t, b)
	au, bu := a.URL(), b.URL()

	createTopic(t, au, "orders", 2)
	createTopic(t, au, "other", 1)
	for p := 0; p < 2; p++ {
		produceLinked(t, au, "orders", p, 0, 40+10*p)
	}
	produceLinked(t, au, "other", 0, 0, 5)
	// "old" starts above 0 on A: its mirror must start at the same offset.
	if r := tu.Do(t, "POST", au+"/v1/topics", map[string]any{"name": "old", "partitions": 1, "segment_bytes": 1024}); r.Status != 201 {
		t.Fatalf("create old: %d %s", r.Status, r.Body)
	}
	for i := 0; i < 10; i++ {
		produceLinked(t, au, "old", 0, i*10, 10)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lg, err := a.Host.Partition("old", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.TrimTo(ctx, 50); err != nil {
		t.Fatal(err)
	}
	if lg.LogStart() == 0 {
		t.Fatal("the trim deleted nothing: segments too large for the test")
	}
	commit := func(url, group string, offs ...any) {
		t.Helper()
		var list []map[string]any
		for i := 0; i < len(offs); i += 3 {
			list = append(list, map[string]any{"topic": offs[i], "partition": offs[i+1], "offset": offs[i+2]})
		}
		if r := tu.Do(t, "POST", url+"/v1/groups/"+group+"/offsets", map[string]any{"offsets": list}); r.Status/100 != 2 {
			t.Fatalf("commit %s: %d %s", group, r.Status, r.Body)
		}
	}
	commit(au, "billing", "orders", 0, 20, "orders", 1, 30)
	commit(au, "ignored", "orders", 0, 5)

	r := tu.Do(t, "POST", bu+"/v1/links", map[string]any{"name": "from-a", "source_url": au, "source_token": "secret",
		"topics": []string{"orders*", "old"}, "groups": []string{"billing", "nobody*"}})
	if r.Status != 201 {
		t.Fatalf("create link: %d %s", r.Status, r.Body)
	}
	if bytes.Contains(r.Body, []byte("secret")) {
		t.Fatalf("the answer shows the source token: %s", r.Body)
	}
	if r := tu.Do(t, "POST", bu+"/v1/links", map[string]any{"name": "from-a", "source_url": au, "topics": []string{"x"}}); r.ErrorCode() != "link_exists" {
		t.Fatalf("second create: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", bu+"/v1/links", map[string]any{"name": "bad", "source_url": "ftp://x", "topics": []string{"x"}}); r.Status != 400 {
		t.Fatalf("bad link: %d %s", r.Status, r.Body)
	}

	waitMirrored(t, au, bu, "orders")
	waitMirrored(t, au, bu, "old")
	if v, _ := topicOf(t, bu, "old"); v.Partitions[0].LogStart != lg.LogStart() {
		t.Fatalf("mirror of old starts at %d, the source at %d", v.Partitions[0].LogStart, lg.LogStart())
	}
	if v, _ := topicOf(t, bu, "orders"); v.Mirror == nil || v.Mirror.Link != "from-a" || v.Mirror.SourceTopic != "orders" || v.Mirror.Promoted {
		t.Fatalf("mirror member of orders: %+v", v.Mirror)
	}
	// The lag metrics of the partitions B pulls.
	tu.Eventually(t, 30*time.Second, "link lag metrics", func() bool {
		m := tu.Do(t, "GET", bu+"/metrics", nil).Body
		return bytes.Contains(m, []byte(`weir_link_lag{`)) && bytes.Contains(m, []byte(`weir_link_lag_time_seconds{`)) &&
			bytes.Contains(m, []byte(`link="from-a"`))
	})
	if _, ok := topicOf(t, bu, "other"); ok {
		t.Fatal("a topic the link does not name was mirrored")
	}
	// Records produced on A while the link runs follow.
	produceLinked(t, au, "orders", 1, 50, 25)
	waitMirrored(t, au, bu, "orders")

	// The mirror follows its source's growth; it cannot be grown itself.
	if r := tu.Do(t, "POST", bu+"/v1/topics/orders/partitions", map[string]any{"partitions": 3}); r.ErrorCode() != "mirror_topic" {
		t.Fatalf("growing the mirror: %d %s, want mirror_topic", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", au+"/v1/topics/orders/partitions", map[string]any{"partitions": 3}); r.Status != 200 {
		t.Fatalf("growing the source: %d %s", r.Status, r.Body)
	}
	produceLinked(t, au, "orders", 2, 0, 7)
	waitMirrored(t, au, bu, "orders")

	// Group offsets: synced for billing only.
	tu.Eventually(t, 30*time.Second, "billing offsets on B", func() bool {
		m := groupOffsets(t, bu, "billing")
		return m["orders/0"] == 20 && m["orders/1"] == 30
	})
	commit(au, "billing", "orders", 0, 10, "orders", 1, 35) // 0 moves back on A: B keeps 20
	tu.Eventually(t, 30*time.Second, "billing offsets on B", func() bool { return groupOffsets(t, bu, "billing")["orders/1"] == 35 })
	if m := groupOffsets(t, bu, "billing"); m["orders/0"] != 20 {
		t.Fatalf("a group offset moved backwards on B: %v", m)
	}
	if m := groupOffsets(t, bu, "ignored"); len(m) != 0 {
		t.Fatalf("a group the link does not name was synced: %v", m)
	}

	// Describe: per-partition lag, 0 now.
	var d struct {
		Name    string `json:"name"`
		Mirrors []struct {
			Topic      string `json:"topic"`
			LagRecords int64  `json:"lag_records"`
			Partitions []struct {
				Partition           int   `json:"partition"`
				SourceHighWatermark int64 `json:"source_high_watermark"`
				LagRecords          int64 `json:"lag_records"`
			} `json:"partitions"`
		} `json:"mirrors"`
		LagError string `json:"lag_error"`
	}
	r = tu.Do(t, "GET", bu+"/v1/links/from-a", nil)
	r.JSON(t, &d)
	if r.Status != 200 || len(d.Mirrors) != 2 || d.Mirrors[1].Topic != "orders" || len(d.Mirrors[1].Partitions) != 3 ||
		d.Mirrors[1].Partitions[1].SourceHighWatermark != 75 || d.Mirrors[1].LagRecords != 0 || d.LagError != "" {
		t.Fatalf("describe: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "GET", bu+"/v1/links", nil); r.Status != 200 || !bytes.Contains(r.Body, []byte(`"name":"from-a"`)) {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "GET", bu+"/v1/links/nope", nil); r.ErrorCode() != "link_not_found" {
		t.Fatalf("describe unknown: %d %s", r.Status, r.Body)
	}

	// Produce to the mirror: refused by every front door.
	r = tu.Do(t, "POST", bu+"/v1/topics/orders/records", map[string]any{"records": []map[string]any{{"value": "x"}}})
	if r.Status != 409 || r.ErrorCode() != "mirror_topic" {
		t.Fatalf("HTTP produce to a mirror: %d %s", r.Status, r.Body)
	}
	ws := dialWS(t, bu, "/v1/ws", nil)
	ws.send(map[string]any{"op": "produce", "id": "p1", "topic": "orders", "records": []map[string]any{{"value": "x"}}})
	if m, _ := ws.expect(0, "error", "p1"); m.Error == nil || m.Error.Code != "mirror_topic" {
		t.Fatalf("WebSocket produce to a mirror: %s", m.raw)
	}
	ws.close()
	kc := kafkaClient(t, b, kgo.RecordRetries(1))
	kerrOut := kc.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("x")}).FirstErr()
	if !errors.Is(kerrOut, kerr.PolicyViolation) {
		t.Fatalf("Kafka produce to a mirror: %v", kerrOut)
	}

	// Promote: orders becomes writable and continues A's offsets.
	if r := tu.Do(t, "POST", bu+"/v1/links/from-a/promote", map[string]any{"topics": []string{"other"}}); r.Status != 400 {
		t.Fatalf("promote of a topic that is no mirror: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", bu+"/v1/links/from-a/promote", map[string]any{"topics": []string{"orders"}}); r.Status != 200 {
		t.Fatalf("promote: %d %s", r.Status, r.Body)
	}
	r = tu.Do(t, "POST", bu+"/v1/topics/orders/records", map[string]any{"records": []map[string]any{{"value": "after", "partition": 1}}})
	var o offsetsResp
	r.JSON(t, &o)
	if r.Status != 200 || o.Offsets[0].Offset != 75 {
		t.Fatalf("produce after promote: %d %s", r.Status, r.Body)
	}
	if v, _ := topicOf(t, bu, "orders"); v.Mirror == nil || !v.Mirror.Promoted {
		t.Fatalf("mirror member after promote: %+v", v.Mirror)
	}
	// "old" is still a mirror; deleting the link detaches it.
	if r := tu.Do(t, "DELETE", bu+"/v1/links/from-a", nil); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", bu+"/v1/topics/old/records", map[string]any{"records": []map[string]any{{"value": "mine"}}}); r.Status != 200 {
		t.Fatalf("produce to a detached mirror: %d %s", r.Status, r.Body)
	}
}

// TestLinkResumesAfterRestart: B's node restarts while A keeps taking
// records; the mirror resumes where it was, with every record once and
// A's offsets.
func TestLinkResumesAfterRestart(t *testing.T) {
	a := startNode(t, t.TempDir())
	defer stop(t, a)
	dirB := t.TempDir()
	b := startNode(t, dirB, linkCfg)
	au := a.URL()
	createTopic(t, au, "events", 3)
	if r := tu.Do(t, "POST", b.URL()+"/v1/links", map[string]any{"name": "l", "source_url": au, "topics": []string{"events"}}); r.Status != 201 {
		t.Fatalf("create link: %d %s", r.Status, r.Body)
	}
	for i := 0; i < 10; i++ {
		produceLinked(t, au, "events", i%3, i*20, 20)
	}
	// Fence: B has some records of partition 0 before it stops.
	tu.Eventually(t, 30*time.Second, "first records on B", func() bool {
		v, ok := topicOf(t, b.URL(), "events")
		return ok && v.Partitions[0].HighWatermark > 0
	})
	stop(t, b)
	for i := 10; i < 30; i++ {
		produceLinked(t, au, "events", i%3, i*20, 20)
	}
	b = startNode(t, dirB, linkCfg)
	defer stop(t, b)
	waitMirrored(t, au, b.URL(), "events")
	v, _ := topicOf(t, b.URL(), "events")
	total := int64(0)
	for _, p := range v.Partitions {
		total += p.HighWatermark
	}
	if total != 600 {
		t.Fatalf("B holds %d records, A 600", total)
	}
}

// TestLinkSecuredClusters: only admins of B manage links; B pulls from a
// secured A with a link principal's token holding only describe and read
// rights; the token is never shown; a bad token surfaces as lag_error.
func TestLinkSecuredClusters(t *testing.T) {
	a := securedNode(t)
	defer stop(t, a)
	b := securedNode(t, linkCfg)
	defer stop(t, b)
	adminA := newSecClient(t, a.URL(), testAdminToken, nil)
	adminB := newSecClient(t, b.URL(), testAdminToken, nil)
	adminA.expect(201, "POST", "/v1/topics", map[string]any{"name": "sec", "partitions": 1})
	adminA.expect(200, "POST", "/v1/topics/sec/records", map[string]any{"records": []map[string]any{{"value": "1"}, {"value": "2"}}})
	adminA.expect(204, "POST", "/v1/groups/g1/offsets", map[string]any{"offsets": []map[string]any{{"topic": "sec", "partition": 0, "offset": 1}}})
	linker := createToken(t, adminA, "linker")
	addACL(t, adminA, "linker", auth.Topic, "*", auth.Literal, auth.Describe)
	addACL(t, adminA, "linker", auth.Topic, "sec", auth.Prefix, auth.Read)
	addACL(t, adminA, "linker", auth.Group, "*", auth.Literal, auth.Describe, auth.Read)

	user := createToken(t, adminB, "user")
	spec := map[string]any{"name": "from-a", "source_url": a.URL(), "source_token": linker, "topics": []string{"sec"}, "groups": []string{"g1"}}
	adminB.with(user).expect(403, "POST", "/v1/links", spec)
	adminB.with(user).expect(403, "GET", "/v1/links", nil)
	if r := adminB.expect(201, "POST", "/v1/links", spec); bytes.Contains(r.Body, []byte(linker)) {
		t.Fatalf("the answer shows the source token: %s", r.Body)
	}
	tu.Eventually(t, 30*time.Second, "mirror and group offsets on B", func() bool {
		r, err := adminB.try("GET", "/v1/topics/sec", nil)
		if err != nil || r.Status != 200 || !bytes.Contains(r.Body, []byte(`"high_watermark":2`)) {
			return false
		}
		r, err = adminB.try("GET", "/v1/groups/g1/offsets", nil)
		return err == nil && r.Status == 200 && bytes.Contains(r.Body, []byte(`"offset":1`))
	})
	if r := adminB.expect(200, "GET", "/v1/links", nil); bytes.Contains(r.Body, []byte(linker)) {
		t.Fatalf("the list shows the source token: %s", r.Body)
	}

	spec["name"], spec["source_token"] = "bad-token", "not-a-token"
	adminB.expect(201, "POST", "/v1/links", spec)
	var d struct {
		LagError string `json:"lag_error"`
	}
	adminB.expect(200, "GET", "/v1/links/bad-token", nil).JSON(t, &d)
	if d.LagError == "" {
		t.Fatal("a link whose source refuses its token shows no lag_error")
	}
}

// TestLinkLeaderChangeOnDestination: B is a 3-node cluster; the node
// leading mirror partition 0 stops while A takes more records, and the
// new leader's puller continues from the mirror's next offset: B's mirror
// ends equal to A's, every record once.
func TestLinkLeaderChangeOnDestination(t *testing.T) {
	a := startNode(t, t.TempDir())
	defer stop(t, a)
	c := startCluster(t, 3, linkCfg)
	au := a.URL()
	createTopic(t, au, "ev", 2)
	produceLinked(t, au, "ev", 0, 0, 50)
	produceLinked(t, au, "ev", 1, 0, 50)
	var dst *Server
	for _, s := range c.nodes {
		dst = s
		break
	}
	if r := tu.Do(t, "POST", dst.URL()+"/v1/links", map[string]any{"name": "l", "source_url": au, "topics": []string{"ev"}}); r.Status != 201 {
		t.Fatalf("create link: %d %s", r.Status, r.Body)
	}
	waitMirrored(t, au, dst.URL(), "ev")
	var leader uint64
	tu.Eventually(t, 30*time.Second, "a leader of ev/0 on B", func() bool {
		pi, err := dst.Broker.Store().PartitionInfo("ev", 0)
		leader = pi.Leader
		return err == nil && leader != 0
	})
	stop(t, c.nodes[leader])
	delete(c.nodes, leader)
	for _, s := range c.nodes {
		dst = s
	}
	for i := 0; i < 5; i++ {
		produceLinked(t, au, "ev", 0, 50+i*20, 20)
		produceLinked(t, au, "ev", 1, 50+i*20, 20)
	}
	for _, s := range c.nodes {
		waitMirrored(t, au, s.URL(), "ev")
	}
	c.nodes[leader] = c.start(leader, "") // back: it catches up as a replica
	if c.nodes[leader] == nil {
		t.FailNow()
	}
	waitMirrored(t, au, c.nodes[leader].URL(), "ev")
}

// TestLinkMirrorRefusesPipelineAndQueueWrites: on B, a pipeline whose
// output or dead-letter topic is a mirror, a subscription dead-lettering
// into one, and a redrive into one are refused with 409 mirror_topic
// naming the link; after the promote the pipeline is created and writes
// its outputs after the mirrored records.
func TestLinkMirrorRefusesPipelineAndQueueWrites(t *testing.T) {
	a := startNode(t, t.TempDir())
	defer stop(t, a)
	b := startNode(t, t.TempDir(), linkCfg)
	defer stop(t, b)
	au, bu := a.URL(), b.URL()
	createTopic(t, au, "orders", 1)
	produceLinked(t, au, "orders", 0, 0, 3)
	if r := tu.Do(t, "POST", bu+"/v1/links", map[string]any{"name": "from-a", "source_url": au, "topics": []string{"orders"}}); r.Status != 201 {
		t.Fatalf("create link: %d %s", r.Status, r.Body)
	}
	waitMirrored(t, au, bu, "orders")
	createTopic(t, bu, "src", 1)
	createTopic(t, bu, "dlq", 1)
	uploadModule(t, bu, "pass", "examples/passthrough")

	refused := func(what string, r *tu.Response) {
		t.Helper()
		if r.Status != 409 || r.ErrorCode() != "mirror_topic" || !bytes.Contains(r.Body, []byte(`link \"from-a\"`)) {
			t.Fatalf("%s: %d %s, want 409 mirror_topic naming the link", what, r.Status, r.Body)
		}
	}
	pipe := map[string]any{"name": "p", "module": "pass", "inputs": []string{"src"}, "outputs": []string{"orders"}}
	refused("pipeline into a mirror", tu.Do(t, "POST", bu+"/v1/pipelines", pipe))
	refused("pipeline dead-lettering into a mirror", tu.Do(t, "POST", bu+"/v1/pipelines", map[string]any{"name": "p2", "module": "pass",
		"inputs": []string{"src"}, "outputs": []string{"dlq"}, "on_error": map[string]any{"dead_letter_topic": "orders"}}))
	refused("subscription dead-lettering into a mirror", tu.Do(t, "POST", bu+"/v1/topics/src/subscriptions",
		map[string]any{"name": "s", "max_attempts": 1, "dead_letter_topic": "orders"}))
	refused("redrive into a mirror", tu.Do(t, "POST", bu+"/v1/topics/dlq/redrive", map[string]any{"to": "orders"}))
	if r := tu.Do(t, "GET", bu+"/v1/pipelines/p", nil); r.ErrorCode() != "pipeline_not_found" {
		t.Fatalf("a refused pipeline exists: %d %s", r.Status, r.Body)
	}

	if r := tu.Do(t, "POST", bu+"/v1/links/from-a/promote", map[string]any{"topics": []string{"orders"}}); r.Status != 200 {
		t.Fatalf("promote: %d %s", r.Status, r.Body)
	}
	createPipeline(t, bu, pipe)
	produce(t, bu, "src", map[string]any{"value": "from-b"})
	waitCaughtUp(t, bu, "p")
	got := readAll(t, bu, "orders")
	if len(got) != 4 || got[3].Offset != 3 || got[3].Value != "from-b" {
		t.Fatalf("orders on B after the promote: %+v", got)
	}
}
