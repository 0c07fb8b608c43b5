//go:build chaos && linux

package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// The faults the chaos run injects through a node's test-fault mode
// (weir serve --test-faults, internal/server/testfaults.go): power loss,
// in-process crashes, clock skew, a full or failing disk.

// controlAddr is node's --test-faults address.
func (c *cluster) controlAddr(node int) string {
	args := c.procs[node-1].Args
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--test-faults" {
			return args[i+1]
		}
	}
	c.t.Fatalf("node %d has no --test-faults", node)
	return ""
}

// faultCtl sends requests to the nodes' fault-control listeners (inside
// each node's network namespace when the cluster has them).
type faultCtl struct {
	c       *cluster
	clients []*http.Client
}

func newFaultCtl(c *cluster, n *chaosNet) *faultCtl {
	f := &faultCtl{c: c}
	for node := 1; node <= len(c.procs); node++ {
		tr := &http.Transport{DisableKeepAlives: true}
		if n != nil {
			tr.DialContext = n.dial(node)
		}
		f.clients = append(f.clients, &http.Client{Transport: tr, Timeout: 90 * time.Second})
	}
	return f
}

// post sends POST path to node's control listener; 204 is success.
func (f *faultCtl) post(node int, path string) error {
	req, err := http.NewRequestWithContext(context.Background(), "POST", "http://"+f.c.controlAddr(node)+path, nil)
	if err != nil {
		return err
	}
	resp, err := f.clients[node-1].Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST %s on node %d: HTTP %d", path, node, resp.StatusCode)
	}
	return nil
}

// each runs path on every node at once and returns the first error.
func (f *faultCtl) each(path string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(f.c.procs))
	for i := range f.c.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f.post(i+1, path)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// powerLossAll cuts the power of every node at once: every node's fsyncs
// stop and its gateway closes (the instant); only when all of them have,
// each closes and drops what no fsync made durable; only when all of them
// have, they start again.
func (f *faultCtl) powerLossAll() error {
	for _, step := range []string{"/freeze", "/power-off", "/power-on"} {
		if err := f.each(step); err != nil {
			return err
		}
	}
	return nil
}

// reviveDead starts again every node whose process has exited (a disk
// error makes Dragonboat stop the process), as after a kill.
func reviveDead(c *cluster, restart func(int)) {
	for i, p := range c.procs {
		if !p.Alive() {
			fmt.Printf("chaos: node %d had exited (%s): restarted\n", i+1, lastLine(p))
			restart(i + 1)
			p.WaitReady(90 * time.Second)
		}
	}
}

// lastLine is the first panic or fatal line of a process's output, if any.
func lastLine(p *tu.Proc) string {
	out := p.Output()
	for _, marker := range []string{"panic:", "fatal error:"} {
		if i := strings.Index(out, marker); i >= 0 {
			end := i + 160
			if end > len(out) {
				end = len(out)
			}
			s := out[i:end]
			if j := strings.Index(s, "\n"); j >= 0 {
				s = s[:j]
			}
			return s
		}
	}
	return "no panic in its output"
}
