package raftlog

import (
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/storetest"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestConformance runs core/storetest's suite against one single-node host
// (the suite names everything after its subtests, so they share it), with
// small segments so that retention sees several.
func TestConformance(t *testing.T) {
	h, err := New(Config{NodeID: 1, DataDir: t.TempDir(), RaftAddr: tu.FreeAddr(t), HTTPAddr: "127.0.0.1:1", SegmentBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tu.Eventually(t, 20*time.Second, "metadata ready", h.Ready)
	storetest.Run(t, func(*testing.T) core.Store { return h })
}
