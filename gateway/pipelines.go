package gateway

import (
	"strconv"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
)

// MountPipelines serves the module and pipeline API (docs/api.md "Modules
// and pipelines") from p; without it those routes answer 404.
func (s *Server) MountPipelines(p *core.Pipelines) { s.pipes = p }

// pipesOn answers 404 when pipelines are not mounted.
func (s *Server) pipesOn(c *call) bool {
	if s.pipes == nil {
		writeError(c.ctx, errNotFound)
		return false
	}
	return true
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

func (s *Server) listModules(c *call, _ *listReq) {
	if !s.pipesOn(c) {
		return
	}
	out := []map[string]any{}
	for _, m := range s.pipes.Modules() {
		out = append(out, moduleJSON(m))
	}
	writeValue(c.ctx, 200, map[string]any{"modules": out})
}

type moduleReq struct {
	Name string `path:"m" json:"-" need:"module:describe"`
}

// uploadModuleReq is PUT /v1/modules/{m}: the body is the .wasm bytes.
type uploadModuleReq struct {
	Name string `path:"m" json:"-" need:"module:create"`
	wasm []byte
}

func (r *uploadModuleReq) decodeBody(_ *call, body []byte) error {
	r.wasm = body
	return nil
}

func (s *Server) uploadModule(c *call, r *uploadModuleReq) {
	if !s.pipesOn(c) {
		return
	}
	if len(r.wasm) == 0 {
		writeError(c.ctx, &core.ModuleInvalidError{Reason: "empty body: send the .wasm bytes"})
		return
	}
	rctx, cancel := s.requestContext(2 * time.Minute)
	defer cancel()
	_, v, err := s.pipes.UploadModule(rctx, r.Name, r.wasm)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, 201, moduleVersionJSON{r.Name, v.Version, v.SHA256, v.Size, v.CreatedAt})
}

func (s *Server) describeModule(c *call, r *moduleReq) {
	if !s.pipesOn(c) {
		return
	}
	m, err := s.pipes.Module(r.Name)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, 200, moduleJSON(m))
}

type deleteModuleReq struct {
	Name string `path:"m" json:"-" need:"module:delete"`
}

