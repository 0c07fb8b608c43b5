package main

import (
	"strings"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestLinkCLI: weir link create, list, describe, promote and delete
// between two single-node clusters (processes); a produce to the mirror is
// refused with mirror_topic until promoted.
func TestLinkCLI(t *testing.T) {
	a := tu.StartWeir(t, tu.FreeAddr(t), "--data-dir", t.TempDir(), "--raft-addr", tu.FreeAddr(t), "--log-level", "warn")
	b := tu.StartWeir(t, tu.FreeAddr(t), "--data-dir", t.TempDir(), "--raft-addr", tu.FreeAddr(t), "--log-level", "warn")
	_, mustA := weirCLI(t, a.URL())
	run, must := weirCLI(t, b.URL())
	mustA("topic", "create", "orders", "--partitions", "2")
	mustA("produce", "orders", "one")
	if out := must("link", "create", "from-a", "--source", a.URL(), "--topics", "orders*", "--groups", "billing"); !strings.Contains(out, `"name": "from-a"`) {
		t.Fatalf("link create: %s", out)
	}
	if out, err := run("link", "create", "bad", "--source", "ftp://x", "--topics", "x"); err == nil || !strings.Contains(out, "bad_request") {
		t.Fatalf("bad link: %v %s", err, out)
	}
	if out := must("link", "list"); !strings.Contains(out, "from-a") || !strings.Contains(out, "orders*") {
		t.Fatalf("link list: %s", out)
	}
	tu.Eventually(t, 30*time.Second, "describe shows the mirror caught up", func() bool {
		out, err := run("link", "describe", "from-a")
		return err == nil && strings.Contains(out, "LAG_RECORDS") && strings.Count(out, "orders") >= 2 && !strings.Contains(out, "lag unknown") &&
			strings.Contains(out, "mirror") && mirroredAll(out)
	})
	if out, err := run("produce", "orders", "x"); err == nil || !strings.Contains(out, "mirror_topic") {
		t.Fatalf("produce to a mirror: %v %s", err, out)
	}
	if out := must("link", "promote", "from-a", "--topics", "orders"); !strings.Contains(out, `"orders"`) {
		t.Fatalf("promote: %s", out)
	}
	must("produce", "orders", "mine")
	must("link", "delete", "from-a")
	if out, err := run("link", "describe", "from-a"); err == nil || !strings.Contains(out, "link_not_found") {
		t.Fatalf("describe after delete: %v %s", err, out)
	}
}

// mirroredAll reports a describe table whose rows all have a zero lag and
// a source high watermark equal to the mirror's.
func mirroredAll(out string) bool {
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 7 || f[0] == "TOPIC" {
			continue
		}
		rows++
		if f[3] != f[4] || f[5] != "0" {
			return false
		}
	}
	return rows == 2
}
