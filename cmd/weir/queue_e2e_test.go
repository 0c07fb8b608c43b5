package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

type e2eMsg struct {
	Receipt        string            `json:"receipt"`
	Offset         int64             `json:"offset"`
	Attempt        int               `json:"attempt"`
	LeaseExpiresAt int64             `json:"lease_expires_at"`
	Value          string            `json:"value"`
	Headers        map[string]string `json:"headers"`
}

func e2eReceive(t *testing.T, u string, body map[string]any) []e2eMsg {
	t.Helper()
	r := tu.Do(t, "POST", u+"/v1/topics/kq/subscriptions/s/receive", body)
	if r.Status != 200 {
		t.Fatalf("receive: %d %s", r.Status, r.Body)
	}
	var out struct {
		Messages []e2eMsg `json:"messages"`
	}
	r.JSON(t, &out)
	return out.Messages
}

// e2eWaitServing waits until topic kq's partition 0 is read again after a restart.
func e2eWaitServing(t *testing.T, u string) {
	t.Helper()
	tu.Eventually(t, 30*time.Second, "reads served after the restart", func() bool {
		r, err := tu.TryDo("GET", u+"/v1/topics/kq/partitions/0/records?offset=earliest&max_records=1", nil)
		return err == nil && r.Status == 200
	})
}

func e2eAck(t *testing.T, u, receipt string) string {
	t.Helper()
	r := tu.Do(t, "POST", u+"/v1/topics/kq/subscriptions/s/ack", map[string]any{"receipts": []string{receipt}})
	var out struct {
		Results []struct {
			Status string `json:"status"`
			Error  struct {
				Code string `json:"code"`
			} `json:"error"`
		} `json:"results"`
	}
	r.JSON(t, &out)
	if len(out.Results) != 1 {
		t.Fatalf("ack: %d %s", r.Status, r.Body)
	}
	if out.Results[0].Status == "ok" {
		return "ok"
	}
	return out.Results[0].Error.Code
}

// TestQueueLeasesAndDelaysSurviveKill9 kills the broker (SIGKILL) while a
// message is leased and another is delayed: after the restart the lease
// still holds (the message comes back only after it expires, as attempt 2),
// the delayed message arrives no earlier than due, and the counts are kept.
func TestQueueLeasesAndDelaysSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	httpAddr, raftAddr := tu.FreeAddr(t), tu.FreeAddr(t)
	p := tu.StartWeir(t, httpAddr, "--data-dir", dir, "--raft-addr", raftAddr, "--log-level", "warn")
	u := p.URL()
	if r := tu.Do(t, "POST", u+"/v1/topics", map[string]any{"name": "kq", "partitions": 1}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	r := tu.Do(t, "POST", u+"/v1/topics/kq/subscriptions", map[string]any{"name": "s", "visibility_timeout_ms": 8000,
		"backoff": map[string]any{"initial_ms": 100, "max_ms": 100, "multiplier": 1}})
	if r.Status != 201 {
		t.Fatalf("create subscription: %d %s", r.Status, r.Body)
	}
	r = tu.Do(t, "POST", u+"/v1/topics/kq/records", map[string]any{"records": []any{
		map[string]any{"value": "leased"}, map[string]any{"value": "delayed", "delay_ms": 4000}}})
	if r.Status != 200 {
		t.Fatalf("produce: %d %s", r.Status, r.Body)
	}
	first := e2eReceive(t, u, map[string]any{"max_records": 10})
	if len(first) != 1 || first[0].Value != "leased" || first[0].Attempt != 1 {
		t.Fatalf("first receive: %+v", first)
	}
	p.Kill()
	p.Restart(60 * time.Second)
	e2eWaitServing(t, u)

	if time.Now().UnixMilli() < first[0].LeaseExpiresAt-500 {
		if got := e2eReceive(t, u, nil); len(got) != 0 && got[0].Value == "leased" {
			t.Fatalf("the lease was lost in the crash: %+v", got)
		}
	}
	seen := map[string]e2eMsg{}
	at := map[string]int64{}
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < 2 && time.Now().Before(deadline) {
		for _, m := range e2eReceive(t, u, map[string]any{"wait_ms": 5000}) {
			if _, dup := seen[m.Value]; dup {
				t.Fatalf("%s delivered twice after the restart: %+v", m.Value, m)
			}
			seen[m.Value], at[m.Value] = m, time.Now().UnixMilli()
		}
	}
	d, x := seen["delayed"], seen["leased"]
	if d.Receipt == "" || x.Receipt == "" {
		t.Fatalf("after the restart got %+v", seen)
	}
	due, _ := strconv.ParseInt(d.Headers["weir-deliver-at"], 10, 64)
	if due == 0 || at["delayed"] < due || d.Attempt != 1 {
		t.Fatalf("delayed message received at %d, due %d: %+v", at["delayed"], due, d)
	}
	if x.Attempt != 2 || at["leased"] < first[0].LeaseExpiresAt+100 {
		t.Fatalf("leased message back at %d as attempt %d; its lease ran to %d (+100 backoff)", at["leased"], x.Attempt, first[0].LeaseExpiresAt)
	}
	if code := e2eAck(t, u, first[0].Receipt); code != "lease_lost" {
		t.Fatalf("ack with the pre-crash receipt: %s", code)
	}
	for _, m := range []e2eMsg{d, x} {
		if code := e2eAck(t, u, m.Receipt); code != "ok" {
			t.Fatalf("ack %s: %s", m.Value, code)
		}
	}
	var st struct {
		Stats struct {
			Delivered int64 `json:"delivered"`
			Acked     int64 `json:"acked"`
			Expired   int64 `json:"expired"`
			Backlog   int64 `json:"backlog"`
		} `json:"stats"`
	}
	tu.Do(t, "GET", u+"/v1/topics/kq/subscriptions/s", nil).JSON(t, &st)
	if st.Stats.Delivered != 3 || st.Stats.Acked != 2 || st.Stats.Expired != 1 || st.Stats.Backlog != 0 {
		t.Fatalf("counts after kill -9: %+v", st.Stats)
	}
}

