package storetest

import (
	"fmt"
	"sort"
	"testing"

	"github.com/weir-broker/weir/core"
)

func testTopics(t *testing.T, st core.Store) {
	ctx := ctxFor(t)
	cfg := core.TopicConfig{Name: name(t, "b"), Partitions: 3, ReplicationFactor: 1, RetentionMs: 60000, RetentionBytes: 1 << 20}
	info, err := st.CreateTopic(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A store may fill in what the config left 0 with its effective values
	// (raftlog: the segment size and local retention of tiered storage);
	// what was given comes back as given.
	got0 := info.TopicConfig
	got0.SegmentBytes, got0.LocalRetentionMs, got0.LocalRetentionBytes = 0, 0, 0
	if got0 != cfg || info.CreatedAt <= 0 {
		t.Fatalf("created %+v, want %+v with a creation time", info, cfg)
	}
	_, err = st.CreateTopic(ctx, cfg)
	wantErr(t, err, core.ErrTopicExists, "create twice")
	got, err := st.Topic(cfg.Name)
	if err != nil || got != info {
		t.Fatalf("Topic = %+v, %v; want %+v", got, err, info)
	}
	other := create(t, st, "a", 1)
	var names []string
	for _, ti := range st.Topics() {
		if ti.Name == cfg.Name || ti.Name == other {
			names = append(names, ti.Name)
		}
	}
	eqSlice(t, "Topics (sorted by name)", names, []string{other, cfg.Name})
	if !sort.SliceIsSorted(st.Topics(), func(i, j int) bool { return st.Topics()[i].Name < st.Topics()[j].Name }) {
		t.Fatal("Topics is not sorted by name")
	}
	for _, p := range []int{-1, 3} {
		_, err = st.Partition(cfg.Name, p)
		wantErr(t, err, core.ErrPartitionNotFound, "Partition out of range")
		_, err = st.PartitionInfo(cfg.Name, p)
		wantErr(t, err, core.ErrPartitionNotFound, "PartitionInfo out of range")
	}
	pi, err := st.PartitionInfo(cfg.Name, 2)
	if err != nil || pi.Partition != 2 || len(pi.Replicas) != 1 || pi.HighWatermark != 0 || pi.LogStart != 0 {
		t.Fatalf("PartitionInfo = %+v, %v", pi, err)
	}
	missing := name(t, "missing")
	_, err = st.Topic(missing)
	wantErr(t, err, core.ErrTopicNotFound, "Topic of a missing topic")
	_, err = st.Partition(missing, 0)
	wantErr(t, err, core.ErrTopicNotFound, "Partition of a missing topic")
	_, err = st.PartitionInfo(missing, 0)
	wantErr(t, err, core.ErrTopicNotFound, "PartitionInfo of a missing topic")
	wantErr(t, st.DeleteTopic(ctx, missing), core.ErrTopicNotFound, "delete a missing topic")
	if err := st.DeleteTopic(ctx, cfg.Name); err != nil {
		t.Fatal(err)
	}
	_, err = st.Topic(cfg.Name)
	wantErr(t, err, core.ErrTopicNotFound, "Topic after delete")
	wantErr(t, st.DeleteTopic(ctx, cfg.Name), core.ErrTopicNotFound, "delete twice")
	if !st.Ready() || st.NodeCount() < 1 {
		t.Fatalf("Ready %v, NodeCount %d", st.Ready(), st.NodeCount())
	}
}

// testAddPartitions: a topic grows to a new partition count; the new
// partitions are placed, start empty and take appends; the old keep their
// records; a count not above the current one is refused.
func testAddPartitions(t *testing.T, st core.Store) {
	ctx := ctxFor(t)
	topic := create(t, st, "", 2)
	appendOK(t, partition(t, st, topic, 1), &core.AppendBatch{Records: recs("a", "b")})
	info, err := st.AddPartitions(ctx, topic, 5)
	if err != nil || info.Partitions != 5 || info.Name != topic {
		t.Fatalf("AddPartitions to 5 = %+v, %v", info, err)
	}
	if got, err := st.Topic(topic); err != nil || got.Partitions != 5 || got.CreatedAt != info.CreatedAt {
		t.Fatalf("Topic after growth = %+v, %v; want 5 partitions, created at %d", got, err, info.CreatedAt)
	}
	for p := 2; p < 5; p++ {
		pi, err := st.PartitionInfo(topic, p)
		if err != nil || pi.Partition != p || len(pi.Replicas) != 1 || pi.HighWatermark != 0 {
			t.Fatalf("PartitionInfo of new partition %d = %+v, %v", p, pi, err)
		}
		if res := appendOK(t, partition(t, st, topic, p), &core.AppendBatch{Records: recs("n")}); res.BaseOffset != 0 {
			t.Fatalf("first append to new partition %d at %d, want 0", p, res.BaseOffset)
		}
	}
	if hw := partition(t, st, topic, 1).HighWatermark(); hw != 2 {
		t.Fatalf("partition 1 after growth: high watermark %d, want 2", hw)
	}
	for _, n := range []int{5, 3, 0, -1} {
		_, err := st.AddPartitions(ctx, topic, n)
		wantErr(t, err, core.ErrBadRequest, fmt.Sprintf("AddPartitions to %d of 5", n))
	}
	_, err = st.Partition(topic, 5)
	wantErr(t, err, core.ErrPartitionNotFound, "Partition past the grown count")
	_, err = st.AddPartitions(ctx, name(t, "missing"), 3)
	wantErr(t, err, core.ErrTopicNotFound, "AddPartitions of a missing topic")
}

// testBadTopics: a store refuses what it cannot place (the broker fills
// defaults before; a store must still never accept, or crash on, these).
func testBadTopics(t *testing.T, st core.Store) {
	ctx := ctxFor(t)
	for _, c := range []struct {
		what   string
		parts  int
		factor int
	}{
		{"no partitions", 0, 1},
		{"negative partitions", -1, 1},
		{"no replicas", 1, 0},
		{"more replicas than nodes", 1, st.NodeCount() + 1},
	} {
		_, err := st.CreateTopic(ctx, core.TopicConfig{Name: name(t, "bad"), Partitions: c.parts, ReplicationFactor: c.factor})
		wantErr(t, err, core.ErrBadRequest, c.what)
	}
	_, err := st.Topic(name(t, "bad"))
	wantErr(t, err, core.ErrTopicNotFound, "a refused topic")
	create(t, st, "good", 1) // the store still works
}

func testCatalog(t *testing.T, st core.Store) {
	ctx := ctxFor(t)
	tbl := name(t, "")
	put := func(key, v string, cond core.CatalogCond) bool {
		t.Helper()
		ok, err := st.CatalogPut(ctx, tbl, key, []byte(v), cond)
		if err != nil {
			t.Fatalf("put %s=%s: %v", key, v, err)
		}
		return ok
	}
	if !put("k", `{"gen": 1}`, core.CatalogCond{IfAbsent: true}) {
		t.Fatal("IfAbsent put of a new key failed")
	}
	if put("k", `{"gen":2}`, core.CatalogCond{IfAbsent: true}) {
		t.Fatal("IfAbsent put over an existing key succeeded")
	}
	if put("k", `{"gen":2}`, core.CatalogCond{IfEqual: []byte(`{"gen":5}`)}) {
		t.Fatal("IfEqual put with a stale value succeeded")
	}
	if put("absent", `{}`, core.CatalogCond{IfEqual: []byte(`{}`)}) {
		t.Fatal("IfEqual put of an absent key succeeded")
	}
	if v, ok := st.CatalogGet(tbl, "k"); !ok || string(v) != `{"gen":1}` {
		t.Fatalf("get = %s %v; values are stored as compact JSON", v, ok)
	}
	if !put("k", `{"gen":2}`, core.CatalogCond{IfEqual: []byte(`{ "gen" : 1 }`)}) {
		t.Fatal("IfEqual put with the current value (other whitespace) failed")
	}
	put("j", `[1, 2]`, core.CatalogCond{})
	if !put("j", `"x"`, core.CatalogCond{}) {
		t.Fatal("unconditional put failed")
	}
	_, err := st.CatalogPut(ctx, tbl, "bad", []byte(`not json`), core.CatalogCond{})
	wantErr(t, err, core.ErrBadRequest, "a non-JSON value")
	list := st.CatalogList(tbl)
	if len(list) != 2 || string(list["k"]) != `{"gen":2}` || string(list["j"]) != `"x"` {
		t.Fatalf("list = %q", list)
	}
	if l := st.CatalogList(name(t, "empty")); l == nil || len(l) != 0 {
		t.Fatalf("list of an unknown table = %v, want an empty map", l)
	}
	del := func(key string, cond core.CatalogCond) bool {
		t.Helper()
		ok, err := st.CatalogDelete(ctx, tbl, key, cond)
		if err != nil {
			t.Fatalf("delete %s: %v", key, err)
		}
		return ok
	}
	if del("k", core.CatalogCond{IfEqual: []byte(`{"gen":1}`)}) {
		t.Fatal("IfEqual delete with a stale value succeeded")
	}
	if !del("k", core.CatalogCond{IfEqual: []byte(`{"gen": 2}`)}) || !del("j", core.CatalogCond{}) {
		t.Fatal("delete failed")
	}
	if del("j", core.CatalogCond{}) {
		t.Fatal("delete of an absent key succeeded")
	}
	if _, ok := st.CatalogGet(tbl, "k"); ok || len(st.CatalogList(tbl)) != 0 {
		t.Fatal("deleted keys are still there")
	}
	if err := st.CatalogSync(ctx); err != nil {
		t.Fatalf("CatalogSync: %v", err)
	}
}

func testCatalogChanged(t *testing.T, st core.Store) {
	ctx := ctxFor(t)
	ch := st.CatalogChanged()
	if _, err := st.CatalogPut(ctx, name(t, ""), "k", []byte(`1`), core.CatalogCond{}); err != nil {
		t.Fatal(err)
	}
	closed(t, ch, "CatalogChanged after a put")
	ch = st.CatalogChanged()
	create(t, st, "", 1)
	closed(t, ch, "CatalogChanged after a topic was created")
	ch = st.CatalogChanged()
	if _, err := st.CatalogDelete(ctx, name(t, ""), "k", core.CatalogCond{}); err != nil {
		t.Fatal(err)
	}
	closed(t, ch, "CatalogChanged after a delete")
}

func testGroupOffsets(t *testing.T, st core.Store) {
	ctx := ctxFor(t)
	a, b := create(t, st, "a", 2), create(t, st, "b", 1)
	g := name(t, "")
	err := st.CommitOffsets(ctx, g, []core.GroupOffset{{Topic: b, Partition: 0, Offset: 7}, {Topic: a, Partition: 1, Offset: 3}, {Topic: a, Partition: 0, Offset: 5}})
	if err != nil {
		t.Fatal(err)
	}
	want := []core.GroupOffset{{Topic: a, Partition: 0, Offset: 5}, {Topic: a, Partition: 1, Offset: 3}, {Topic: b, Partition: 0, Offset: 7}}
	check := func(want []core.GroupOffset) {
		t.Helper()
		got := st.GroupOffsets(g)
		if len(got) != len(want) {
			t.Fatalf("GroupOffsets = %+v, want %+v", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("GroupOffsets = %+v, want %+v (sorted by topic and partition)", got, want)
			}
		}
	}
	check(want)
	// All or nothing: one unknown topic fails the whole commit.
	err = st.CommitOffsets(ctx, g, []core.GroupOffset{{Topic: a, Partition: 0, Offset: 9}, {Topic: name(t, "missing"), Partition: 0, Offset: 1}})
	wantErr(t, err, core.ErrTopicNotFound, "a commit naming a missing topic")
	check(want)
	if err := st.CommitOffsets(ctx, g, []core.GroupOffset{{Topic: a, Partition: 0, Offset: 2}}); err != nil {
		t.Fatal(err)
	}
	want[0].Offset = 2 // offsets may move back: the broker decides
	check(want)
	if len(st.GroupOffsets(name(t, "other"))) != 0 {
		t.Fatal("an unknown group has offsets")
	}
	if err := st.DeleteTopic(ctx, a); err != nil {
		t.Fatal(err)
	}
	check(want[2:])
}

func testDeletedTopic(t *testing.T, st core.Store) {
	ctx := ctxFor(t)
	topic := create(t, st, "", 1)
	pl := partition(t, st, topic, 0)
	appendOK(t, pl, &core.AppendBatch{Records: recs("a")})
	if err := st.DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	_, err := pl.Append(ctx, &core.AppendBatch{Timestamp: 1, Records: recs("b")})
	wantErr(t, err, core.ErrTopicNotFound, "append through a handle on a deleted topic")
	_, err = pl.ApplyTxn(ctx, &core.StateTxn{Ops: []core.StateOp{{Key: "k", Value: []byte("v")}}})
	wantErr(t, err, core.ErrTopicNotFound, "txn through a handle on a deleted topic")
	// A new topic of the same name starts empty.
	create(t, st, "", 1)
	fresh := partition(t, st, topic, 0)
	eq(t, "high watermark of the re-created topic", fresh.HighWatermark(), 0)
	if _, ok := fresh.StateGet("k"); ok {
		t.Fatal("the re-created topic has the old topic's state")
	}
}
