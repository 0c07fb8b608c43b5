// Package transform is the Go SDK for writing Weir transforms: WebAssembly
// modules that the broker runs between topics.
//
// A transform is a main package that registers one handler in init (a
// WebAssembly reactor built with -buildmode=c-shared never runs main):
//
//	package main
//
//	import "github.com/weir-broker/weir/sdk/transform"
//
//	func init() { transform.OnRecord(upper) }
//
//	func main() {}
//
//	func upper(r transform.Record, ctx *transform.Context) error {
//		r.Value = bytes.ToUpper(r.Value)
//		return ctx.Emit(r)
//	}
//
// Build it with the standard toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o upper.wasm .
//
// The broker calls the module once per batch of input records. OnRecord
// handlers are called once per record of the batch, in order; OnBatch
// handlers see the whole batch. A handler emits zero or more records to the
// pipeline's outputs (Context.Emit, Context.EmitTo), reads and writes keyed
// state (Context.State), reads the pipeline's config (Context.Config), and may
// reject an input record to the dead-letter topic (Context.DeadLetter).
//
// A handler that returns an error fails the whole batch: nothing it emitted or
// wrote takes effect, and the broker retries the batch with backoff before
// dead-lettering it. State writes of a batch become visible to later batches
// only when the batch succeeds; with an exactly-once pipeline they are
// committed atomically with the outputs.
//
// Time: OnWindows aggregates records in event-time windows (tumbling,
// hopping, session); EventTime and OnTimer give an OnRecord module a
// per-partition watermark (the largest event time seen minus the allowed
// lateness, moving on with processing time on an idle partition), late
// record routing and timers. The broker calls the module on idle
// partitions (ticks) so windows close and timers fire without new input.
// The watermark, timers and windows are keyed state: an exactly-once
// pipeline commits them with its outputs (docs/transforms.md, "Time").
//
// The clock and randomness come from the host (Context.Now, Context.Random);
// there is no filesystem or network.
//
// Memory: the slices of a Record passed to a handler alias a buffer that the
// next batch overwrites. Copy anything kept across batches (state is the
// place for that).
//
// Testing: on the host (plain go test) the package builds against a stub;
// sdk/transform/transformtest runs handlers against in-memory state and
// config. The wire format is documented in sdk/abi and docs/abi.md.
package transform
