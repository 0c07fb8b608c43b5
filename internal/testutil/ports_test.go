package testutil

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ports are unique within a process and outside the ephemeral range; a
// second test process gets other ports (it owns other blocks).
func TestFreePort(t *testing.T) {
	if os.Getenv("WEIR_PORTS_CHILD") == "1" {
		for i := 0; i < 3*portBlock/2; i++ {
			os.Stdout.WriteString(strconv.Itoa(FreePort(t)) + "\n")
		}
		return
	}
	lo, hi := portRange()
	seen := map[int]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < portBlock; i++ {
				p := FreePort(t)
				mu.Lock()
				if seen[p] {
					t.Errorf("port %d handed out twice", p)
				}
				seen[p] = true
				mu.Unlock()
				if p < lo || p >= hi {
					t.Errorf("port %d outside %d–%d", p, lo, hi-1)
				}
			}
		}()
	}
	wg.Wait()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFreePort$")
	cmd.Env = append(os.Environ(), "WEIR_PORTS_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	n := 0
	for _, l := range strings.Fields(string(out)) {
		p, err := strconv.Atoi(l)
		if err != nil {
			continue // PASS and the like
		}
		n++
		if seen[p] {
			t.Fatalf("port %d given to two processes", p)
		}
	}
	if n != 3*portBlock/2 {
		t.Fatalf("child printed %d ports: %s", n, out)
	}
}
