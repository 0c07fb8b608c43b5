package link

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/sdk/client"
)

// syncGroups copies the committed offsets of the link's groups from the
// source every Interval until ctx ends. An offset is capped at the mirror
// partition's high watermark (a consumer that fails over must not skip
// records that are not on B) and never moves a group backwards on B.
func (r *Runner) syncGroups(ctx context.Context, l core.Link, src *source) {
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		if err := r.syncGroupsOnce(ctx, l, src); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("link: group offsets", "link", l.Name, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *Runner) syncGroupsOnce(ctx context.Context, l core.Link, src *source) error {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.Interval+10*time.Second)
	defer cancel()
	groups, err := src.api.Groups(cctx)
	if err != nil {
		return err
	}
	st := r.broker.Store()
	mirrors := r.links.Mirrors(l.Name)
	bySource := map[string]string{} // source topic → mirror topic (not promoted)
	for topic, m := range mirrors {
		if !m.Promoted && m.TopicCreatedAt != 0 {
			bySource[m.SourceTopic] = topic
		}
	}
	// A prefix matches the groups A lists (those with a coordinator
	// document); an exact name also finds a group that only commits
	// offsets (no membership), which A does not list.
	names := map[string]bool{}
	for _, g := range groups {
		if l.SyncsGroup(g.Name) {
			names[g.Name] = true
		}
	}
	for _, p := range l.Groups {
		if !strings.HasSuffix(p, "*") {
			names[p] = true
		}
	}
	for name := range names {
		offs, err := src.api.GroupOffsets(cctx, name, "")
		if errors.Is(err, client.CodeGroupNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		have := map[[2]any]int64{}
		for _, o := range st.GroupOffsets(name) {
			have[[2]any{o.Topic, o.Partition}] = o.Offset
		}
		var commit []core.GroupOffset
		for _, o := range offs {
			topic, ok := bySource[o.Topic]
			if !ok {
				continue
			}
			pi, err := st.PartitionInfo(topic, o.Partition)
			if err != nil {
				continue
			}
			off := min(o.Offset, pi.HighWatermark)
			if cur, ok := have[[2]any{topic, o.Partition}]; ok && cur >= off {
				continue // never backwards
			}
			commit = append(commit, core.GroupOffset{Topic: topic, Partition: o.Partition, Offset: off})
		}
		if len(commit) > 0 {
			if err := r.broker.CommitOffsets(cctx, name, commit); err != nil {
				return err
			}
		}
	}
	return nil
}
