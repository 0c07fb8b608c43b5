package main

import (
	"strings"
	"testing"
)

// A --raft-tick outside 1ms–1s, or not whole milliseconds, is refused
// before anything starts.
func TestServeRefusesABadRaftTick(t *testing.T) {
	for _, tick := range []string{"0s", "500us", "1500us", "2s", "-10ms"} {
		_, err := runWeir(t, "", "serve", "--data-dir", t.TempDir(), "--raft-tick", tick, "--http-addr", "127.0.0.1:0", "--kafka-addr", "")
		if err == nil || !strings.Contains(err.Error(), "--raft-tick") {
			t.Errorf("--raft-tick %s: %v, want a --raft-tick error", tick, err)
		}
	}
}
