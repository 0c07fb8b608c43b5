// Package peer is the node-to-node protocol of a Weir cluster: the client
// a node forwards partition calls with (Forwarder, which implements
// core.Forwarder for raftlog) and the server side that answers them
// (Handler, serving /v1/internal/*).
//
// The loop: a client's request reaches the gateway of any node, core hands
// it to the store (raftlog); a partition this node does not lead is reached
// through core.Forwarder, i.e. a Forwarder's HTTP call to
// /v1/internal/{append,txn,trim,read,state,node} on the leader, whose
// Handler runs it on its own replica through core.Cluster.
//
// Calls travel over the HTTP listener clients use, so they share its TLS;
// with security on, the gateway admits /v1/internal/* only from other
// nodes (the cluster secret in auth.NodeSecretHeader) and mounts Handler
// there: the gateway knows the mount point and its access class, nothing
// of the calls. Errors are answered and decoded with the public API's one
// table (gateway/apierr), so a domain error crosses nodes as itself.
//
// Every call carries HopsHeader; a node forwards a call onwards only while
// the count is below the store's limit, so calls never loop. A call also
// carries its caller's remaining time (deadlineHeader) and, with tracing
// on, its traceparent.
//
// Wiring (internal/server):
//
//	fwd := peer.NewForwarder(peer.ForwarderConfig{TLS: tc, Secret: secret})
//	raftCfg.Forwarder = fwd            // the store forwards through it
//	gw.SetProxy(fwd)                   // proxied fetches (gateway.NodeProxy)
//	h, err := peer.NewHandler(peer.HandlerConfig{Cluster: host, Telemetry: tel})
//	gw.Handle(gateway.Route{Path: peer.Prefix, Handler: h.Serve})
//	…
//	h.Close()                          // after the gateway's Shutdown
//
// The Forwarder also proxies a client's fetch as is to a node that holds
// the partition (Proxy): it is the same connection pool, TLS and secret,
// so it lives here; the gateway sees it through its own one-method-pair
// interface, gateway.NodeProxy.
package peer
