package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/weir-broker/weir/core"
)

// A partition whose leader this node does not know (an election, or the
// node just restarted) is answered LEADER_NOT_AVAILABLE with leader -1, as
// Kafka does, so the client asks again; it is not named as led by this
// node, whose replica may be behind. The others name their leader.
func TestMetadataUnknownLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, b := testBroker(t)
	if _, err := b.CreateTopic(ctx, core.TopicConfig{Name: "m", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	log, err := st.Log("m", 1)
	if err != nil {
		t.Fatal(err)
	}
	log.SetLeader(false)

	cl := serveTest(t, b)

	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("m")
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
		t.Fatalf("metadata: %+v", resp.Topics)
	}
	for _, p := range resp.Topics[0].Partitions {
		switch p.Partition {
		case 0:
			if p.ErrorCode != 0 || p.Leader != 1 {
				t.Errorf("partition 0 (led here): error %v, leader %d; want none and 1", kerr.ErrorForCode(p.ErrorCode), p.Leader)
			}
		case 1:
			if p.ErrorCode != kerr.LeaderNotAvailable.Code || p.Leader != -1 || len(p.Replicas) == 0 {
				t.Errorf("partition 1 (no leader known): error %v, leader %d, replicas %v; want LEADER_NOT_AVAILABLE, -1 and its replicas",
					kerr.ErrorForCode(p.ErrorCode), p.Leader, p.Replicas)
			}
		}
	}
}
