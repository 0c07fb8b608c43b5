package testutil

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// S3Server is a real S3-compatible server for tests: versitygw (a Go S3
// gateway over a directory; .ci/run installs it with `go install
// github.com/versity/versitygw/cmd/versitygw@v1.8.0`), serving a fresh
// directory on a reserved port of 127.0.0.1. Stop and Start it to test an
// object store that goes away; its data stays.
type S3Server struct {
	t         testing.TB
	bin, dir  string
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	cmd       *exec.Cmd
	done      chan struct{}
	out       *lockedBuffer
}

// versitygwPath finds versitygw on PATH or in $GOPATH/bin.
func versitygwPath() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = string(out[:len(out)-1])
		}
	}
	if gopath != "" {
		p := filepath.Join(gopath, "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// StartS3 starts versitygw and waits until it answers. Without versitygw
// the test is skipped, or fails when WEIR_REQUIRE_TOOLCHAINS=1.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	bin := versitygwPath()
	if bin == "" {
		msg := "versitygw is not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0; .ci/run installs it)"
		if os.Getenv(RequireToolchainsEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg + ": skipping the object storage test")
	}
	s := &S3Server{t: t, bin: bin, dir: t.TempDir(), AccessKey: "weirtestkey", SecretKey: "weirtestsecret"}
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// Start runs the server (again) on its port and directory and waits until
// it answers HTTP.
func (s *S3Server) Start() {
	s.t.Helper()
	port := s.Endpoint[len("http://"):]
	s.out = &lockedBuffer{}
	s.cmd = exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", port, "--quiet",
		"posix", "--sidecar", filepath.Join(s.dir, "meta"), filepath.Join(s.dir, "data"))
	os.MkdirAll(filepath.Join(s.dir, "meta"), 0o755)
	os.MkdirAll(filepath.Join(s.dir, "data"), 0o755)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(s.cmd, s.done)
	c := &http.Client{Timeout: time.Second}
	Eventually(s.t, 30*time.Second, "versitygw answers on "+s.Endpoint, func() bool {
		select {
		case <-s.done:
			s.t.Fatalf("versitygw exited: %s", s.out.String())
		default:
		}
		resp, err := c.Get(s.Endpoint + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}

// Stop kills the server and waits for it to exit.
func (s *S3Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}
