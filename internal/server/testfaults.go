package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lni/vfs"
)

// The test-fault mode (weir serve --test-faults ADDR, a hidden flag; off by
// default): a node whose filesystem and wall clock a test harness controls,
// for the chaos run (internal/clustertest, docs/guarantees.md). It is not a
// feature: a node in this mode may keep its data in memory only.
//
// The harness drives it over plain HTTP on its own loopback listener,
// outside the gateway's route table (no /v1 path reaches it):
//
//	POST /freeze              every fsync of the node blocks from now on, and
//	                          the gateway stops (the instant of a power cut)
//	POST /power-loss          freeze (if not frozen), close the node, drop every
//	                          write no fsync made durable, start again (mem only)
//	POST /power-off           the same, without starting again; POST /power-on
//	                          starts it
//	POST /crash               close the node and start again keeping every write
//	                          (kill -9 with the page cache intact; mem only)
//	POST /clock?offset=90s    the node's wall clock runs offset (±) from the real one
//	POST /disk?fault=full     writes and fsyncs fail with ENOSPC (eio: EIO;
//	                          none: they work again)
//	GET  /status              {"storage","clock_offset","disk","restarts"}

// TestFaultsConfig turns the test-fault mode on.
type TestFaultsConfig struct {
	// Addr is the control listener's address; it must be a loopback one.
	Addr string
	// Storage is "mem" (a strict in-memory filesystem, vfs.NewStrictMem:
	// power loss and crashes are emulated in-process, and the data dies
	// with the process) or "disk" (the operating system's, under the fault
	// wrapper: disk faults and clock skew only). Default "mem".
	Storage string
}

// TestFaults is a node in the test-fault mode: the Server it runs now
// (replaced by each power loss or crash), its filesystem and its clock.
type TestFaults struct {
	cfg  Config
	tf   TestFaultsConfig
	fs   *faultFS
	mem  *vfs.MemFS // nil with Storage "disk"
	skew atomic.Int64
	ln   net.Listener
	http *http.Server

	mu       sync.Mutex // guards the fields below; held across a restart
	s        *Server
	restarts int
	closed   bool
}

// StartTestFaults starts a node as Start does, in the test-fault mode.
func StartTestFaults(cfg Config, tf TestFaultsConfig) (*TestFaults, error) {
	if tf.Storage == "" {
		tf.Storage = "mem"
	}
	if tf.Storage != "mem" && tf.Storage != "disk" {
		return nil, fmt.Errorf("--test-faults-storage: %q is not mem or disk", tf.Storage)
	}
	if cfg.Security.Auth {
		return nil, errors.New("--test-faults is a test-only mode and is refused with --auth")
	}
	for _, a := range []string{tf.Addr, cfg.HTTPAddr} {
		if !loopbackAddr(a) {
			return nil, fmt.Errorf("--test-faults is a test-only mode: %q is not a loopback address", a)
		}
	}
	f := &TestFaults{cfg: cfg, tf: tf}
	if tf.Storage == "mem" {
		f.mem = vfs.NewStrictMem()
		f.fs = newFaultFS(f.mem)
		if err := f.mem.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, err
		}
		for d := cfg.DataDir; ; d = filepath.Dir(d) { // the data directory exists durably
			if err := syncMemDir(f.mem, d); err != nil {
				return nil, err
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	} else {
		f.fs = newFaultFS(vfs.Default)
	}
	now := func() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) }
	f.cfg.Raft.FS = f.fs
	f.cfg.Groups.Now, f.cfg.Queues.Now, f.cfg.Quotas.Now = now, now, now
	ln, err := net.Listen("tcp", tf.Addr)
	if err != nil {
		return nil, fmt.Errorf("--test-faults: %w", err)
	}
	s, err := Start(f.cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	f.s, f.ln = s, ln
	mux := http.NewServeMux()
	mux.HandleFunc("POST /freeze", f.handleFreeze)
	mux.HandleFunc("POST /power-loss", f.handleRestart(true, true))
	mux.HandleFunc("POST /power-off", f.handleRestart(true, false))
	mux.HandleFunc("POST /power-on", f.handlePowerOn)
	mux.HandleFunc("POST /crash", f.handleRestart(false, true))
	mux.HandleFunc("POST /clock", f.handleClock)
	mux.HandleFunc("POST /disk", f.handleDisk)
	mux.HandleFunc("GET /status", f.handleStatus)
	f.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go f.http.Serve(ln)
	cfg.Logger.Warn("TEST-FAULT MODE: a test harness controls this node's disk and clock (not for production)",
		"control", ln.Addr().String(), "storage", tf.Storage)
	return f, nil
}

