package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// guestModule builds a minimal valid guest in WebAssembly bytes: the ABI
// exports, a memory of pages pages, and, when loopStart, a start function
// that loops forever (instantiation never returns).
func guestModule(pages uint32, loopStart bool) []byte {
	uleb := func(v uint32) []byte {
		var b []byte
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v == 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	str := func(s string) []byte { return append(uleb(uint32(len(s))), s...) }
	vec := func(items ...[]byte) []byte {
		b := uleb(uint32(len(items)))
		for _, it := range items {
			b = append(b, it...)
		}
		return b
	}
	section := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, uleb(uint32(len(body)))...), body...)
	}
	code := func(body ...byte) []byte {
		b := append([]byte{0}, body...) // no locals
		b = append(b, 0x0b)
		return append(uleb(uint32(len(b))), b...)
	}
	const i32 = 0x7f
	types := vec(
		[]byte{0x60, 0, 0},                // 0: () -> ()
		[]byte{0x60, 1, i32, 1, i32},      // 1: (i32) -> i32
		[]byte{0x60, 2, i32, i32, 1, i32}, // 2: (i32, i32) -> i32
	)
	funcs := [][]byte{{0}, {1}, {2}}
	codes := [][]byte{
		code(),                 // weir_abi_version_1
		code(0x41, 0x80, 0x20), // weir_alloc: i32.const 4096
		code(0x41, 0),          // weir_process: i32.const 0
	}
	if loopStart {
		funcs = append(funcs, []byte{0})
		codes = append(codes, code(0x03, 0x40, 0x0c, 0, 0x0b)) // loop br 0 end
	}
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	out = append(out, section(1, types)...)
	out = append(out, section(3, vec(funcs...))...)
	out = append(out, section(5, vec(append([]byte{0}, uleb(pages)...)))...)
	out = append(out, section(7, vec(
		append(str("weir_abi_version_1"), 0, 0),
		append(str("weir_alloc"), 0, 1),
		append(str("weir_process"), 0, 2),
		append(str("memory"), 2, 0),
	))...)
	if loopStart {
		out = append(out, section(8, uleb(3))...)
	}
	return append(out, section(10, vec(codes...))...)
}

type pipelineState struct {
	State    string `json:"state"`
	Failed   int64  `json:"failed"`
	Pipeline struct {
		Paused  bool `json:"paused"`
		Failure *struct {
			Error    string `json:"error"`
			Attempts int    `json:"attempts"`
		} `json:"failure"`
	} `json:"pipeline"`
	Partitions []struct {
		Running   bool   `json:"running"`
		Failed    int64  `json:"failed"`
		LastError string `json:"last_error"`
	} `json:"partitions"`
}

