// Package raftlog is Weir's replicated log: it implements core.Store and
// core.Cluster on one Dragonboat v4 NodeHost per process, with one Raft
// shard per topic partition and one metadata shard for the cluster.
//
// # Shards and state machines
//
// Host owns the NodeHost and everything on it:
//
//   - the metadata shard (shard 1, an in-memory state machine snapshotted as
//     JSON) holds nodes and their addresses, topics with each partition's
//     placement (PartitionMeta: shard id, replicas, preferred leader), group
//     offsets and the catalog tables behind core.Catalog. Placement is
//     decided inside this state machine, so it is a pure function of the
//     metadata (placement.go);
//   - each partition shard is an on-disk state machine whose state is a
//     directory of CRC-framed segment files (raftlog/internal/segment), a
//     checkpoint, the idempotent-producer table and the partition's
//     key/value state (core.PartitionState). One entry is one producer
//     batch, one trim, one core.StateTxn, a tiered-storage step, or a
//     mirror append or start of a cluster link (mirror.go: applied only
//     at the expected next offset, core.MirrorLog).
//
// Partition is the handle on a replica hosted here: Append proposes one
// entry and returns once a quorum committed it and this node applied it;
// ProposeTxn queues a transaction without waiting, so callers can pipeline
// them. Host.Partition returns a routed core.PartitionLog for any partition
// of the cluster (route.go): reads come from a caught-up local replica or
// another node's; writes go to the leader, here or through the
// core.Forwarder in Config.Forwarder, carrying a hop count so a call is
// forwarded at most twice and never loops. Host.ForwardedPartition serves
// the calls other nodes forward here (internal/peer's Handler calls it).
//
// # What runs
//
// New starts the NodeHost, the metadata replica and four goroutines that
// Close stops and waits for: syncMetaLoop (waits until the local metadata
// has caught up), registerLoop (writes this node's Raft, HTTP and Kafka
// addresses into the metadata), probeLoop (pings the other nodes twice a
// second through the Forwarder) and reconcileLoop. The reconcile loop runs
// on a tick, on every leader or membership change and on every metadata
// change: it starts and stops the partition replicas the metadata places
// here, and runs the controller (controller.go) for what this node leads:
// partition membership moves (learner, promotion, removal, one change at a
// time), leader transfers to preferred nodes, and, on the metadata leader,
// the metadata shard's own membership and node removals. Those steps run as
// bounded tasks that Close also waits for.
//
// # Use
//
// internal/server builds a Host and gives it to core; the gateway and the
// rest of the domain never see raftlog:
//
//	fwd := peer.NewForwarder(peer.ForwarderConfig{TLS: tc, Secret: secret})
//	host, err := raftlog.New(raftlog.Config{
//		NodeID: 1, DataDir: "/var/lib/weir", RaftAddr: "10.0.0.1:7100",
//		HTTPAddr: "10.0.0.1:8080", Peers: peers, Forwarder: fwd,
//	})
//	if err != nil { ... }
//	defer host.Close()
//	broker, err := core.NewBroker(host, core.BrokerConfig{}) // host is the core.Store
//	ph, err := peer.NewHandler(peer.HandlerConfig{Cluster: host}) // and the core.Cluster
//
// Config's zero values are defaults except NodeID, DataDir and RaftAddr;
// Validate reports what cannot work. Peers is the same map on every initial
// node; a node added later starts with Join after a running node admitted
// it (core.Cluster.Join). Host.Ready reports when the node can take writes.
//
// Acknowledged means in a quorum's fsynced Raft log: segments are written
// without fsync and Sync (before every snapshot) makes them durable, so a
// restart replays exactly what a torn tail lost. Config.FS carries every
// file of the node, Dragonboat's and Weir's, so a test can lose every
// un-fsynced write of a whole cluster at once (powerloss_test.go).
// docs/architecture.md and docs/RATIONALE.md explain the choices.
package raftlog