// Server is the node running now (a power loss or crash replaces it).
func (f *TestFaults) Server() *Server {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

// Close stops the control listener and the node.
func (f *TestFaults) Close(ctx context.Context) error {
	f.http.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.fs.thaw()
	if f.s == nil {
		return nil
	}
	return f.s.Close(ctx)
}

func (f *TestFaults) handleFreeze(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.freezeLocked(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// freezeLocked is the instant of a power cut: from here no fsync of the
// node completes, so nothing more becomes durable and the node claims
// nothing more durable; then its gateway stops (no answer leaves it).
func (f *TestFaults) freezeLocked(ctx context.Context) error {
	if f.mem == nil {
		return errors.New("power loss needs --test-faults-storage mem")
	}
	if f.s == nil || f.closed {
		return errors.New("the node is not running")
	}
	if f.fs.freeze() {
		f.s.Broker.EndWaits()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		f.s.Gateway.Shutdown(sctx) // bounded; requests still running end with the close
		cancel()
	}
	return nil
}

// handleRestart closes the node and starts it again on its filesystem:
// after a power loss (lose) on what the fsyncs made durable, after a crash
// on every write. With up false it stays down until POST /power-on (so
// that no node of a cluster comes back while another is still losing its
// power).
func (f *TestFaults) handleRestart(lose, up bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.mem == nil {
			http.Error(w, "power loss and crashes need --test-faults-storage mem", http.StatusConflict)
			return
		}
		if f.s == nil || f.closed {
			http.Error(w, "the node is not running", http.StatusConflict)
			return
		}
		if lose {
			if err := f.freezeLocked(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			f.closeFrozenLocked()
			f.mem.ResetToSyncedState()
			f.mem.SetIgnoreSyncs(false)
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			f.s.Close(ctx)
			cancel()
			f.s = nil
		}
		f.fs.setFault(nil)
		if !up {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		f.startLocked(w)
	}
}

// closeFrozenLocked closes a frozen node. Its fsyncs stay blocked until
// its Raft transport is closed (its address can be bound again): a sync
// that returned earlier would let it tell its peers it holds entries it is
// about to lose. Then they return without effect, and the close (which
// waits for them) ends.
func (f *TestFaults) closeFrozenLocked() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		f.s.Close(ctx) // errors of a node losing its power do not matter
		cancel()
	}()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-deadline:
			f.cfg.Logger.Warn("test faults: the Raft transport did not close; releasing the fsyncs anyway")
			break wait
		case <-tick.C:
			if ln, err := net.Listen("tcp", f.cfg.RaftAddr); err == nil {
				ln.Close()
				break wait
			}
		}
	}
	f.mem.SetIgnoreSyncs(true)
	f.fs.thaw()
	<-done
	f.s = nil
}

func (f *TestFaults) handlePowerOn(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.s != nil || f.closed {
		http.Error(w, "the node is running", http.StatusConflict)
		return
	}
	f.startLocked(w)
}

func (f *TestFaults) startLocked(w http.ResponseWriter) {
	f.restarts++
	s, err := Start(f.cfg)
	if err != nil {
		f.cfg.Logger.Error("test faults: the node did not start again", "err", err)
		http.Error(w, "start: "+err.Error(), http.StatusInternalServerError)
		return
	}
	f.s = s
	w.WriteHeader(http.StatusNoContent)
}

