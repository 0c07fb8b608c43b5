package gateway

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// Cluster endpoints (docs/cluster.md):
//
//	GET  /v1/cluster[?partitions=true]   nodes, health, shards, leaders, lagging replicas
//	POST /v1/cluster/join                {"node_id","raft_addr","http_addr"} (weir serve --join)
//	POST /v1/cluster/rebalance           spread replicas and leaders evenly
//	POST /v1/cluster/nodes/{id}/remove   move replicas off a node, then remove it
//	DELETE /v1/cluster/nodes/{id}        the same

// SetForwarder gives the gateway the node-to-node client it proxies fetches
// with (the same one the store forwards writes with). Call before Serve.
func (s *Server) SetForwarder(f *Forwarder) { s.fwd = f }

func (s *Server) cluster() (core.Cluster, bool) {
	c, ok := s.broker.Store().(core.Cluster)
	return c, ok
}

func (s *Server) routeCluster(ctx *fasthttp.RequestCtx, method string, seg []string) {
	c, ok := s.cluster()
	if !ok {
		writeError(ctx, errNotFound)
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	switch {
	case len(seg) == 0 && method == "GET":
		st, err := c.Status(rctx, ctx.QueryArgs().GetBool("partitions"))
		if err != nil {
			writeError(ctx, err)
			return
		}
		b, _ := json.Marshal(st)
		writeJSON(ctx, 200, append(b, '\n'))
	case len(seg) == 1 && seg[0] == "join" && method == "POST":
		var req core.JoinRequest
		if err := decodeJSON(ctx.PostBody(), &req); err != nil {
			writeError(ctx, err)
			return
		}
		if err := c.Join(rctx, req); err != nil {
			writeError(ctx, err)
			return
		}
		b, _ := json.Marshal(map[string]any{"node_id": req.NodeID, "joined": true})
		writeJSON(ctx, 200, append(b, '\n'))
	case len(seg) == 1 && seg[0] == "rebalance" && method == "POST":
		n, err := c.Rebalance(rctx)
		if err != nil {
			writeError(ctx, err)
			return
		}
		writeJSON(ctx, 202, []byte(`{"moves":`+strconv.Itoa(n)+"}\n"))
	case len(seg) >= 2 && seg[0] == "nodes" && (len(seg) == 3 && seg[2] == "remove" && method == "POST" || len(seg) == 2 && method == "DELETE"):
		id, err := strconv.ParseUint(seg[1], 10, 64)
		if err != nil || id == 0 {
			writeError(ctx, core.Invalidf("node id must be a number ≥ 1, not %q", seg[1]))
			return
		}
		if err := c.RemoveNode(rctx, id); err != nil {
			writeError(ctx, err)
			return
		}
		writeJSON(ctx, 202, []byte(`{"node":`+strconv.FormatUint(id, 10)+`,"state":"draining"}`+"\n"))
	case len(seg) <= 3:
		writeError(ctx, errMethodNotAllowed)
	default:
		writeError(ctx, errNotFound)
	}
}

// proxyFetch sends a fetch to another node when this one has no replica of
// the partition, or its replica has not applied the offset asked for yet
// (the client may have seen it at the leader). It reports whether it
// answered the request.
func (s *Server) proxyFetch(ctx *fasthttp.RequestCtx, req *core.FetchRequest) bool {
	c, ok := s.cluster()
	if !ok || s.fwd == nil || hops(ctx) > 0 {
		return false
	}
	off := int64(-1)
	if req.From == core.AtOffset {
		off = req.Offset
	}
	route, err := c.FetchRoute(req.Topic, req.Partition, off)
	if err != nil {
		writeError(ctx, err)
		return true
	}
	if route == nil {
		return false
	}
	deadline := time.Now().Add(min(req.Wait, s.broker.Config().MaxWait) + s.cfg.ProduceTimeout)
	if s.fwd.Proxy(ctx, route.Addr, route.Hops, deadline) {
		return true
	}
	// The node did not answer: serve what this node can (its replica, or
	// a read through another node).
	return false
}
