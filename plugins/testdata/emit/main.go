// Command emit is passthrough written with Emit instead of Forward: every
// record is re-encoded by the guest. Benchmarks compare the two.
package main

import "github.com/weir-broker/weir/sdk/transform"

func init() {
	transform.OnRecord(func(r transform.Record, ctx *transform.Context) error { return ctx.Emit(r) })
}

func main() {}
