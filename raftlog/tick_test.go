package raftlog

import "testing"

// The heartbeat and election timeout follow the tick in time (50 ms and
// 1 s), with at least 1 and 3 ticks and an election above two heartbeats
// (Dragonboat refuses less); single-replica shards elect after 100 ms.
func TestTickDerivesHeartbeatAndElection(t *testing.T) {
	for _, c := range []struct {
		tick, heartbeat, election, single uint64
	}{
		{tick: 0, heartbeat: 5, election: 100, single: 10}, // the default 10 ms tick
		{tick: 10, heartbeat: 5, election: 100, single: 10},
		{tick: 100, heartbeat: 1, election: 10, single: 3},
		{tick: 250, heartbeat: 1, election: 4, single: 3},
		{tick: 400, heartbeat: 1, election: 3, single: 3},
		{tick: 1000, heartbeat: 1, election: 3, single: 3},
	} {
		cfg := Config{RTTMillisecond: c.tick}
		cfg.setDefaults()
		if cfg.HeartbeatRTT != c.heartbeat || cfg.ElectionRTT != c.election {
			t.Errorf("tick %d ms: heartbeat %d and election %d ticks, want %d and %d", c.tick, cfg.HeartbeatRTT, cfg.ElectionRTT, c.heartbeat, c.election)
		}
		if cfg.ElectionRTT <= 2*cfg.HeartbeatRTT {
			t.Errorf("tick %d ms: election %d ticks is not above two heartbeats of %d", c.tick, cfg.ElectionRTT, cfg.HeartbeatRTT)
		}
		h := &Host{cfg: cfg}
		if got := h.shardConfig(1, 1, 1); got.ElectionRTT != c.single || got.HeartbeatRTT != 1 {
			t.Errorf("tick %d ms: a single replica elects after %d ticks (heartbeat %d), want %d (1)", c.tick, got.ElectionRTT, got.HeartbeatRTT, c.single)
		}
		if got := h.shardConfig(1, 1, 3); got.ElectionRTT != c.election || got.HeartbeatRTT != c.heartbeat || got.Quiesce {
			t.Errorf("tick %d ms: three replicas get election %d, heartbeat %d, quiesce %v", c.tick, got.ElectionRTT, got.HeartbeatRTT, got.Quiesce)
		}
	}
	cfg := Config{NodeID: 1, DataDir: "d", RaftAddr: "a", MetaVoters: 3, RTTMillisecond: 1001}
	if err := cfg.Validate(); err == nil {
		t.Error("a tick above 1 s was accepted")
	}
}
