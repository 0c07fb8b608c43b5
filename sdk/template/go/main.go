// Command upper is a Weir transform: it upper-cases each record's value and
// sends records with an empty value to the pipeline's dead-letter topic.
//
//	go test                 # run main_test.go on the host
//	weir transform build    # GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared
//
// See docs/transforms.md in the Weir repository.
package main

import (
	"bytes"

	"github.com/weir-broker/weir/sdk/transform"
)

// Register in init: a Wasm reactor (-buildmode=c-shared) never runs main.
func init() { transform.OnRecord(upper) }

func main() {}

func upper(r transform.Record, ctx *transform.Context) error {
	if len(r.Value) == 0 {
		return ctx.DeadLetter("empty value") // to the pipeline's dead-letter topic
	}
	r.Value = bytes.ToUpper(r.Value)
	return ctx.Emit(r) // to the first output
}
