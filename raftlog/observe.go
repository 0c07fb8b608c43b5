package raftlog

import "sort"

// CommittedGroups lists the consumer groups that have committed offsets,
// sorted (telemetry reports their lag).
func (h *Host) CommittedGroups() []string {
	var out []string
	h.meta.read(func(st *metaState) {
		for g := range st.Groups {
			out = append(out, g)
		}
	})
	sort.Strings(out)
	return out
}
