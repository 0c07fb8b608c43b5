package gateway

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// Cluster endpoints (docs/cluster.md):
//
//	GET  /v1/cluster[?partitions=true]   nodes, health, shards, leaders, lagging replicas
//	POST /v1/cluster/join                {"node_id","raft_addr","http_addr"} (weir serve --join)
//	POST /v1/cluster/rebalance           spread replicas and leaders evenly
//	POST /v1/cluster/nodes/{id}/remove   move replicas off a node, then remove it
//	DELETE /v1/cluster/nodes/{id}        the same

// NodeSecretHeader carries the cluster secret on node-to-node calls
// (security.go authenticates other nodes by it).
const NodeSecretHeader = auth.NodeSecretHeader

// NodeProxy sends a client's request on to another node and copies the
// answer back. internal/peer's Forwarder implements it, with the
// connections, TLS and cluster secret of node-to-node calls; the gateway
// knows nothing else of them (node-to-node calls are served by a handler
// mounted on /v1/internal/ with Handle).
type NodeProxy interface {
	// Hops is how many nodes the request has crossed: 0 for a client's
	// request. A proxied request is served where it arrives.
	Hops(ctx *fasthttp.RequestCtx) int
	// Proxy sends the request to the node at addr, marked as having
	// crossed hops nodes, waiting until deadline. It reports false when
	// the node could not be reached (nothing was written to ctx then).
	Proxy(ctx *fasthttp.RequestCtx, addr string, hops int, deadline time.Time) bool
}

// SetProxy gives the gateway the client it proxies fetches with to a node
// that holds the partition (the node-to-node client the store forwards
// writes with). Call before Serve.
func (s *Server) SetProxy(p NodeProxy) { s.proxy = p }

func (s *Server) cluster() (core.Cluster, bool) {
	return s.cfg.Cluster, s.cfg.Cluster != nil
}

// clusterReq is a cluster call; all need a right on the cluster resource.
type clusterReq struct {
	Cluster string `json:"-" need:"cluster:describe" doc:"kafka-cluster"`
}

func (r *clusterReq) parse(*call) error { r.Cluster = auth.ClusterName; return nil }

type clusterAlterReq struct {
	Cluster string `json:"-" need:"cluster:alter" doc:"kafka-cluster"`
}

func (r *clusterAlterReq) parse(*call) error { r.Cluster = auth.ClusterName; return nil }

// clusterOr answers 404 on a node that is not part of a cluster store.
func (s *Server) clusterOr(c *call) (core.Cluster, bool) {
	cl, ok := s.cluster()
	if !ok {
		writeError(c.ctx, errNotFound)
	}
	return cl, ok
}

func (s *Server) clusterStatus(c *call, _ *clusterReq) {
	cl, ok := s.clusterOr(c)
	if !ok {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	st, err := cl.Status(rctx, c.ctx.QueryArgs().GetBool("partitions"))
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	b, _ := json.Marshal(st)
	writeJSON(c.ctx, 200, append(b, '\n'))
}

type clusterJoinReq struct {
	clusterAlterReq `json:"-"`
	core.JoinRequest
}

func (s *Server) clusterJoin(c *call, r *clusterJoinReq) {
	cl, ok := s.clusterOr(c)
	if !ok {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := cl.Join(rctx, r.JoinRequest); err != nil {
		writeError(c.ctx, err)
		return
	}
	b, _ := json.Marshal(map[string]any{"node_id": r.NodeID, "joined": true})
	writeJSON(c.ctx, 200, append(b, '\n'))
}

func (s *Server) clusterRebalance(c *call, _ *clusterAlterReq) {
	cl, ok := s.clusterOr(c)
	if !ok {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	n, err := cl.Rebalance(rctx)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeJSON(c.ctx, 202, []byte(`{"moves":`+strconv.Itoa(n)+"}\n"))
}

type clusterRemoveReq struct {
	clusterAlterReq `json:"-"`
	ID              string `path:"id" json:"-"`
	id              uint64
}

func (r *clusterRemoveReq) parse(c *call) error {
	r.clusterAlterReq.parse(c)
	id, err := strconv.ParseUint(r.ID, 10, 64)
	if err != nil || id == 0 {
		return core.Invalidf("node id must be a number ≥ 1, not %q", r.ID)
	}
	r.id = id
	return nil
}

func (s *Server) clusterRemove(c *call, r *clusterRemoveReq) {
	cl, ok := s.clusterOr(c)
	if !ok {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := cl.RemoveNode(rctx, r.id); err != nil {
		writeError(c.ctx, err)
		return
	}
	writeJSON(c.ctx, 202, []byte(`{"node":`+strconv.FormatUint(r.id, 10)+`,"state":"draining"}`+"\n"))
}

// proxyFetch sends a fetch to another node when this one has no replica of
// the partition, or its replica has not applied the offset asked for yet
// (the client may have seen it at the leader). It reports whether it
// answered the request.
func (s *Server) proxyFetch(ctx *fasthttp.RequestCtx, req *core.FetchRequest) bool {
	c, ok := s.cluster()
	if !ok || s.proxy == nil || s.proxy.Hops(ctx) > 0 {
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
	if s.proxy.Proxy(ctx, route.Addr, route.Hops, deadline) {
		return true
	}
	// The node did not answer: serve what this node can (its replica, or
	// a read through another node).
	return false
}
