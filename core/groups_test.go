package core

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func members(ids ...string) []GroupMember {
	out := make([]GroupMember, len(ids))
	for i, id := range ids {
		out[i] = GroupMember{ID: id, Topics: []string{"t"}}
	}
	return out
}

func apply(ms []GroupMember, a map[string][]TopicPartitions) []GroupMember {
	for i := range ms {
		ms[i].Assignment = a[ms[i].ID]
	}
	return ms
}

func owned(a map[string][]TopicPartitions, id, topic string) []int {
	for _, tp := range a[id] {
		if tp.Topic == topic {
			return tp.Partitions
		}
	}
	return nil
}

// checkAssignment verifies every partition is assigned exactly once per
// topic among the members consuming it, with counts differing by ≤ 1.
func checkAssignment(t *testing.T, ms []GroupMember, parts map[string]int, a map[string][]TopicPartitions) {
	t.Helper()
	for topic, n := range parts {
		seen := make([]string, n)
		lo, hi := n+1, -1
		consumers := 0
		for _, m := range ms {
			if !slices.Contains(m.Topics, topic) {
				if len(owned(a, m.ID, topic)) > 0 {
					t.Fatalf("%s owns partitions of %s it does not consume", m.ID, topic)
				}
				continue
			}
			consumers++
			ps := owned(a, m.ID, topic)
			lo, hi = min(lo, len(ps)), max(hi, len(ps))
			for _, p := range ps {
				if p < 0 || p >= n {
					t.Fatalf("%s owns %s/%d of %d partitions", m.ID, topic, p, n)
				}
				if seen[p] != "" {
					t.Fatalf("%s/%d assigned to %s and %s", topic, p, seen[p], m.ID)
				}
				seen[p] = m.ID
			}
		}
		if consumers == 0 {
			continue
		}
		for p, m := range seen {
			if m == "" {
				t.Fatalf("%s/%d unassigned", topic, p)
			}
		}
		if hi-lo > 1 {
			t.Fatalf("%s unbalanced: %d to %d partitions per member", topic, lo, hi)
		}
	}
}

func TestAssignBalancedAndSticky(t *testing.T) {
	parts := map[string]int{"t": 6}
	ms := members("a", "b", "c")
	a := Assign(ms, parts)
	checkAssignment(t, ms, parts, a)
	ms = apply(ms, a)

	// A fourth member takes one partition from two of the others; nobody
	// else loses anything.
	ms2 := append(slices.Clone(ms), GroupMember{ID: "d", Topics: []string{"t"}})
	a2 := Assign(ms2, parts)
	checkAssignment(t, ms2, parts, a2)
	moved := 0
	for _, m := range ms {
		before, after := owned(a, m.ID, "t"), owned(a2, m.ID, "t")
		for _, p := range after {
			if !slices.Contains(before, p) {
				t.Fatalf("%s gained %d while a member joined", m.ID, p)
			}
		}
		moved += len(before) - len(after)
	}
	if moved != len(owned(a2, "d", "t")) || moved != 1 && moved != 2 {
		t.Fatalf("moved %d partitions to the new member (%v)", moved, a2)
	}

	// b leaves: its partitions go to the others, who keep theirs.
	ms3 := apply(slices.Clone(ms2), a2)
	ms3 = slices.DeleteFunc(ms3, func(m GroupMember) bool { return m.ID == "b" })
	a3 := Assign(ms3, parts)
	checkAssignment(t, ms3, parts, a3)
	for _, m := range ms3 {
		for _, p := range owned(a2, m.ID, "t") {
			if !slices.Contains(owned(a3, m.ID, "t"), p) {
				t.Fatalf("%s lost %d when b left", m.ID, p)
			}
		}
	}

	// A balanced assignment is a fixpoint.
	ms3 = apply(ms3, a3)
	if again := Assign(ms3, parts); fmt.Sprint(again) != fmt.Sprint(a3) {
		t.Fatalf("not a fixpoint: %v then %v", a3, again)
	}
}

func TestAssignCases(t *testing.T) {
	cases := []struct {
		name  string
		ms    []GroupMember
		parts map[string]int
	}{
		{"more members than partitions", members("a", "b", "c", "d"), map[string]int{"t": 2}},
		{"one member", members("a"), map[string]int{"t": 5}},
		{"deleted topic", members("a", "b"), map[string]int{"t": 0}},
		{"two topics, different consumers", []GroupMember{
			{ID: "a", Topics: []string{"t", "u"}},
			{ID: "b", Topics: []string{"u"}},
			{ID: "c", Topics: []string{"t"}},
		}, map[string]int{"t": 3, "u": 4}},
		{"stale assignment beyond the partition count", []GroupMember{
			{ID: "a", Topics: []string{"t"}, Assignment: []TopicPartitions{{"t", []int{0, 1, 7}}}},
			{ID: "b", Topics: []string{"t"}, Assignment: []TopicPartitions{{"t", []int{1, 2}}}},
		}, map[string]int{"t": 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkAssignment(t, tc.ms, tc.parts, Assign(tc.ms, tc.parts))
		})
	}
}

func TestAssignRandomChurn(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	parts := map[string]int{"t": 12, "u": 5}
	var ms []GroupMember
	next := 0
	for step := 0; step < 500; step++ {
		if len(ms) > 0 && r.IntN(3) == 0 {
			i := r.IntN(len(ms))
			ms = slices.Delete(ms, i, i+1)
		} else {
			topics := [][]string{{"t"}, {"u"}, {"t", "u"}}[r.IntN(3)]
			ms = append(ms, GroupMember{ID: fmt.Sprintf("m%03d", next), Topics: topics})
			next++
		}
		a := Assign(ms, parts)
		checkAssignment(t, ms, parts, a)
		ms = apply(ms, a)
	}
}
