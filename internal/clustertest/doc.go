// Package clustertest holds Weir's fault tests on real `weir serve`
// processes: kill -9 of a partition leader under load, SIGSTOP/SIGCONT of a
// leader, and a whole-cluster kill -9 and restart (`make test`), plus a
// longer randomized run of the same checks (`make chaos`, build tag chaos).
// Every test checks the same invariants: every acknowledged record is
// present exactly once at its acknowledged offset, offsets are dense and in
// order, and every replica holds the same records at the same offsets.
// The in-process network-partition test is in internal/server (it needs the
// fault-injecting transport of internal/faultnet).
package clustertest
