package plugins

import (
	"os/exec"
	"syscall"
)

// setWorkerAttrs makes the kernel kill a worker when the broker dies.
// (Pdeathsig follows the thread that started the worker; the Go runtime does
// not end threads unless a goroutine exits while locked to one.)
func setWorkerAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
