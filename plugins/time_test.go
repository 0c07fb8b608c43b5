package plugins

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
)

// Keys makes countingState a core.StateLister.
func (s *countingState) Keys(prefix, start string, limit int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return mapState(s.m).Keys(prefix, start, limit)
}

// TestStateKeysAndTicks runs ABI version 2's state_keys and weir_tick in
// every isolation: listings page through committed keys merged with the
// batch's writes and deletes, and a tick fires timers with no input.
func TestStateKeysAndTicks(t *testing.T) {
	for _, iso := range isolations {
		t.Run(string(iso), func(t *testing.T) {
			h := newHost(t, Config{Isolation: iso})
			p := newProcessor(t, h, buildWasm(t, "plugins/testdata/timer"), core.ProcessorLimits{})
			st := &countingState{m: map[string][]byte{}}
			for i := range 2500 { // more than one page of the host and of the guest's buffer
				st.m[fmt.Sprintf("k/%04d-%s", i, strings.Repeat("x", 12))] = []byte("v")
			}
			st.m["other"] = []byte("v")
			call := func(tick bool, cmds ...string) *core.ProcessOutput {
				t.Helper()
				out, err := p.Process(context.Background(), &core.ProcessInput{Pipeline: "pl", Topic: "in", Records: recs(cmds...), Outputs: []string{"o"}, State: st, Tick: tick})
				if err != nil {
					t.Fatal(err)
				}
				st.apply(out.State)
				return out
			}
			out := call(false, "keys k/", "del k/0000-xxxxxxxxxxxx", "put k/zz", "put k/0001-a", "keys k/", "keys nothing")
			want := []string{
				"2500 k/0000-xxxxxxxxxxxx k/2499-xxxxxxxxxxxx",
				"2501 k/0001-a k/zz",
				"0  ",
			}
			if got := values(out); !slices.Equal(got, want) {
				t.Fatalf("listings %q, want %q", got, want)
			}
			// Committed: the next batch lists the same.
			if got := values(call(false, "keys k/")); !slices.Equal(got, want[1:2]) {
				t.Fatalf("committed listing %q", got)
			}
			// No timers: a tick is idle.
			if out := call(true); out.Pending || len(out.Records) != 0 {
				t.Fatalf("tick without timers: %+v", out)
			}
			// A far timer keeps ticks pending; a near one fires in a tick.
			if out := call(false, "set far 9000000000000", "set near now+1"); len(out.Records) != 0 {
				t.Fatalf("timers fired in their batch: %q", values(out))
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				out := call(true)
				if !out.Pending {
					t.Fatal("a tick with timers left is not pending")
				}
				if got := values(out); len(got) > 0 {
					if !slices.Equal(got, []string{"fired near"}) {
						t.Fatalf("tick emitted %q", got)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the near timer never fired")
				}
			}
			if out := call(true); len(out.Records) != 0 || !out.Pending {
				t.Fatalf("tick after the fire: %q pending %v", values(out), out.Pending)
			}
		})
	}
}

// A tick of a module without weir_tick (ABI version 1) does nothing; its
// batches declare version 1.
func TestTickWithoutExport(t *testing.T) {
	h := newHost(t, Config{Isolation: IsolationInProcess})
	// weir_process returns the batch's first u32, the version, minus 1.
	body := []byte{0x20, 0x00, 0x28, 0x02, 0x00, 0x41, 0x01, 0x6b}
	p := newProcessor(t, h, wmod{memory: true, funcs: abiFuncs(body)}.bytes(), core.ProcessorLimits{})
	if _, err := p.Process(context.Background(), &core.ProcessInput{Outputs: []string{"o"}, Records: recs("x")}); err != nil {
		t.Fatalf("a version 1 guest got another version: %v", err)
	}
	out, err := p.Process(context.Background(), &core.ProcessInput{Outputs: []string{"o"}, Tick: true})
	if err != nil || out.Pending || len(out.Records) != 0 {
		t.Fatalf("tick of a module that takes none: %+v %v", out, err)
	}
}
