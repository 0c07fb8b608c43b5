package client

import "context"

// LinkConfig is a cluster link to create on the destination cluster
// (docs/geo-replication.md): the source cluster's URL and token, and the
// topics and consumer groups to mirror, by name or by prefix ("orders.*").
type LinkConfig struct {
	Name        string   `json:"name"`
	SourceURL   string   `json:"source_url"`
	SourceToken string   `json:"source_token,omitempty"`
	Topics      []string `json:"topics"`
	Groups      []string `json:"groups,omitempty"`
}

// MirrorPartition is one mirror partition's lag behind its source.
type MirrorPartition struct {
	Partition           int     `json:"partition"`
	SourceHighWatermark int64   `json:"source_high_watermark"`
	HighWatermark       int64   `json:"high_watermark"`
	LagRecords          int64   `json:"lag_records"`
	LagSeconds          float64 `json:"lag_seconds"`
}

// Mirror is a mirror topic of a link; Partitions and the lag are filled
// by Link (describe) only.
type Mirror struct {
	Topic       string            `json:"topic"`
	SourceTopic string            `json:"source_topic"`
	Promoted    bool              `json:"promoted"`
	LagRecords  int64             `json:"lag_records"`
	LagSeconds  float64           `json:"lag_seconds"`
	Partitions  []MirrorPartition `json:"partitions,omitempty"`
}

// Link is a cluster link as the destination shows it (never its token).
type Link struct {
	Name        string   `json:"name"`
	SourceURL   string   `json:"source_url"`
	Topics      []string `json:"topics"`
	Groups      []string `json:"groups"`
	CreatedAtMs int64    `json:"created_at"`
	Mirrors     []Mirror `json:"mirrors"`
	// LagError says why the source could not be asked for the lag.
	LagError string `json:"lag_error,omitempty"`
}

// CreateLink creates a link (CodeLinkExists when the name is taken).
func (c *Client) CreateLink(ctx context.Context, cfg LinkConfig) (*Link, error) {
	var l Link
	return &l, c.call(ctx, "POST", "/v1/links", cfg, &l, false)
}

// Links lists the links with their mirror topics.
func (c *Client) Links(ctx context.Context) ([]Link, error) {
	var out struct {
		Links []Link `json:"links"`
	}
	return out.Links, c.call(ctx, "GET", "/v1/links", nil, &out, true)
}

// Link describes a link with each mirror partition's lag.
func (c *Client) Link(ctx context.Context, name string) (*Link, error) {
	var l Link
	if err := c.call(ctx, "GET", "/v1/links/"+esc(name), nil, &l, true); err != nil {
		return nil, err
	}
	return &l, nil
}

// DeleteLink deletes a link; its mirror topics not yet promoted become
// ordinary writable topics.
func (c *Client) DeleteLink(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", "/v1/links/"+esc(name), nil, nil, false)
}

// PromoteLink makes mirror topics of the link writable (failover).
func (c *Client) PromoteLink(ctx context.Context, name string, topics []string) ([]string, error) {
	var out struct {
		Promoted []string `json:"promoted"`
	}
	return out.Promoted, c.call(ctx, "POST", "/v1/links/"+esc(name)+"/promote", map[string]any{"topics": topics}, &out, true)
}
