// Package kafka serves Weir over the Kafka wire protocol, so that Kafka
// clients (the Java client, librdkafka/kcat, franz-go) produce to and
// consume from Weir topics.
//
// Every request and response is encoded by franz-go's pkg/kmsg; this
// package owns the framing (a bounded, incrementally read size-prefixed
// frame), version negotiation (ApiVersions), SASL, and the mapping of each
// API onto core: Produce and Fetch onto core.Broker, the classic consumer
// group protocol onto an in-memory coordinator whose committed offsets are
// Weir's group offsets, and the admin APIs onto topic management.
//
// Use:
//
//	srv, err := kafka.New(kafka.Config{Broker: b, Addr: "127.0.0.1:0"})
//	...
//	go srv.Run(ctx)          // or srv.Serve(ln)
//	<-srv.Ready(); srv.Addr() // the bound address
//	srv.Close()              // waits for every connection goroutine
//
// docs/kafka.md lists the supported APIs and versions and what differs
// from Kafka.
package kafka
