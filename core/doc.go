// Package core is Weir's domain: records, topics and partitions, produce and
// fetch, consumer groups, queue subscriptions, retention, Wasm pipelines and
// their telemetry. It does no replication, no networking and no Wasm of its
// own: it defines the interfaces it needs and the other packages implement
// them.
//
// # The seams
//
// Store is the replicated state the domain runs on: topic metadata, group
// offsets, a Catalog of small JSON documents with compare-and-set, and
// Partition, which returns a PartitionLog for any partition of the cluster.
// A PartitionLog appends an AppendBatch as one replicated entry, reads by
// offset, wakes long-polls through Changed, and carries a PartitionState: a
// replicated key/value store changed by StateTxn transactions, atomically
// with records when asked. raftlog.Host implements Store (and Cluster, the
// multi-node view); it reaches other nodes through a Forwarder, which
// internal/peer implements over HTTP. core/memstore implements Store in
// memory for tests, and core/storetest is the conformance suite both pass.
// Runtime and Processor are the Wasm seam, implemented by plugins.Host;
// AccessChecker is implemented by core/auth.
//
// # The services
//
// Broker is the service every front door calls: Produce (partition choice
// by explicit partition, key hash or round robin; one append per partition
// per request, small appends that wait for a partition's proposal merged
// into the next one (group commit, BrokerConfig.ProposalsInFlight);
// idempotence by producer id and sequence), ProduceNoAck,
// Fetch with long-poll, group offsets and lag, topic management, and
// retention (RunRetention trims, on the leader, what RetentionPoint allows).
// On top of it, each with a Config whose zero value is useful; every
// constructor (NewBroker, NewGroupCoordinator, NewQueues, NewPipelines)
// calls its Config's Validate and returns the error, constructing nothing:
//
//   - GroupCoordinator: Kafka-style consumer groups, one document per group
//     in the catalog, changed by compare-and-set from any node;
//   - Queues: subscriptions with leases, acks, nacks, retries with Backoff
//     and dead-letter topics, kept in the partitions' replicated state;
//   - Pipelines: Wasm modules between topics, run on the leader of each
//     input partition, exactly-once through an outbox in the input
//     partition's state;
//   - Links: cluster links and the mirror marks of their topics in the
//     catalog (link.go); produces, pipeline outputs, dead letters and
//     redrive refuse a mirror topic until it is promoted (ErrMirrorTopic),
//     and MirrorLog is the conditional append internal/link mirrors
//     through;
//   - Telemetry: spans through the OpenTelemetry API, counts and durations
//     handed to a Metrics hook (internal/telemetry implements it with the
//     SDK's instruments; NoMetrics is the default), safe on a nil receiver.
//
// # Use
//
// internal/server wires a node; reduced to core, it is:
//
//	host, err := raftlog.New(raftlog.Config{NodeID: 1, DataDir: dir, RaftAddr: addr})
//	broker, err := core.NewBroker(host, core.BrokerConfig{Telemetry: tel.Core()})
//	go broker.RunRetention(ctx)
//	groups, err := core.NewGroupCoordinator(broker, core.GroupConfig{NodeID: 1})
//	go groups.Run(ctx)
//	queues, err := core.NewQueues(broker, core.QueueConfig{})
//	go queues.Run(ctx) // maintenance; stops the partition workers when ctx ends
//	pipes, err := core.NewPipelines(broker, wasmHost, core.PipelinesConfig{})
//	go pipes.Run(ctx)
//
//	res, err := broker.Produce(ctx, &core.ProduceRequest{Topic: "orders",
//		Records: []core.ProduceRecord{{Record: core.Record{Value: []byte("hi")}, Partition: -1}}})
//	page, err := broker.Fetch(ctx, &core.FetchRequest{Topic: "orders", Partition: 0,
//		From: core.AtOffset, Offset: 0, Wait: time.Second})
//
// Every service is safe for concurrent use. Constructors start nothing; the
// loops (RunRetention, Run of GroupCoordinator, Queues and Pipelines)
// return when their context ends, Queues.Run and Pipelines.Run once the
// workers they own have stopped. An acks=none produce (ProduceNoAck) runs
// on the caller's lifetime context; WaitNoAck waits for those in flight.
//
// # Errors
//
// Callers branch on sentinels (ErrTopicNotFound, ErrNotLeader,
// ErrUnavailable, ErrBadRequest, ...) with errors.Is, and on typed errors
// that carry data (*OffsetRangeError, *SequenceError, *NotLeaderError,
// *StaleGenerationError) with errors.As. Per-item outcomes are values
// (ReceiptResult.Err), not one error. gateway/apierr maps them all to API
// codes and HTTP statuses in one table.
//
// core imports only the standard library and the OpenTelemetry API; it
// never imports raftlog, plugins or gateway. docs/architecture.md draws
// the whole node.
package core
