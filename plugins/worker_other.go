//go:build !linux

package plugins

import "os/exec"

// setWorkerAttrs: elsewhere a worker notices the broker's death when its
// stdin closes (between batches).
func setWorkerAttrs(cmd *exec.Cmd) {}
