package main

import (
	"os/exec"
	"strings"
	"testing"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestQuotaCLI: weir quota set, list and remove against a node started
// with a small --quota-max-wait; a produce over the quota set is refused.
func TestQuotaCLI(t *testing.T) {
	p := tu.StartWeir(t, tu.FreeAddr(t), "--data-dir", t.TempDir(), "--raft-addr", tu.FreeAddr(t), "--log-level", "warn",
		"--quota-max-wait", "10ms")
	run, must := weirCLI(t, p.URL())
	out := must("quota", "set", "default", "--produce-bytes", "1000", "--requests", "500")
	if !strings.Contains(out, `"principal": "default"`) || !strings.Contains(out, `"produce_bytes_per_sec": 1000`) ||
		!strings.Contains(out, `"requests_per_sec": 500`) {
		t.Fatalf("quota set: %s", out)
	}
	must("quota", "set", "alice", "--fetch-bytes", "2048")
	out = must("quota", "list")
	if !strings.Contains(out, "PRODUCE_BYTES/S") || !strings.Contains(out, "alice") || !strings.Contains(out, "default") {
		t.Fatalf("quota list: %s", out)
	}
	// The node's own requests are anonymous with auth off: the default
	// quota holds them. A value of 20 KB can never fit 1000 bytes/s.
	must("topic", "create", "cq")
	if out, err := run("produce", "cq", strings.Repeat("x", 20000)); err == nil || !strings.Contains(out, "rate_limited") {
		t.Fatalf("produce over quota: %v %s", err, out)
	}
	if out, err := run("quota", "set", "alice", "--produce-bytes", "-1"); err == nil || !strings.Contains(out, "bad_request") {
		t.Fatalf("negative quota: %v %s", err, out)
	}
	must("quota", "remove", "alice")
	if out, err := run("quota", "remove", "alice"); err == nil || !strings.Contains(out, "not_found") {
		t.Fatalf("remove twice: %v %s", err, out)
	}
	if out := must("quota", "list"); strings.Contains(out, "alice") {
		t.Fatalf("quota list after remove: %s", out)
	}
	if out, err := exec.Command(tu.WeirBinary(t), "quota", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "Usage:") {
		t.Fatalf("quota --help: %v %s", err, out)
	}
}