// TestQueueCLI drives `weir sub` and `weir dlq` against a running binary.
func TestQueueCLI(t *testing.T) {
	p := tu.StartWeir(t, tu.FreeAddr(t), "--data-dir", t.TempDir(), "--raft-addr", tu.FreeAddr(t), "--log-level", "warn")
	run, must := weirCLI(t, p.URL()) // cli_test.go
	must("topic", "create", "cq")
	out := must("sub", "create", "cq", "w", "--visibility-timeout", "5s", "--max-attempts", "2",
		"--dead-letter-topic", "cq-dlq", "--backoff-initial", "10ms", "--backoff-max", "10ms")
	if !strings.Contains(out, `"dead_letter_topic": "cq-dlq"`) || !strings.Contains(out, `"max_attempts": 2`) {
		t.Fatalf("sub create: %s", out)
	}
	if out, err := run("sub", "create", "cq", "w"); err == nil || !strings.Contains(out, "subscription_exists") {
		t.Fatalf("duplicate create: %v %s", err, out)
	}
	if out := must("sub", "list"); !strings.Contains(out, "cq") || !strings.Contains(out, "cq-dlq") {
		t.Fatalf("sub list: %s", out)
	}
	must("produce", "cq", "--key", "k", "hello")
	must("produce", "cq", "bad")
	lines := strings.Split(strings.TrimSpace(must("sub", "receive", "cq", "w", "--max", "10", "--wait", "5s")), "\n")
	if len(lines) != 2 {
		t.Fatalf("sub receive: %q", lines)
	}
	var bad e2eMsg
	for _, l := range lines {
		var m e2eMsg
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("receive line %q: %v", l, err)
		}
		if m.Value == "bad" {
			bad = m
		} else {
			must("sub", "ack", "cq", "w", m.Receipt)
		}
	}
	must("sub", "extend", "cq", "w", bad.Receipt, "--visibility-timeout", "10s")
	must("sub", "nack", "cq", "w", bad.Receipt, "--error", "cannot parse", "--delay", "0s")
	// Second and last attempt: nack again, and it is dead-lettered.
	var again e2eMsg
	json.Unmarshal([]byte(strings.TrimSpace(must("sub", "receive", "cq", "w", "--wait", "5s"))), &again)
	if again.Value != "bad" || again.Attempt != 2 {
		t.Fatalf("redelivery: %+v", again)
	}
	must("sub", "nack", "cq", "w", again.Receipt, "--error", "still cannot parse")
	if out, err := run("sub", "nack", "cq", "w", again.Receipt); err == nil || !strings.Contains(out, "lease_lost") {
		t.Fatalf("a second nack of the same receipt: %v %s", err, out)
	}
	tu.Eventually(t, 20*time.Second, "the message in the dead-letter topic", func() bool {
		out, err := run("dlq", "list", "cq-dlq")
		return err == nil && strings.Contains(out, "still cannot parse") && strings.Contains(out, "cq/0@1")
	})
	if out := must("dlq", "list"); !strings.Contains(out, "cq-dlq") {
		t.Fatalf("dlq list: %s", out)
	}
	if out := must("dlq", "redrive", "--from", "cq-dlq", "--to", "cq"); !strings.Contains(out, "redriven 1 ") {
		t.Fatalf("dlq redrive: %s", out)
	}
	if out := must("sub", "receive", "cq", "w", "--wait", "5s", "--ack"); !strings.Contains(out, `"value":"bad"`) || !strings.Contains(out, `"attempt":1`) {
		t.Fatalf("receive the redriven message: %s", out)
	}
	if out := must("sub", "describe", "cq", "w"); !strings.Contains(out, `"dead_lettered": 1`) {
		t.Fatalf("sub describe: %s", out)
	}
	must("sub", "delete", "cq", "w")
	if out, err := run("sub", "describe", "cq", "w"); err == nil || !strings.Contains(out, "subscription_not_found") {
		t.Fatalf("describe after delete: %v %s", err, out)
	}
	for _, args := range [][]string{{"sub"}, {"sub", "receive"}, {"dlq"}, {"dlq", "redrive"}, {"bench", "queue"}} {
		out, err := exec.Command(tu.WeirBinary(t), append(args, "--help")...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage:") {
			t.Fatalf("%v --help: %v %s", args, err, out)
		}
	}
}

