package gateway

import (
	"sort"
	"time"

	"github.com/weir-broker/weir/core"
)

// Cluster links (docs/geo-replication.md): admins on the destination
// cluster manage them; internal/link runs them.

type createLinkReq struct {
	Name        string   `json:"name"`
	SourceURL   string   `json:"source_url"`
	SourceToken string   `json:"source_token"`
	Topics      []string `json:"topics"`
	Groups      []string `json:"groups"`
}

func (r *createLinkReq) parse(*call) error {
	l := core.Link{Name: r.Name, SourceURL: r.SourceURL, Topics: r.Topics, Groups: r.Groups}
	return l.Validate()
}

type linkReq struct {
	Name string `path:"name" json:"-"`
}

type promoteLinkReq struct {
	Name   string   `path:"name" json:"-"`
	Topics []string `json:"topics"`
}

func (r *promoteLinkReq) parse(*call) error {
	if len(r.Topics) == 0 {
		return core.Invalidf("promote needs the mirror topics to make writable (\"topics\")")
	}
	return nil
}

type mirrorPartitionJSON struct {
	Partition           int     `json:"partition"`
	SourceHighWatermark int64   `json:"source_high_watermark"`
	HighWatermark       int64   `json:"high_watermark"`
	LagRecords          int64   `json:"lag_records"`
	LagSeconds          float64 `json:"lag_seconds"`
}

type mirrorJSON struct {
	Topic       string                `json:"topic"`
	SourceTopic string                `json:"source_topic"`
	Promoted    bool                  `json:"promoted"`
	LagRecords  int64                 `json:"lag_records"`
	LagSeconds  float64               `json:"lag_seconds"`
	Partitions  []mirrorPartitionJSON `json:"partitions,omitempty"`
}

type linkJSON struct {
	Name      string       `json:"name"`
	SourceURL string       `json:"source_url"`
	Topics    []string     `json:"topics"`
	Groups    []string     `json:"groups"`
	CreatedAt int64        `json:"created_at"`
	Mirrors   []mirrorJSON `json:"mirrors"`
	// LagError says why the source could not be asked (describe only).
	LagError string `json:"lag_error,omitempty"`
}

// links returns the link service, or answers 404 when the node has none.
func (s *Server) links(c *call) (*core.Links, bool) {
	if s.cfg.Links == nil {
		writeError(c.ctx, &StatusError{Status: 404, Code: "not_found", Msg: "cluster links are not configured on this node"})
	}
	return s.cfg.Links, s.cfg.Links != nil
}

// linkView is a link with its mirror topics (the source token is never shown).
func linkView(links *core.Links, l core.Link) linkJSON {
	out := linkJSON{Name: l.Name, SourceURL: l.SourceURL, Topics: l.Topics, Groups: l.Groups, CreatedAt: l.CreatedAt, Mirrors: []mirrorJSON{}}
	if out.Groups == nil {
		out.Groups = []string{}
	}
	for topic, m := range links.Mirrors(l.Name) {
		out.Mirrors = append(out.Mirrors, mirrorJSON{Topic: topic, SourceTopic: m.SourceTopic, Promoted: m.Promoted})
	}
	sort.Slice(out.Mirrors, func(i, j int) bool { return out.Mirrors[i].Topic < out.Mirrors[j].Topic })
	return out
}

func (s *Server) createLink(c *call, r *createLinkReq) {
	links, ok := s.links(c)
	if !ok {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	l, err := links.Create(rctx, core.Link{Name: r.Name, SourceURL: r.SourceURL, SourceToken: r.SourceToken, Topics: r.Topics, Groups: r.Groups})
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, 201, linkView(links, l))
}

func (s *Server) listLinks(c *call, _ *listReq) {
	links, ok := s.links(c)
	if !ok {
		return
	}
	out := []linkJSON{}
	for _, l := range links.List() {
		out = append(out, linkView(links, l))
	}
	writeValue(c.ctx, 200, map[string]any{"links": out})
}

func (s *Server) describeLink(c *call, r *linkReq) {
	links, ok := s.links(c)
	if !ok {
		return
	}
	l, err := links.Get(r.Name)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	out := linkView(links, l)
	if s.cfg.LinkObserver != nil {
		rctx, cancel := s.requestContext(10 * time.Second)
		defer cancel()
		lags, err := s.cfg.LinkObserver.LinkLag(rctx, l.Name)
		if err != nil {
			out.LagError = err.Error()
		}
		for _, lg := range lags {
			for i := range out.Mirrors {
				m := &out.Mirrors[i]
				if m.Topic != lg.Topic {
					continue
				}
				m.Partitions = append(m.Partitions, mirrorPartitionJSON{Partition: lg.Partition, SourceHighWatermark: lg.SourceHighWatermark,
					HighWatermark: lg.HighWatermark, LagRecords: lg.Records, LagSeconds: lg.Seconds})
				m.LagRecords += lg.Records
				m.LagSeconds = max(m.LagSeconds, lg.Seconds)
			}
		}
	}
	writeValue(c.ctx, 200, out)
}

func (s *Server) deleteLink(c *call, r *linkReq) {
	links, ok := s.links(c)
	if !ok {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	if err := links.Delete(rctx, r.Name); err != nil {
		writeError(c.ctx, err)
		return
	}
	c.ctx.SetStatusCode(204)
}

func (s *Server) promoteLink(c *call, r *promoteLinkReq) {
	links, ok := s.links(c)
	if !ok {
		return
	}
	rctx, cancel := s.requestContext(s.cfg.ProduceTimeout)
	defer cancel()
	topics, err := links.Promote(rctx, r.Name, r.Topics)
	if err != nil {
		writeError(c.ctx, err)
		return
	}
	writeValue(c.ctx, 200, map[string]any{"link": r.Name, "promoted": topics})
}

// mirrorOf is the "mirror" member of a topic's answer, nil for a topic
// that mirrors nothing.
type topicMirrorJSON struct {
	Link        string `json:"link"`
	SourceTopic string `json:"source_topic"`
	Promoted    bool   `json:"promoted"`
}

func (s *Server) mirrorOf(t core.TopicInfo) *topicMirrorJSON {
	m, ok := core.MirrorOf(s.broker.Store(), t)
	if !ok {
		return nil
	}
	return &topicMirrorJSON{Link: m.Link, SourceTopic: m.SourceTopic, Promoted: m.Promoted}
}
