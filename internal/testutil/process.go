package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// WeirBinary builds cmd/weir once per test process and returns its path.
func WeirBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
		if err != nil {
			buildErr = fmt.Errorf("find module root: %w", err)
			return
		}
		root := strings.TrimSpace(string(out))
		dir, err := os.MkdirTemp("", "weir-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "weir")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/weir")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, b)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Proc is a `weir serve` process.
type Proc struct {
	t        testing.TB
	Args     []string
	HTTPAddr string
	cmd      *exec.Cmd
	out      *lockedBuffer
	done     chan struct{}
}

// lockedBuffer is the process's output: written by exec's copying
// goroutines while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartWeir starts `weir serve` with the given flags (which must include
// --http-addr) and waits until /readyz answers 200.
func StartWeir(t testing.TB, httpAddr string, args ...string) *Proc {
	t.Helper()
	// The Kafka listener is off unless args turn it on (a later flag wins):
	// parallel nodes would all want 127.0.0.1:9092.
	p := &Proc{t: t, Args: append([]string{"serve", "--http-addr", httpAddr, "--kafka-addr", ""}, args...), HTTPAddr: httpAddr}
	p.start()
	t.Cleanup(func() { p.Kill() })
	p.WaitReady(60 * time.Second)
	return p
}

func (p *Proc) start() {
	p.t.Helper()
	p.cmd = exec.Command(WeirBinary(p.t), p.Args...)
	p.out = &lockedBuffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.done) }()
}

// URL is the process's base URL.
func (p *Proc) URL() string { return "http://" + p.HTTPAddr }

// WaitReady polls /readyz until it answers 200.
func (p *Proc) WaitReady(timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, err := TryDo("GET", p.URL()+"/readyz", nil)
		if err == nil && r.Status == 200 {
			return
		}
		select {
		case <-p.done:
			p.t.Fatalf("weir exited before ready: %s", p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("weir not ready after %s: %s", timeout, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to end.
func (p *Proc) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends SIGTERM and waits (up to 30 s, then kills).
func (p *Proc) Stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.Kill()
	}
}

// Restart starts the process again with the same arguments.
func (p *Proc) Restart(timeout time.Duration) {
	p.t.Helper()
	p.start()
	p.WaitReady(timeout)
}

// Output is what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }
