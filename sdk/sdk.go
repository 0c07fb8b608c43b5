// Package sdk carries the sources of Weir's guest SDKs (Go, Rust,
// AssemblyScript) and of the starter projects that `weir transform init`
// writes, so that the weir binary can lay a project's SDK out locally: a Go
// project then resolves this module through a replace directive to that
// copy, with no network beyond the Go module proxy.
//
// Nothing here is needed to write a transform: import sdk/transform (Go),
// or use the sdk/rust crate or the sdk/ts package.
package sdk

import (
	"embed"
	"io/fs"
)

// The guest SDKs and the templates, without tests' build output or
// node_modules. The Go SDK is go.mod, abi/ and transform/.
//
//go:embed go.mod abi/*.go transform/*.go transform/transformtest/*.go
//go:embed rust/src/*.rs
//go:embed ts/package.json ts/package-lock.json ts/assembly/*.ts ts/test/run.mjs
//go:embed template/go/*.go template/rust/src/*.rs template/ts/assembly/*.ts
var files embed.FS

// Files returns the embedded sources, rooted at this module's directory
// (paths like "transform/transform.go", "rust/src/lib.rs",
// "template/ts/assembly/index.ts").
func Files() fs.FS { return files }