func (f *TestFaults) handleClock(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.URL.Query().Get("offset"))
	if err != nil {
		http.Error(w, "offset: "+err.Error(), http.StatusBadRequest)
		return
	}
	f.skew.Store(int64(d))
	w.WriteHeader(http.StatusNoContent)
}

func (f *TestFaults) handleDisk(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Query().Get("fault") {
	case "full":
		f.fs.setFault(syscall.ENOSPC)
	case "eio":
		f.fs.setFault(syscall.EIO)
	case "none":
		f.fs.setFault(nil)
	default:
		http.Error(w, "fault: full, eio or none", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *TestFaults) handleStatus(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	restarts := f.restarts
	f.mu.Unlock()
	disk := "ok"
	if err := f.fs.fault(); err != nil {
		disk = err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"storage": f.tf.Storage, "clock_offset": time.Duration(f.skew.Load()).String(),
		"disk": disk, "restarts": restarts})
}

func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func syncMemDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// faultFS is a vfs.FS whose writes and fsyncs fail with an injected error
// (a full or failing disk) and whose fsyncs block while frozen.
type faultFS struct {
	vfs.FS
	err atomic.Pointer[error]

	mu     sync.Mutex // guards frozen; cond waits on it
	cond   *sync.Cond
	frozen bool
}

func newFaultFS(fs vfs.FS) *faultFS {
	f := &faultFS{FS: fs}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *faultFS) setFault(err error) {
	if err == nil {
		f.err.Store(nil)
		return
	}
	f.err.Store(&err)
}

func (f *faultFS) fault() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// freeze blocks every fsync from now on; it reports whether it froze.
func (f *faultFS) freeze() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.frozen
	f.frozen = true
	return !was
}

func (f *faultFS) thaw() {
	f.mu.Lock()
	f.frozen = false
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *faultFS) waitThawed() {
	f.mu.Lock()
	for f.frozen {
		f.cond.Wait()
	}
	f.mu.Unlock()
}

func (f *faultFS) pathErr(op, name string) error {
	if err := f.fault(); err != nil {
		return &os.PathError{Op: op, Path: name, Err: err}
	}
	return nil
}

func (f *faultFS) wrap(name string, file vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name}, nil
}

func (f *faultFS) Create(name string) (vfs.File, error) {
	if err := f.pathErr("create", name); err != nil {
		return nil, err
	}
	file, err := f.FS.Create(name)
	return f.wrap(name, file, err)
}

func (f *faultFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	file, err := f.FS.Open(name, opts...)
	return f.wrap(name, file, err)
}

func (f *faultFS) OpenDir(name string) (vfs.File, error) {
	file, err := f.FS.OpenDir(name)
	return f.wrap(name, file, err)
}

func (f *faultFS) OpenForAppend(name string) (vfs.File, error) {
	if err := f.pathErr("open", name); err != nil {
		return nil, err
	}
	file, err := f.FS.OpenForAppend(name)
	return f.wrap(name, file, err)
}

func (f *faultFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	if err := f.pathErr("open", newname); err != nil {
		return nil, err
	}
	file, err := f.FS.ReuseForWrite(oldname, newname)
	return f.wrap(newname, file, err)
}

func (f *faultFS) Link(oldname, newname string) error {
	if err := f.pathErr("link", newname); err != nil {
		return err
	}
	return f.FS.Link(oldname, newname)
}

func (f *faultFS) Rename(oldname, newname string) error {
	if err := f.pathErr("rename", newname); err != nil {
		return err
	}
	return f.FS.Rename(oldname, newname)
}

func (f *faultFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := f.pathErr("mkdir", dir); err != nil {
		return err
	}
	return f.FS.MkdirAll(dir, perm)
}

// faultFile is a file of a faultFS.
type faultFile struct {
	vfs.File
	fs   *faultFS
	name string
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.pathErr("write", f.name); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.pathErr("write", f.name); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	f.fs.waitThawed()
	if err := f.fs.pathErr("fsync", f.name); err != nil {
		return err
	}
	return f.File.Sync()
}
