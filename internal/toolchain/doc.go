// Package toolchain creates, builds and tests transform projects in Go, Rust
// and AssemblyScript: what `weir transform init`, `build` and `deploy` run.
//
// A project is a directory with the language's usual layout (go.mod and
// main.go; src/lib.rs; assembly/index.ts with package.json) plus .weir/:
// project.json (language, name, the ABI version of its SDK) and sdk/<lang>,
// a copy of the guest SDK taken from the weir binary (package sdk embeds
// it). A Go project's go.mod replaces the SDK module with that copy, so it
// builds with no network; Rust builds the copy with rustc into an rlib
// (no cargo, no registry); AssemblyScript resolves "weir-transform/…"
// imports to it through asc --path.
//
// Tools come from PATH: go; a rustc whose sysroot has the wasm32-wasi (or
// wasm32-wasip1) standard library (WEIR_RUSTC, then rustc, then
// /usr/bin/rustc: Debian's rustc with libstd-rust-dev-wasm32); node, with
// assemblyscript from the project's node_modules (npm ci installs the
// pinned version when it is missing). A missing tool is an error wrapping
// ErrToolMissing that says what to install.
package toolchain
