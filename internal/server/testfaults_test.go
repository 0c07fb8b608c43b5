package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestDiskFaultStopsAcks runs a one-node `weir serve` in the test-fault mode
// on disk, makes its disk full (ENOSPC) or failing (EIO) under acknowledged
// load, and checks: the node stops acknowledging (a produce answers an
// error or no answer: Dragonboat stops a node whose log write fails, so the
// process exits), nothing is acknowledged in vain, and after the fault is
// cleared (or the process started again on its data, as after a kill) every
// acknowledged record is at its offset and produces succeed again.
func TestDiskFaultStopsAcks(t *testing.T) {
	for _, fault := range []string{"full", "eio"} {
		t.Run(fault, func(t *testing.T) {
			t.Parallel()
			ctl := tu.FreeAddr(t)
			p := tu.StartWeir(t, tu.FreeAddr(t), "--node-id", "1", "--raft-addr", tu.FreeAddr(t), "--data-dir", t.TempDir(),
				"--log-level", "error", "--test-faults", ctl, "--test-faults-storage", "disk")
			if r := tu.Do(t, "POST", p.URL()+"/v1/topics", map[string]any{"name": "d", "partitions": 1}); r.Status != 201 {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			acked := map[int64]string{} // offset → value acknowledged there
			produce := func(v string) (int, error) {
				r, err := tu.TryDo("POST", p.URL()+"/v1/topics/d/records", map[string]any{"records": []map[string]any{{"value": v}}})
				if err != nil {
					return 0, err
				}
				if r.Status == 200 {
					var o struct {
						Offsets []struct {
							Offset int64 `json:"offset"`
						} `json:"offsets"`
					}
					if err := json.Unmarshal(r.Body, &o); err != nil || len(o.Offsets) != 1 {
						t.Fatalf("produce answer %s", r.Body)
					}
					acked[o.Offsets[0].Offset] = v
				}
				return r.Status, nil
			}
			for i := range 30 {
				if st, err := produce(fmt.Sprintf("before-%d", i)); err != nil || st != 200 {
					t.Fatalf("produce before the fault: %d %v", st, err)
				}
			}
			post := func(path string) error {
				resp, err := http.Post("http://"+ctl+path, "", nil)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					return fmt.Errorf("POST %s: %d", path, resp.StatusCode)
				}
				return nil
			}
			if err := post("/disk?fault=" + fault); err != nil {
				t.Fatal(err)
			}
			// Acks stop: within the deadline a produce answers an error
			// (or nothing). Those that still succeed were acknowledged and
			// are checked below like the others.
			stopped := false
			for i, deadline := 0, time.Now().Add(60*time.Second); time.Now().Before(deadline); i++ {
				if st, err := produce(fmt.Sprintf("during-%d", i)); err != nil || st != 200 {
					stopped = true
					t.Logf("acks stopped after %d produces with the disk %s: status %d, error %v", i, fault, st, err)
					break
				}
			}
			if !stopped {
				t.Fatal("the node kept acknowledging with its disk " + fault)
			}
			if p.Alive() {
				if err := post("/disk?fault=none"); err != nil {
					// The control listener is gone: the process is exiting.
					tu.Eventually(t, 30*time.Second, "the process exits ("+err.Error()+")", func() bool { return !p.Alive() })
				}
			}
			if !p.Alive() {
				t.Logf("the process exited: %s", firstPanic(p.Output()))
				p.Restarted()
			}
			p.WaitReady(90 * time.Second)

			// Recovered: everything acknowledged is there, and produces work.
			tu.Eventually(t, 60*time.Second, "a produce after the fault is cleared", func() bool {
				st, err := produce("after")
				return err == nil && st == 200
			})
			var got []string
			for next := int64(0); ; {
				r := tu.Do(t, "GET", fmt.Sprintf("%s/v1/topics/d/partitions/0/records?offset=%d", p.URL(), next), nil)
				var f struct {
					Records []struct {
						Offset int64  `json:"offset"`
						Value  string `json:"value"`
					} `json:"records"`
				}
				if r.Status != 200 || json.Unmarshal(r.Body, &f) != nil {
					t.Fatalf("read: %d %s", r.Status, r.Body)
				}
				if len(f.Records) == 0 {
					break
				}
				for _, rec := range f.Records {
					got = append(got, rec.Value)
				}
				next = f.Records[len(f.Records)-1].Offset + 1
			}
			for off, v := range acked {
				if off >= int64(len(got)) || got[off] != v {
					t.Errorf("acknowledged %q at offset %d, not found there (%d records)", v, off, len(got))
				}
			}
			if len(acked) < 31 {
				t.Errorf("%d acknowledged records, want at least 31", len(acked))
			}
		})
	}
}

func firstPanic(out string) string {
	if i := strings.Index(out, "panic"); i >= 0 {
		out = out[i:]
	}
	if j := strings.IndexByte(out, '\n'); j >= 0 {
		out = out[:j]
	}
	return out
}

// TestTestFaultsRefused: the test-fault mode refuses --auth and addresses
// off loopback.
func TestTestFaultsRefused(t *testing.T) {
	for name, c := range map[string]struct {
		cfg Config
		tf  TestFaultsConfig
	}{
		"auth":         {Config{HTTPAddr: "127.0.0.1:0", Security: SecurityConfig{Auth: true}}, TestFaultsConfig{Addr: "127.0.0.1:0"}},
		"control addr": {Config{HTTPAddr: "127.0.0.1:0"}, TestFaultsConfig{Addr: "0.0.0.0:0"}},
		"http addr":    {Config{HTTPAddr: ":8080"}, TestFaultsConfig{Addr: "127.0.0.1:0"}},
		"storage":      {Config{HTTPAddr: "127.0.0.1:0"}, TestFaultsConfig{Addr: "127.0.0.1:0", Storage: "tape"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := StartTestFaults(c.cfg, c.tf); err == nil {
				t.Fatal("started")
			}
		})
	}
}