// TestQueuePriorityAcrossKill9 kills the broker (SIGKILL) after a priority
// subscription indexed a topic of mixed priorities and leased the first
// two messages: after the restart the rest still comes highest priority
// first (the index is rebuilt from the replicated state), records
// produced after the restart take their place by priority, and the
// leased messages stay leased.
func TestQueuePriorityAcrossKill9(t *testing.T) {
	dir := t.TempDir()
	p := tu.StartWeir(t, tu.FreeAddr(t), "--data-dir", dir, "--raft-addr", tu.FreeAddr(t), "--log-level", "warn")
	u := p.URL()
	if r := tu.Do(t, "POST", u+"/v1/topics", map[string]any{"name": "kq", "partitions": 1}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", u+"/v1/topics/kq/subscriptions", map[string]any{"name": "s", "priority": true, "visibility_timeout_ms": 600000}); r.Status != 201 {
		t.Fatalf("create subscription: %d %s", r.Status, r.Body)
	}
	produce := func(vals ...string) {
		t.Helper()
		var recs []any
		for _, v := range vals { // "<name>-<priority>"
			recs = append(recs, map[string]any{"value": v, "headers": map[string]string{"weir-priority": v[len(v)-1:]}})
		}
		if r := tu.Do(t, "POST", u+"/v1/topics/kq/records", map[string]any{"records": recs}); r.Status != 200 {
			t.Fatalf("produce: %d %s", r.Status, r.Body)
		}
	}
	produce("a-0", "b-3", "c-9", "d-1", "e-7", "f-3", "g-9", "h-0")
	first := e2eReceive(t, u, map[string]any{"max_records": 2})
	if len(first) != 2 || first[0].Value != "c-9" || first[1].Value != "g-9" {
		t.Fatalf("before the kill: %+v", first)
	}
	p.Kill()
	p.Restart(60 * time.Second)
	e2eWaitServing(t, u)
	produce("i-5", "j-0")
	var got []string
	for range 20 {
		ms := e2eReceive(t, u, map[string]any{"max_records": 1, "wait_ms": 2000})
		if len(ms) == 0 {
			break
		}
		got = append(got, ms[0].Value)
		if code := e2eAck(t, u, ms[0].Receipt); code != "ok" {
			t.Fatalf("ack %s: %s", ms[0].Value, code)
		}
	}
	want := "[e-7 i-5 b-3 f-3 d-1 a-0 h-0 j-0]"
	if s := fmt.Sprint(got); s != want {
		t.Fatalf("after kill -9 and restart: %s, want %s (the leased c-9, g-9 stay leased)", s, want)
	}
	for _, m := range first {
		if code := e2eAck(t, u, m.Receipt); code != "ok" {
			t.Fatalf("ack of the pre-crash lease %s: %s", m.Value, code)
		}
	}
}
