package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ModuleVersion is one uploaded version of a Wasm module.
type ModuleVersion struct {
	Name        string `json:"name"`
	Version     int    `json:"version"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	MemoryPages uint32 `json:"memory_pages"`
	CreatedAtMs int64  `json:"created_at"`
}

// Module is a module with its versions.
type Module struct {
	Name     string          `json:"name"`
	Latest   int             `json:"latest"`
	Versions []ModuleVersion `json:"versions"`
}

// UploadModule uploads wasm as a new version of module name (validated:
// CodeModuleInvalid-like "module_invalid" with the reason when refused).
func (c *Client) UploadModule(ctx context.Context, name string, wasm []byte) (*ModuleVersion, error) {
	resp, err := c.do(ctx, request{method: "PUT", path: "/v1/modules/" + esc(name), body: wasm, ct: "application/wasm"})
	if err != nil {
		return nil, err
	}
	var v ModuleVersion
	return &v, decodeInto(resp, &v)
}

// Modules lists the modules.
func (c *Client) Modules(ctx context.Context) ([]Module, error) {
	var out struct {
		Modules []Module `json:"modules"`
	}
	return out.Modules, c.call(ctx, "GET", "/v1/modules", nil, &out, true)
}

// Module describes a module's versions.
func (c *Client) Module(ctx context.Context, name string) (*Module, error) {
	var m Module
	if err := c.call(ctx, "GET", "/v1/modules/"+esc(name), nil, &m, true); err != nil {
		return nil, err
	}
	return &m, nil
}

// DeleteModule deletes a module (refused while a pipeline uses it).
func (c *Client) DeleteModule(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", "/v1/modules/"+esc(name), nil, nil, true)
}

// PipelineOnError is a pipeline's failure handling (docs/pipelines.md).
type PipelineOnError struct {
	MaxAttempts      int    `json:"max_attempts,omitempty"`
	DeadLetterTopic  string `json:"dead_letter_topic,omitempty"`
	InitialBackoffMs int64  `json:"initial_backoff_ms,omitempty"`
	MaxBackoffMs     int64  `json:"max_backoff_ms,omitempty"`
}

// PipelineLimits are a pipeline's sandbox limits (0: the host default).
type PipelineLimits struct {
	MemoryPages    uint32 `json:"memory_pages,omitempty"`
	BatchTimeoutMs int64  `json:"batch_timeout_ms,omitempty"`
	MaxOutputBytes int64  `json:"max_output_bytes,omitempty"`
}

// PipelineConfig is a pipeline to create (docs/pipelines.md); zero fields
// take the defaults.
type PipelineConfig struct {
	Name      string            `json:"name"`
	Module    string            `json:"module"`
	Version   int               `json:"version,omitempty"` // 0: the latest, pinned
	Inputs    []string          `json:"inputs"`
	Outputs   []string          `json:"outputs"`
	Config    map[string]string `json:"config,omitempty"`
	Guarantee string            `json:"guarantee,omitempty"` // at_least_once (default) or exactly_once
	OnError   *PipelineOnError  `json:"on_error,omitempty"`
	Limits    *PipelineLimits   `json:"limits,omitempty"`
	BatchSize int               `json:"batch_size,omitempty"`
	From      From              `json:"from,omitempty"`
	// TickIntervalMs: how often an idle input partition ticks the module's
	// timers (0: the broker's default, 1000).
	TickIntervalMs int64 `json:"tick_interval_ms,omitempty"`
	// Resume continues from the position and state a deleted pipeline of
	// this name left; Reset drops them.
	Resume bool `json:"resume,omitempty"`
	Reset  bool `json:"reset,omitempty"`
}

// Pipeline is a pipeline's stored definition.
type Pipeline struct {
	PipelineConfig
	Revision    int   `json:"revision"`
	Paused      bool  `json:"paused"`
	CreatedAtMs int64 `json:"created_at"`
	UpdatedAtMs int64 `json:"updated_at"`
	// Raw is the whole answer.
	Raw json.RawMessage `json:"-"`
}

// PipelinePartition is a pipeline's progress on one input partition.
type PipelinePartition struct {
	Topic        string `json:"topic"`
	Partition    int    `json:"partition"`
	Position     int64  `json:"position"`
	Lag          int64  `json:"lag"`
	Processed    int64  `json:"processed"`
	Failed       int64  `json:"failed"`
	DeadLettered int64  `json:"dead_lettered"`
	Emitted      int64  `json:"emitted"`
	Running      bool   `json:"running"`
}

// PipelineStatus is a described pipeline: its definition, state and
// progress (docs/pipelines.md "Status").
type PipelineStatus struct {
	Pipeline     Pipeline            `json:"pipeline"`
	State        string              `json:"state"` // running, paused, failed, …
	Processed    int64               `json:"processed"`
	Emitted      int64               `json:"emitted"`
	Failed       int64               `json:"failed"`
	DeadLettered int64               `json:"dead_lettered"`
	Lag          int64               `json:"lag"`
	Partitions   []PipelinePartition `json:"partitions"`
	// Raw is the whole answer.
	Raw json.RawMessage `json:"-"`
}

func (c *Client) pipelineCall(ctx context.Context, method, path string, in any, idempotent bool) (*Pipeline, error) {
	var raw json.RawMessage
	if err := c.call(ctx, method, path, in, &raw, idempotent); err != nil {
		return nil, err
	}
	p := &Pipeline{Raw: raw}
	if err := json.Unmarshal(raw, p); err != nil {
		return nil, fmt.Errorf("client: decode pipeline: %w", err)
	}
	return p, nil
}

// CreatePipeline creates a pipeline and returns its stored definition.
func (c *Client) CreatePipeline(ctx context.Context, cfg PipelineConfig) (*Pipeline, error) {
	return c.pipelineCall(ctx, "POST", "/v1/pipelines", cfg, false)
}

// PipelineUpgrade switches a pipeline to another module or version at a
// batch boundary (docs/pipelines.md "Upgrading a module"). Config and
// Limits replace the current ones when non-nil; BatchSize 0 keeps it.
type PipelineUpgrade struct {
	Module    string            `json:"module"`
	Version   int               `json:"version"`
	Config    map[string]string `json:"config,omitempty"`
	Limits    *PipelineLimits   `json:"limits,omitempty"`
	BatchSize int               `json:"batch_size,omitempty"`
	// TickIntervalMs replaces the tick interval when not 0.
	TickIntervalMs int64 `json:"tick_interval_ms,omitempty"`
}

// UpgradePipeline upgrades a pipeline and returns its new definition.
func (c *Client) UpgradePipeline(ctx context.Context, name string, up PipelineUpgrade) (*Pipeline, error) {
	return c.pipelineCall(ctx, "PATCH", "/v1/pipelines/"+esc(name), up, false)
}

// Pipelines lists the pipelines.
func (c *Client) Pipelines(ctx context.Context) ([]Pipeline, error) {
	var out struct {
		Pipelines []Pipeline `json:"pipelines"`
	}
	return out.Pipelines, c.call(ctx, "GET", "/v1/pipelines", nil, &out, true)
}

// Pipeline describes a pipeline with its status.
func (c *Client) Pipeline(ctx context.Context, name string) (*PipelineStatus, error) {
	var raw json.RawMessage
	if err := c.call(ctx, "GET", "/v1/pipelines/"+esc(name), nil, &raw, true); err != nil {
		return nil, err
	}
	st := &PipelineStatus{Raw: raw}
	if err := json.Unmarshal(raw, st); err != nil {
		return nil, fmt.Errorf("client: decode pipeline status: %w", err)
	}
	return st, nil
}

// DeletePipeline deletes a pipeline; purge also drops its position and
// state (else a create with Resume continues from them).
func (c *Client) DeletePipeline(ctx context.Context, name string, purge bool) error {
	q := ""
	if purge {
		q = "?purge=true"
	}
	return c.call(ctx, "DELETE", "/v1/pipelines/"+esc(name)+q, nil, nil, true)
}

// PausePipeline pauses a pipeline.
func (c *Client) PausePipeline(ctx context.Context, name string) error {
	return c.call(ctx, "POST", "/v1/pipelines/"+esc(name)+"/pause", nil, nil, true)
}

// ResumePipeline resumes a paused or failed pipeline.
func (c *Client) ResumePipeline(ctx context.Context, name string) error {
	return c.call(ctx, "POST", "/v1/pipelines/"+esc(name)+"/resume", nil, nil, true)
}

// LogLine is a line a pipeline's module logged.
type LogLine struct {
	Seq        int64  `json:"seq"`
	TimeMs     int64  `json:"time"`
	Level      string `json:"level"`
	Message    string `json:"message"`
	Module     string `json:"module"`
	Version    int    `json:"version"`
	Topic      string `json:"topic"`
	Partition  int    `json:"partition"`
	Offset     int64  `json:"offset"`
	LastOffset int64  `json:"last_offset"`
}

// PipelineLogs returns the log lines this node keeps for a pipeline after
// sequence number after, waiting up to wait for one, and the sequence to
// pass as after next time.
func (c *Client) PipelineLogs(ctx context.Context, name string, after int64, wait time.Duration) ([]LogLine, int64, error) {
	var out struct {
		Lines []LogLine `json:"lines"`
		Next  int64     `json:"next"`
	}
	q := query("after", itoa(after))
	if wait > 0 {
		q += "&wait_ms=" + itoa(ms(wait))
	}
	err := c.call(ctx, "GET", "/v1/pipelines/"+esc(name)+"/logs"+q, nil, &out, true)
	return out.Lines, out.Next, err
}

// Token is a newly issued API token; Token is shown only once.
type Token struct {
	Principal string `json:"principal"`
	Admin     bool   `json:"admin"`
	Token     string `json:"token"`
	TokenID   string `json:"token_id"`
}

// TokenInfo is a token as listed (never its secret).
type TokenInfo struct {
	ID          string `json:"id"`
	Principal   string `json:"principal"`
	CreatedAtMs int64  `json:"created_at"`
	CreatedBy   string `json:"created_by,omitempty"`
}

// Principal is a principal with its tokens.
type Principal struct {
	Name        string      `json:"name"`
	Admin       bool        `json:"admin"`
	CreatedAtMs int64       `json:"created_at"`
	CreatedBy   string      `json:"created_by,omitempty"`
	Tokens      []TokenInfo `json:"tokens,omitempty"`
}

// CreateToken issues a token for principal, creating the principal (an
// admin when admin is true) if missing. Admins only.
func (c *Client) CreateToken(ctx context.Context, principal string, admin bool) (*Token, error) {
	var t Token
	if err := c.call(ctx, "POST", "/v1/principals", map[string]any{"name": principal, "admin": admin}, &t, false); err != nil {
		return nil, err
	}
	return &t, nil
}

// AddToken issues another token for an existing principal.
func (c *Client) AddToken(ctx context.Context, principal string) (*Token, error) {
	var t Token
	if err := c.call(ctx, "POST", "/v1/principals/"+esc(principal)+"/tokens", nil, &t, false); err != nil {
		return nil, err
	}
	return &t, nil
}

// Principals lists the principals with their token ids.
func (c *Client) Principals(ctx context.Context) ([]Principal, error) {
	var out struct {
		Principals []Principal `json:"principals"`
	}
	return out.Principals, c.call(ctx, "GET", "/v1/principals", nil, &out, true)
}

// DeletePrincipal deletes a principal with its tokens and ACLs.
func (c *Client) DeletePrincipal(ctx context.Context, principal string) error {
	return c.call(ctx, "DELETE", "/v1/principals/"+esc(principal), nil, nil, true)
}

// RevokeToken revokes one token of a principal.
func (c *Client) RevokeToken(ctx context.Context, principal, tokenID string) error {
	return c.call(ctx, "DELETE", "/v1/principals/"+esc(principal)+"/tokens/"+esc(tokenID), nil, nil, true)
}

// Identity is the principal the server sees for this client.
type Identity struct {
	Principal string `json:"principal"`
	Admin     bool   `json:"admin"`
	Via       string `json:"via"`  // token, jwt, mtls, …
	Auth      bool   `json:"auth"` // security is on
}

// WhoAmI returns the caller's principal.
func (c *Client) WhoAmI(ctx context.Context) (*Identity, error) {
	var id Identity
	if err := c.call(ctx, "GET", "/v1/whoami", nil, &id, true); err != nil {
		return nil, err
	}
	return &id, nil
}

// ACL allows a principal operations on resources (docs/security.md).
type ACL struct {
	ID           string   `json:"id,omitempty"`
	Principal    string   `json:"principal"`
	ResourceType string   `json:"resource_type"` // topic, group, subscription, module, pipeline, cluster
	Pattern      string   `json:"pattern"`
	PatternType  string   `json:"pattern_type,omitempty"` // literal (default) or prefix
	Operations   []string `json:"operations"`             // read, write, create, delete, alter, describe
	CreatedAtMs  int64    `json:"created_at,omitempty"`
	CreatedBy    string   `json:"created_by,omitempty"`
}

// AddACL adds an ACL and returns it with its id.
func (c *Client) AddACL(ctx context.Context, a ACL) (*ACL, error) {
	var out ACL
	if err := c.call(ctx, "POST", "/v1/acls", a, &out, false); err != nil {
		return nil, err
	}
	return &out, nil
}

// ACLs lists the ACLs (of principal only, when not empty).
func (c *Client) ACLs(ctx context.Context, principal string) ([]ACL, error) {
	var out struct {
		ACLs []ACL `json:"acls"`
	}
	return out.ACLs, c.call(ctx, "GET", "/v1/acls"+query("principal", principal), nil, &out, true)
}

// RemoveACL removes an ACL by id.
func (c *Client) RemoveACL(ctx context.Context, id string) error {
	return c.call(ctx, "DELETE", "/v1/acls/"+esc(id), nil, nil, true)
}

// Quota bounds what one principal may cost (0: unlimited). The principal
// "default" applies to everyone without a quota of their own.
type Quota struct {
	Principal          string `json:"principal,omitempty"`
	ProduceBytesPerSec int64  `json:"produce_bytes_per_sec"`
	FetchBytesPerSec   int64  `json:"fetch_bytes_per_sec"`
	RequestsPerSec     int64  `json:"requests_per_sec"`
}

// SetQuota stores principal's quota (PUT /v1/quotas/{principal}) and
// returns it as stored. Admins only.
func (c *Client) SetQuota(ctx context.Context, principal string, q Quota) (*Quota, error) {
	q.Principal = ""
	var out Quota
	if err := c.call(ctx, "PUT", "/v1/quotas/"+esc(principal), q, &out, true); err != nil {
		return nil, err
	}
	return &out, nil
}

// Quota returns principal's own quota.
func (c *Client) Quota(ctx context.Context, principal string) (*Quota, error) {
	var out Quota
	if err := c.call(ctx, "GET", "/v1/quotas/"+esc(principal), nil, &out, true); err != nil {
		return nil, err
	}
	return &out, nil
}

// Quotas lists every stored quota.
func (c *Client) Quotas(ctx context.Context) ([]Quota, error) {
	var out struct {
		Quotas []Quota `json:"quotas"`
	}
	return out.Quotas, c.call(ctx, "GET", "/v1/quotas", nil, &out, true)
}

// DeleteQuota removes principal's quota (the default applies again).
func (c *Client) DeleteQuota(ctx context.Context, principal string) error {
	return c.call(ctx, "DELETE", "/v1/quotas/"+esc(principal), nil, nil, true)
}
