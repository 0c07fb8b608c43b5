// Package client is the Go client of Weir's /v1 HTTP and WebSocket API:
// what the weir command line uses, importing nothing of the broker.
//
//	c, err := client.New("http://127.0.0.1:8080", client.WithToken(os.Getenv("WEIR_TOKEN")))
//	_, err = c.CreateTopic(ctx, client.TopicConfig{Name: "orders", Partitions: 3})
//	res, err := c.Produce(ctx, "orders", []client.Record{{Key: []byte("k1"), Value: []byte("hello")}})
//	// res.Offsets[0] is where the record landed, once a quorum committed it.
//	f, err := c.Fetch(ctx, "orders", res.Offsets[0].Partition, client.FetchOptions{Wait: 10 * time.Second})
//
// # What it covers
//
//   - Topics, produce (one offset per record; ProduceNoAck for acks=none)
//     and fetch with long-poll, in the binary framing
//     application/vnd.weir.records by default (WithJSON for JSON bodies).
//   - Idempotent producers (Client.Producer): a producer id and sequence
//     numbers make retries harmless, so their calls are retried.
//   - Consumer groups over HTTP (JoinGroup → Member: Poll, Commit,
//     Heartbeat, Leave), committed offsets, group descriptions.
//   - Queue subscriptions: create, Receive (leases), Ack, Nack, Extend,
//     Redrive.
//   - WebSocket (Client.Dial → Conn): streaming subscriptions with credits,
//     group members pushed their partitions, queue receivers, produce.
//   - Admin: modules, pipelines, principals and tokens, ACLs, quotas,
//     cluster status.
//   - Transport: TLS (WithTLSConfig, mTLS), bearer tokens (WithToken),
//     trace context propagation (WithPropagator, e.g. OpenTelemetry's).
//
// # Errors
//
// An error answer is an *Error with the HTTP status, the API code and its
// data; errors.Is(err, client.CodeTopicNotFound) branches on the code. A
// produce over several partitions that commits on some and fails on others
// returns a *ProduceError: the committed partitions with their offsets and
// the failed ones with their codes, and Failed — the records to send
// again, so a retry does not duplicate what is stored.
//
// # Retries
//
// A 429 (rate_limited; the broker refused before doing anything) is
// retried for every call; a 503 (unavailable, not_leader: the work may
// have begun) and transport errors only for idempotent calls: reads,
// deletes, commits, acks, heartbeats and an idempotent Producer's
// Produce. A plain Produce, a create, a join, a receive or a nack is not
// retried on 503. Waits grow from 100 ms to 5 s with jitter
// (WithBackoff) and honour Retry-After; at most 5 retries (WithRetries),
// and never past the call's context.
//
// A Client is safe for concurrent use; make one per cluster address.
package client
