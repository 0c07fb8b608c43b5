// Package gateway is Weir's HTTP and WebSocket front door: the /v1 API on
// fasthttp, WebSocket streaming with gorilla/websocket on connections
// hijacked from fasthttp, authentication and ACLs through core/auth, and
// the dashboard's static files. It talks to the domain only: a
// *core.Broker, and the core services mounted on it. It never imports
// raftlog or plugins.
//
// # One route table
//
// Every route is a row of one table (routes.go); route.go says how a row is
// served, and docs/api.md and docs/security.md are generated from the same
// rows (RoutesMarkdown), so docs and code cannot drift. A row names a
// method, a path pattern and a typed request. The gateway decodes each
// request once into that type (fields tagged `path:"t"` take the pattern's
// {t}, `query:"q"` a query argument, the rest the JSON body, strictly),
// authorizes the needs read from the decoded value (every field tagged
// `need:"type:operation"`), and runs the handler with the same value. A new
// endpoint is a request type, a handler and a row:
//
//	type deleteTopicReq struct {
//		Topic string `path:"t" json:"-" need:"topic:delete"`
//	}
//
//	func (s *Server) deleteTopic(c *call, r *deleteTopicReq) {
//		rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
//		defer cancel()
//		if err := s.broker.DeleteTopic(rctx, r.Topic); err != nil {
//			writeError(c.ctx, err)
//			return
//		}
//		c.ctx.SetStatusCode(204)
//	}
//
//	// in routes.go:
//	op("DELETE", "/v1/topics/{t}", (*Server).deleteTopic, audited(), doc("delete a topic")),
//
// Options set who may call a row besides its needs: public(), adminOnly(),
// nodeOnly() (the cluster secret: /v1/internal/*), every(type, op) for list
// endpoints; audited() records an admin action in the audit log;
// meter(quota.Produce) or meter(quota.Fetch) charges the produced bytes of
// the decoded request, or the bytes answered, to the caller's quota
// besides the one request every row charges (quota.go, docs/quotas.md;
// Config.Quotas is the same core/quota limiter the Kafka listener uses).
// raw rows
// read the request themselves (static files, /metrics, the WebSocket
// upgrade). Errors are written with the one table of gateway/apierr, which
// maps core's sentinels and typed errors to API codes and HTTP statuses.
//
// # Wiring
//
// New makes a Server over a broker; before Serve, the node's assembly
// (internal/server) mounts what lives elsewhere:
//
//	gw, err := gateway.New(broker, gateway.Config{Groups: groups, Auth: authSvc, Quotas: quotas, Cluster: host})
//	gw.SetProxy(fwd)                 // NodeProxy: fetches proxied to a node holding the partition
//	gw.Handle(gateway.Route{Path: peer.Prefix, Handler: ph.Serve}) // node-only mount point
//	gw.SetQueues(queues)             // subscription endpoints
//	gw.MountPipelines(pipes)         // module and pipeline endpoints
//	gw.SetStatsSource(src)           // node-level parts of GET /v1/stats
//	go gw.Serve(ln)
//	...
//	gw.Shutdown(ctx)                 // in-flight requests finish, sockets close
//
// Handle only fills a mount point the table already declares (/metrics,
// /sdk/*, /demo, /v1/internal/*): the table, not the caller, decides who
// may call it.
//
// # What runs
//
// Serve runs fasthttp's accept loop and one goroutine per connection. A
// WebSocket (ws.go, docs/websocket.md) is owned by the gateway's hub and
// lives on the hijacked connection's goroutine, which reads frames; beside
// it run a writer goroutine while frames are queued, one goroutine per
// produce or commit in flight (WSConfig.MaxInflight at most), and per
// subscription one pump per partition it reads (fed from the feeds: a
// shared per-partition cache of encoded records), plus for a group member a
// watcher that keeps its heartbeat alive and moves pumps when the
// assignment changes; a queue subscription runs one delivery loop instead
// of pumps. Shutdown cancels the gateway's
// base context, which ends every socket and its goroutines, and waits for
// them until ctx ends. Without Config.Groups, New makes a GroupCoordinator
// and runs it until Shutdown.
//
// # Locks
//
// No lock is held across I/O, a wait for another goroutine, or a send that
// can block: state is snapshotted under the lock and acted on outside it.
// A feed (ws_feed.go) reads the log outside its lock, so a slow or remote
// read delays only the subscribers waiting for those records, and readers
// of one offset share one read. A subscription's lock (wsSub.mu) guards
// its pumps and generation only; reassigning a group member detaches the
// pumps under it, then stops them, reads start offsets and queues the
// assigned frame without it. A subscription's goroutines queue frames with
// the subscription's context, so unsubscribing never waits for a stalled
// client. Locks are not nested, except wsHub.mu around wsConn.mu (stats).
//
// Config's zero values are defaults; Validate reports negative limits, and
// New calls it and returns its error. Server is safe for concurrent use once serving.
package gateway
