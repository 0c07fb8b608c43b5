package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// Three nodes: Metadata names every node and the Raft leaders; an
// idempotent producer goes on through the kill of a partition leader, and
// a consumer reads every acknowledged record exactly once.
func TestKafkaClusterLeaderKill(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) { cfg.KafkaAddr = "127.0.0.1:0" })
	u := func(id uint64) string { return c.nodes[id].URL() }
	if r := tu.Do(t, "POST", u(1)+"/v1/topics", map[string]any{"name": "kc", "partitions": 3, "replication_factor": 3}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 60*time.Second, "settled", func() bool { return tu.Settled(tu.ClusterStatus(t, u(1))) })
	seeds := []string{c.nodes[1].KafkaAddr(), c.nodes[2].KafkaAddr(), c.nodes[3].KafkaAddr()}
	ctx := kctx(t)
	adm := kadm.NewClient(kafkaClient(t, c.nodes[2]))
	tu.Eventually(t, 30*time.Second, "Kafka metadata names 3 brokers and the Raft leaders", func() bool {
		md, err := adm.Metadata(ctx, "kc")
		if err != nil || len(md.Brokers) != 3 {
			return false
		}
		for p, pd := range md.Topics["kc"].Partitions {
			if uint64(pd.Leader) != tu.LeaderOf(t, u(1), "kc", int(p)) {
				return false
			}
		}
		return true
	})

	pr, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("kc"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequestTimeoutOverhead(10*time.Second), kgo.RecordDeliveryTimeout(90*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	produce := func(from, n int) {
		for i := from; i < from+n; i++ {
			pr.Produce(ctx, &kgo.Record{Partition: int32(i % 3), Value: []byte(fmt.Sprint(i))}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Errorf("produce %d: %v", i, err)
				}
			})
		}
		if err := pr.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 150)
	victim := tu.LeaderOf(t, u(1), "kc", 0)
	stop(t, c.nodes[victim])
	delete(c.nodes, victim)
	var alive uint64
	for id := range c.nodes {
		alive = id
	}
	produce(150, 150)
	if t.Failed() {
		t.FailNow()
	}

	cl := kafkaClient(t, c.nodes[alive], kgo.ConsumeTopics("kc"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]int{}
	n := 0
	for n < 300 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		for _, r := range fs.Records() {
			seen[string(r.Value)]++
			n++
		}
	}
	if n != 300 || len(seen) != 300 {
		t.Fatalf("read %d records, %d distinct, want 300 (killed node %d)", n, len(seen), victim)
	}
}

// A produce or a fetch that reaches a node Metadata does not name as the
// partition's leader is answered NOT_LEADER_OR_FOLLOWER (the client's
// metadata is stale and it refreshes); the leader answers both.
func TestKafkaNotLeaderOrFollower(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) { cfg.KafkaAddr = "127.0.0.1:0" })
	u := func(id uint64) string { return c.nodes[id].URL() }
	if r := tu.Do(t, "POST", u(1)+"/v1/topics", map[string]any{"name": "nl", "partitions": 1, "replication_factor": 3}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 60*time.Second, "settled", func() bool { return tu.Settled(tu.ClusterStatus(t, u(1))) })
	if r := tu.Do(t, "POST", u(1)+"/v1/topics/nl/records", map[string]any{"records": []map[string]any{{"value": "v"}}}); r.Status != 200 {
		t.Fatalf("produce: %d %s", r.Status, r.Body)
	}
	ctx := kctx(t)
	cl := kafkaClient(t, c.nodes[1])
	var leader int32
	tu.Eventually(t, 30*time.Second, "Kafka metadata naming the Raft leader of nl/0", func() bool {
		md, err := kadm.NewClient(cl).Metadata(ctx, "nl")
		if err != nil || len(md.Brokers) != 3 {
			return false
		}
		leader = md.Topics["nl"].Partitions[0].Leader
		return leader > 0 && uint64(leader) == tu.LeaderOf(t, u(1), "nl", 0)
	})
	for id := int32(1); id <= 3; id++ {
		fetch := kmsg.NewPtrFetchRequest()
		fetch.MaxWaitMillis, fetch.MaxBytes = 0, 1<<20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "nl"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.PartitionMaxBytes, fp.LogStartOffset = 0, 1<<20, -1
		ft.Partitions = append(ft.Partitions, fp)
		fetch.Topics = append(fetch.Topics, ft)
		fr, err := fetch.RequestWith(ctx, cl.Broker(int(id)))
		if err != nil {
			t.Fatalf("fetch at node %d: %v", id, err)
		}
		produce := kmsg.NewPtrProduceRequest()
		produce.Acks, produce.TimeoutMillis = -1, 10000
		pt := kmsg.NewProduceRequestTopic()
		pt.Topic = "nl"
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Records = batchBytes(-1, 0, fmt.Sprint("at-", id))
		pt.Partitions = append(pt.Partitions, pp)
		produce.Topics = append(produce.Topics, pt)
		pr, err := produce.RequestWith(ctx, cl.Broker(int(id)))
		if err != nil {
			t.Fatalf("produce at node %d: %v", id, err)
		}
		fe, pe := fr.Topics[0].Partitions[0].ErrorCode, pr.Topics[0].Partitions[0].ErrorCode
		if id == leader {
			if fe != 0 || pe != 0 || len(fr.Topics[0].Partitions[0].RecordBatches) == 0 {
				t.Errorf("the leader (node %d): fetch %v with %d bytes, produce %v; want records and no error",
					id, kerr.ErrorForCode(fe), len(fr.Topics[0].Partitions[0].RecordBatches), kerr.ErrorForCode(pe))
			}
			continue
		}
		if fe != kerr.NotLeaderForPartition.Code || pe != kerr.NotLeaderForPartition.Code {
			t.Errorf("node %d (leader %d): fetch %v, produce %v; want NOT_LEADER_OR_FOLLOWER for both", id, leader, kerr.ErrorForCode(fe), kerr.ErrorForCode(pe))
		}
	}
}