func (s *Server) deleteModule(c *call, r *deleteModuleReq) {
	if !s.pipesOn(c) {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.pipes.DeleteModule(rctx, r.Name); err != nil {
		writeError(c.ctx, err)
		return
	}
	c.ctx.SetStatusCode(204)
}

// createPipelineReq is POST /v1/pipelines. The pipeline runs with its
// creator's rights; creating it needs read on its module and inputs and
// write on its outputs and dead-letter topic (default "<name>.dlq").
type createPipelineReq struct {
	Name      string               `json:"name" need:"pipeline:create"`
	Module    string               `json:"module" need:"module:read"`
	Version   int                  `json:"version"`
	Inputs    []string             `json:"inputs" need:"topic:read"`
	Outputs   []string             `json:"outputs" need:"topic:write"`
	Config    map[string]string    `json:"config"`
	Guarantee string               `json:"guarantee"`
	OnError   core.OnError         `json:"on_error"`
	Limits    core.ProcessorLimits `json:"limits"`
	BatchSize int                  `json:"batch_size"`
	From      string               `json:"from"`
	// TickIntervalMs: how often an idle input partition ticks the module.
	TickIntervalMs int64 `json:"tick_interval_ms"`
	// Resume and Reset say what to do with a deleted pipeline's leftover
	// position and state (core.CreateOptions).
	Resume bool   `json:"resume"`
	Reset  bool   `json:"reset"`
	DLT    string `json:"-" need:"topic:write" doc:"<body.on_error.dead_letter_topic> or {name}.dlq"`
}

func (r *createPipelineReq) parse(*call) error {
	r.DLT = r.OnError.DeadLetterTopic
	if r.DLT == "" && r.Name != "" {
		r.DLT = r.Name + ".dlq"
	}
	return nil
}

func (s *Server) createPipeline(c *call, req *createPipelineReq) {
	if !s.pipesOn(c) {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	spec, err := s.pipes.CreateWith(rctx, core.PipelineSpec{
		Name: req.Name, Module: req.Module, Version: req.Version, Inputs: req.Inputs, Outputs: req.Outputs,
		Config: req.Config, Guarantee: req.Guarantee, OnError: req.OnError, Limits: req.Limits,
		BatchSize: req.BatchSize, From: req.From, TickIntervalMs: req.TickIntervalMs,
		Principal: s.creator(c.ctx), // runs with its creator's rights (docs/security.md)
	}, core.CreateOptions{Resume: req.Resume, Reset: req.Reset})
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, 201, spec)
}

func (s *Server) listPipelines(c *call, _ *listReq) {
	if !s.pipesOn(c) {
		return
	}
	out := []core.PipelineSpec{}
	out = append(out, s.pipes.List()...)
	writeValue(c.ctx, 200, map[string]any{"pipelines": out})
}

type pipelineReq struct {
	Name string `path:"p" json:"-" need:"pipeline:describe"`
}

// describePipeline shows a pipeline's progress; the lag and counts of an
// input the caller may not read are left out.
func (s *Server) describePipeline(c *call, r *pipelineReq) {
	if !s.pipesOn(c) {
		return
	}
	spec, all, err := s.pipes.Status(r.Name)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	parts := all[:0:0]
	for _, p := range all {
		if c.may(topicRT, p.Topic, auth.Read) {
			parts = append(parts, p)
		}
	}
	var tot core.PartitionStatus
	for _, p := range parts {
		tot.Lag += p.Lag
		tot.Processed += p.Processed
		tot.Failed += p.Failed
		tot.DeadLettered += p.DeadLettered
		tot.Emitted += p.Emitted
	}
	writeValue(c.ctx, 200, map[string]any{
		"pipeline": spec, "state": spec.State(), "partitions": parts,
		"lag": tot.Lag, "processed": tot.Processed, "failed": tot.Failed,
		"dead_lettered": tot.DeadLettered, "emitted": tot.Emitted,
	})
}

type alterPipelineReq struct {
	Name string `path:"p" json:"-" need:"pipeline:alter"`
}

// upgradePipelineReq is PATCH /v1/pipelines/{p}: a new module (version,
// config, limits, batch size) under a running pipeline, which keeps its
// positions, state and principal (core.Pipelines.Upgrade). It needs alter
// on the pipeline and read on the new module; the handler also checks, on
// the stored definition, what create checked: read on the inputs, write on
// the outputs and the dead-letter topic.
type upgradePipelineReq struct {
	Name      string                `path:"p" json:"-" need:"pipeline:alter"`
	Module    string                `json:"module" need:"module:read"`
	Version   int                   `json:"version"`
	Config    map[string]string     `json:"config"`
	Limits    *core.ProcessorLimits `json:"limits"`
	BatchSize int                   `json:"batch_size"`
	// TickIntervalMs replaces the tick interval when not 0.
	TickIntervalMs int64 `json:"tick_interval_ms"`
}

func (s *Server) upgradePipeline(c *call, r *upgradePipelineReq) {
	if !s.pipesOn(c) {
		return
	}
	cur, err := s.pipes.Get(r.Name)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	var needs []need
	for _, t := range cur.Inputs {
		needs = append(needs, need{rt: topicRT, op: auth.Read, name: t})
	}
	for _, t := range append(append([]string(nil), cur.Outputs...), cur.OnError.DeadLetterTopic) {
		needs = append(needs, need{rt: topicRT, op: auth.Write, name: t})
	}
	if err := c.check(needs...); err != nil {
		writeError(c.ctx, err)
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	spec, err := s.pipes.Upgrade(rctx, r.Name, core.PipelineUpgrade{
		Module: r.Module, Version: r.Version, Config: r.Config, Limits: r.Limits, BatchSize: r.BatchSize, TickIntervalMs: r.TickIntervalMs})
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, 200, spec)
}

// deletePipelineReq is DELETE /v1/pipelines/{p}[?purge=true].
type deletePipelineReq struct {
	Name     string `path:"p" json:"-" need:"pipeline:delete"`
	PurgeArg string `query:"purge" json:"-"`
	purge    bool
}

func (r *deletePipelineReq) parse(*call) error {
	switch r.PurgeArg {
	case "", "false":
	case "true":
		r.purge = true
	default:
		return core.Invalidf("purge must be true or false")
	}
	return nil
}

func (s *Server) deletePipeline(c *call, r *deletePipelineReq) {
	if !s.pipesOn(c) {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.pipes.Delete(rctx, r.Name, r.purge); err != nil {
		writeError(c.ctx, err)
		return
	}
	c.ctx.SetStatusCode(204)
}

func (s *Server) pausePipeline(c *call, r *alterPipelineReq)  { s.setPaused(c, r.Name, true) }
func (s *Server) resumePipeline(c *call, r *alterPipelineReq) { s.setPaused(c, r.Name, false) }

func (s *Server) setPaused(c *call, name string, paused bool) {
	if !s.pipesOn(c) {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	spec, err := s.pipes.SetPaused(rctx, name, paused)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, 200, spec)
}

// pipelineLogsReq is GET /v1/pipelines/{p}/logs[?after=SEQ][&wait_ms=MS].
// Guest log lines may quote input records: reading them needs read on
// the pipeline, not describe.
type pipelineLogsReq struct {
	Name     string `path:"p" json:"-" need:"pipeline:read"`
	AfterArg string `query:"after" json:"-"`
	WaitArg  string `query:"wait_ms" json:"-"`
	after    int64
	wait     time.Duration
}

// maxLogsWait bounds a logs long-poll.
const maxLogsWait = 30 * time.Second

func (r *pipelineLogsReq) parse(*call) error {
	if r.AfterArg != "" {
		n, err := strconv.ParseInt(r.AfterArg, 10, 64)
		if err != nil || n < 0 {
			return core.Invalidf("after must be a sequence number (0 or more)")
		}
		r.after = n
	}
	if r.WaitArg != "" {
		n, err := strconv.ParseInt(r.WaitArg, 10, 64)
		if err != nil || n < 0 || n > maxLogsWait.Milliseconds() {
			return core.Invalidf("wait_ms must be between 0 and %d", maxLogsWait.Milliseconds())
		}
		r.wait = time.Duration(n) * time.Millisecond
	}
	return nil
}

// pipelineLogs answers the guest log lines this node keeps for a pipeline
// (core.Pipelines.Logs), long-polling up to wait_ms for a first one.
func (s *Server) pipelineLogs(c *call, r *pipelineLogsReq) {
	if !s.pipesOn(c) {
		return
	}
	rctx, cancel := s.requestContext(r.wait + time.Second)
	defer cancel()
	lines, err := s.pipes.Logs(rctx, r.Name, r.after, r.wait)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	next := r.after
	if len(lines) > 0 {
		next = lines[len(lines)-1].Seq
	}
	if lines == nil {
		lines = []core.GuestLog{}
	}
	writeValue(c.ctx, 200, map[string]any{"pipeline": r.Name, "lines": lines, "next": next})
}
