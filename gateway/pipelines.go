package gateway

import (
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// MountPipelines serves the module and pipeline API (API.md "Modules and
// pipelines") from p.
func (s *Server) MountPipelines(p *core.Pipelines) {
	s.pipes = p // for GET /v1/stats
	h := &pipelineAPI{s: s, p: p}
	s.Handle(Route{Path: "/v1/modules/", Handler: h.modules})
	s.Handle(Route{Path: "/v1/pipelines/", Handler: h.pipelines})
}

type pipelineAPI struct {
	s *Server
	p *core.Pipelines
}

func pathRest(ctx *fasthttp.RequestCtx, prefix string) []string {
	rest := strings.Trim(strings.TrimPrefix(string(ctx.Path()), prefix), "/")
	if rest == "" {
		return nil
	}
	return strings.Split(rest, "/")
}

type moduleVersionJSON struct {
	Name      string `json:"name"`
	Version   int    `json:"version"`
	SHA256    string `json:"sha256"`
	Size      int    `json:"size"`
	CreatedAt int64  `json:"created_at"`
}

func moduleJSON(m core.Module) map[string]any {
	vs := make([]moduleVersionJSON, len(m.Versions))
	for i, v := range m.Versions {
		vs[i] = moduleVersionJSON{m.Name, v.Version, v.SHA256, v.Size, v.CreatedAt}
	}
	return map[string]any{"name": m.Name, "latest": m.Latest().Version, "versions": vs}
}

func (a *pipelineAPI) modules(ctx *fasthttp.RequestCtx) {
	seg := pathRest(ctx, "/v1/modules")
	method := string(ctx.Method())
	switch {
	case len(seg) == 0 && method == "GET":
		out := []map[string]any{}
		for _, m := range a.p.Modules() {
			out = append(out, moduleJSON(m))
		}
		writeValue(ctx, 200, map[string]any{"modules": out})
	case len(seg) == 1 && method == "PUT":
		body := ctx.PostBody()
		if len(body) == 0 {
			writeError(ctx, &core.ModuleInvalidError{Reason: "empty body: send the .wasm bytes"})
			return
		}
		rctx, cancel := a.s.requestContext(2 * time.Minute)
		defer cancel()
		_, v, err := a.p.UploadModule(rctx, seg[0], body)
		if err != nil {
			writeError(ctx, err)
			return
		}
		writeValue(ctx, 201, moduleVersionJSON{seg[0], v.Version, v.SHA256, v.Size, v.CreatedAt})
	case len(seg) == 1 && method == "GET":
		m, err := a.p.Module(seg[0])
		if err != nil {
			writeError(ctx, err)
			return
		}
		writeValue(ctx, 200, moduleJSON(m))
	case len(seg) == 1 && method == "DELETE":
		rctx, cancel := a.s.requestContext(a.s.cfg.ProduceTimeout)
		defer cancel()
		if err := a.p.DeleteModule(rctx, seg[0]); err != nil {
			writeError(ctx, err)
			return
		}
		ctx.SetStatusCode(204)
	case len(seg) <= 1:
		writeError(ctx, errMethodNotAllowed)
	default:
		writeError(ctx, errNotFound)
	}
}

type pipelineReq struct {
	Name      string               `json:"name"`
	Module    string               `json:"module"`
	Version   int                  `json:"version"`
	Inputs    []string             `json:"inputs"`
	Outputs   []string             `json:"outputs"`
	Config    map[string]string    `json:"config"`
	Guarantee string               `json:"guarantee"`
	OnError   core.OnError         `json:"on_error"`
	Limits    core.ProcessorLimits `json:"limits"`
	BatchSize int                  `json:"batch_size"`
	From      string               `json:"from"`
}

func (a *pipelineAPI) pipelines(ctx *fasthttp.RequestCtx) {
	seg := pathRest(ctx, "/v1/pipelines")
	method := string(ctx.Method())
	switch {
	case len(seg) == 0 && method == "POST":
		var req pipelineReq
		if err := decodeJSON(ctx.PostBody(), &req); err != nil {
			writeError(ctx, err)
			return
		}
		rctx, cancel := a.s.requestContext(a.s.cfg.ProduceTimeout)
		defer cancel()
		spec, err := a.p.Create(rctx, core.PipelineSpec{
			Name: req.Name, Module: req.Module, Version: req.Version, Inputs: req.Inputs, Outputs: req.Outputs,
			Config: req.Config, Guarantee: req.Guarantee, OnError: req.OnError, Limits: req.Limits,
			BatchSize: req.BatchSize, From: req.From,
			Principal: a.s.creator(ctx), // runs with its creator's rights (docs/security.md)
		})
		if err != nil {
			writeError(ctx, err)
			return
		}
		writeValue(ctx, 201, spec)
	case len(seg) == 0 && method == "GET":
		out := []core.PipelineSpec{}
		out = append(out, a.p.List()...)
		writeValue(ctx, 200, map[string]any{"pipelines": out})
	case len(seg) == 1 && method == "GET":
		spec, parts, err := a.p.Status(seg[0])
		if err != nil {
			writeError(ctx, err)
			return
		}
		var tot core.PartitionStatus
		for _, p := range parts {
			tot.Lag += p.Lag
			tot.Processed += p.Processed
			tot.Failed += p.Failed
			tot.DeadLettered += p.DeadLettered
			tot.Emitted += p.Emitted
		}
		state := "running"
		if spec.Paused {
			state = "paused"
		}
		writeValue(ctx, 200, map[string]any{
			"pipeline": spec, "state": state, "partitions": parts,
			"lag": tot.Lag, "processed": tot.Processed, "failed": tot.Failed,
			"dead_lettered": tot.DeadLettered, "emitted": tot.Emitted,
		})
	case len(seg) == 1 && method == "DELETE":
		rctx, cancel := a.s.requestContext(a.s.cfg.ProduceTimeout)
		defer cancel()
		if err := a.p.Delete(rctx, seg[0]); err != nil {
			writeError(ctx, err)
			return
		}
		ctx.SetStatusCode(204)
	case len(seg) == 2 && method == "POST" && (seg[1] == "pause" || seg[1] == "resume"):
		rctx, cancel := a.s.requestContext(a.s.cfg.ProduceTimeout)
		defer cancel()
		spec, err := a.p.SetPaused(rctx, seg[0], seg[1] == "pause")
		if err != nil {
			writeError(ctx, err)
			return
		}
		writeValue(ctx, 200, spec)
	case len(seg) <= 2:
		writeError(ctx, errMethodNotAllowed)
	default:
		writeError(ctx, errNotFound)
	}
}
