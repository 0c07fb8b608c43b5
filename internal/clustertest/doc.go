// Package clustertest holds Weir's fault tests on real `weir serve`
// processes: kill -9 of a partition leader under load, SIGSTOP/SIGCONT of a
// leader, a whole-cluster kill -9 and restart, and kill -9 of a leader under
// a franz-go idempotent producer on the Kafka listener (`make test`), plus a
// longer randomized run (`make chaos`, build tag chaos).
// Every test checks the same invariants: every acknowledged record is
// present exactly once at its acknowledged offset, offsets are dense and in
// order, and every replica holds the same records at the same offsets.
// `make chaos` adds network partitions between the processes (each node in
// its own network namespace, links through internal/netfault proxies; root
// only) and records every operation into an internal/history history that
// its Jepsen-style checker judges (docs/guarantees.md, "Analysis"). The
// in-process network-partition tests are in internal/server (the
// fault-injecting Raft transport of internal/faultnet).
package clustertest
