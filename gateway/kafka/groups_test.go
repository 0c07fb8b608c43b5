package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A group's generations keep increasing when its coordinator moves: two
// listeners on one catalog stand for two nodes that coordinate the group
// in turn (membership is each node's memory). Without reserved
// generation numbers each would count from 1, and a client could see one
// generation number twice with different assignments.
func TestGroupGenerationsSurviveCoordinatorMoves(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, b := testBroker(t)
	nodeA, nodeB := serveTest(t, b), serveTest(t, b)

	var gens []int32
	// join adds a member to group g through cl and, once it is the only
	// member of the new generation, makes it leave (the group is Empty).
	join := func(cl *kgo.Client) {
		t.Helper()
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.ProtocolType = "g", "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10000, 10000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = "range"
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode == kerr.MemberIDRequired.Code {
			req.MemberID = resp.MemberID
			if resp, err = req.RequestWith(ctx, cl); err != nil {
				t.Fatal(err)
			}
		}
		if resp.ErrorCode != 0 {
			t.Fatalf("JoinGroup: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		gens = append(gens, resp.Generation)
		leave := kmsg.NewPtrLeaveGroupRequest()
		leave.Group, leave.MemberID = "g", resp.MemberID
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID = resp.MemberID
		leave.Members = append(leave.Members, lm)
		lr, err := leave.RequestWith(ctx, cl)
		if err != nil || lr.ErrorCode != 0 {
			t.Fatalf("LeaveGroup: %v %v", err, kerr.ErrorForCode(lr.ErrorCode))
		}
	}
	join(nodeA)
	join(nodeA)
	join(nodeB) // the coordinator moved to B
	join(nodeA) // and back to A, whose copy of the group is stale
	join(nodeB)
	for i := 1; i < len(gens); i++ {
		if gens[i] <= gens[i-1] {
			t.Fatalf("generations %v: not increasing", gens)
		}
	}
	if gens[0] < 1 {
		t.Fatalf("generations %v: the first is below 1", gens)
	}
}
