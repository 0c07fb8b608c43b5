//go:build !wasip1

package transform

// On the host there are no Wasm imports: the package builds so that
// transforms unit-test with plain go test, and transformtest supplies a Host
// to Run.