// A module whose start function never returns is stopped at the pipeline's
// time limit, each start counts as a failed attempt with backoff, and after
// on_error.max_attempts the pipeline is failed: nothing restarts it, and
// the node stays responsive. Resume clears the failure.
func TestPipelineLoopingStartFails(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "spin-in", 1)
	createTopic(t, u, "spin-out", 1)
	if r := tu.Do(t, "PUT", u+"/v1/modules/spin", guestModule(1, true), "application/wasm"); r.Status != 201 {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	createPipeline(t, u, map[string]any{"name": "spin", "module": "spin", "inputs": []string{"spin-in"}, "outputs": []string{"spin-out"},
		"limits": map[string]any{"batch_timeout_ms": 200}, "on_error": map[string]any{"max_attempts": 2, "initial_backoff_ms": 50}})

	var st pipelineState
	tu.Eventually(t, 90*time.Second, "pipeline spin failed", func() bool {
		st = pipelineState{}
		tu.Do(t, "GET", u+"/v1/pipelines/spin", nil).JSON(t, &st)
		return st.Pipeline.Failure != nil && len(st.Partitions) == 1 && !st.Partitions[0].Running
	})
	f := st.Pipeline.Failure
	if st.Failed < 2 || f.Attempts != 2 || !strings.Contains(f.Error, "module failed to start") || !strings.Contains(f.Error, "_initialize") {
		t.Fatalf("status %+v, failure %+v", st, f)
	}
	if !strings.Contains(st.Partitions[0].LastError, "module failed to start") {
		t.Fatalf("last_error %q", st.Partitions[0].LastError)
	}
	t.Logf("state %q, failed %d, failure %q", st.State, st.Failed, f.Error)

	// The node answers, and records still flow through it.
	createTopic(t, u, "other", 1)
	produce(t, u, "other", map[string]any{"value": "v"})
	if got := readAll(t, u, "other"); len(got) != 1 {
		t.Fatalf("other topic: %v", got)
	}

	// Resume clears the failure and tries again (and fails again).
	var spec struct {
		Failure any `json:"failure"`
	}
	r := tu.Do(t, "POST", u+"/v1/pipelines/spin/resume", nil)
	if r.Status != 200 {
		t.Fatalf("resume: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &spec)
	if spec.Failure != nil {
		t.Fatalf("resume kept the failure: %s", r.Body)
	}
	before := st.Failed
	tu.Eventually(t, 90*time.Second, "pipeline spin failed again", func() bool {
		st = pipelineState{}
		tu.Do(t, "GET", u+"/v1/pipelines/spin", nil).JSON(t, &st)
		return st.Pipeline.Failure != nil && st.Failed >= before+2
	})
}

// Limits out of their documented bounds, and a module whose initial memory
// exceeds the pipeline's memory limit, are refused at creation with 400.
func TestPipelineLimitsValidated(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "lim-in", 1)
	createTopic(t, u, "lim-out", 1)
	if r := tu.Do(t, "PUT", u+"/v1/modules/small", guestModule(1, false), "application/wasm"); r.Status != 201 {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "PUT", u+"/v1/modules/big", guestModule(300, false), "application/wasm"); r.Status != 201 {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	// 4 GiB of initial memory: no pipeline may have that much.
	r := tu.Do(t, "PUT", u+"/v1/modules/huge", guestModule(65536, false), "application/wasm")
	if r.Status != 400 || r.ErrorCode() != "module_invalid" || !strings.Contains(string(r.Body), "initial memory") {
		t.Fatalf("4 GiB module: %d %s", r.Status, r.Body)
	}
	spec := func(module string, extra map[string]any) map[string]any {
		m := map[string]any{"name": "p", "module": module, "inputs": []string{"lim-in"}, "outputs": []string{"lim-out"}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	bigConfig := map[string]string{"k": strings.Repeat("x", 65<<10)}
	for _, c := range []struct {
		module string
		extra  map[string]any
		msg    string
	}{
		{"small", map[string]any{"limits": map[string]any{"memory_pages": 65536}}, "memory_pages"},
		{"small", map[string]any{"limits": map[string]any{"batch_timeout_ms": 86400000}}, "batch_timeout_ms"},
		{"small", map[string]any{"limits": map[string]any{"batch_timeout_ms": 1}}, "batch_timeout_ms"},
		{"small", map[string]any{"limits": map[string]any{"max_output_bytes": 1 << 30}}, "max_output_bytes"},
		{"small", map[string]any{"limits": map[string]any{"max_output_bytes": -1}}, "max_output_bytes"},
		{"small", map[string]any{"batch_size": 20000}, "batch_size"},
		{"small", map[string]any{"batch_size": -1}, "batch_size"},
		{"small", map[string]any{"on_error": map[string]any{"max_attempts": 1000}}, "max_attempts"},
		{"small", map[string]any{"on_error": map[string]any{"initial_backoff_ms": -5}}, "backoff"},
		{"small", map[string]any{"on_error": map[string]any{"max_backoff_ms": 86400000}}, "backoff"},
		{"small", map[string]any{"on_error": map[string]any{"initial_backoff_ms": 5000, "max_backoff_ms": 1000}}, "backoff"},
		{"small", map[string]any{"config": bigConfig}, "config"},
		{"big", nil, "initial memory"}, // 300 pages against the default 256
		{"big", map[string]any{"limits": map[string]any{"memory_pages": 299}}, "initial memory"},
	} {
		t.Run(fmt.Sprint(c.module, c.extra)[:min(60, len(fmt.Sprint(c.module, c.extra)))], func(t *testing.T) {
			r := tu.Do(t, "POST", u+"/v1/pipelines", spec(c.module, c.extra))
			if r.Status != 400 || r.ErrorCode() != "bad_request" || !strings.Contains(string(r.Body), c.msg) {
				t.Fatalf("got %d %s, want 400 bad_request mentioning %q", r.Status, r.Body, c.msg)
			}
		})
	}
	// Within bounds, the same modules are accepted.
	createPipeline(t, u, spec("big", map[string]any{"limits": map[string]any{"memory_pages": 300, "batch_timeout_ms": 60000, "max_output_bytes": 32 << 20}}))
}
