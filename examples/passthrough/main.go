// Command passthrough is a Weir transform that emits every input record
// unchanged to the pipeline's first output. Benchmarks use it to measure the
// cost of the host-guest boundary.
package main

import "github.com/weir-broker/weir/sdk/transform"

func init() { transform.OnRecord(passthrough) }

func main() {}

// passthrough forwards the record: the host copies it, the guest encodes
// nothing.
func passthrough(r transform.Record, ctx *transform.Context) error { return ctx.Forward() }
