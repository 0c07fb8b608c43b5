// Command count is a Weir transform that keeps a running count of records
// per key in state. For every input record it emits one record to the first
// output with the same key and the new count as a decimal string. Records
// without a key are counted together under the nil key.
//
// The counts live in the pipeline's state, so with an exactly-once pipeline
// they survive leader changes and restarts without double counting.
package main

import (
	"strconv"

	"github.com/weir-broker/weir/sdk/transform"
)

func init() { transform.OnRecord(count) }

func main() {}

func count(r transform.Record, ctx *transform.Context) error {
	key := "c:" + string(r.Key)
	if r.Key == nil {
		key = "n:"
	}
	var n uint64
	if v, ok := ctx.State().Get(key); ok {
		n, _ = strconv.ParseUint(string(v), 10, 64)
	}
	n++
	val := strconv.AppendUint(nil, n, 10)
	if err := ctx.State().Put(key, val); err != nil {
		return err
	}
	return ctx.Emit(transform.Record{Key: r.Key, Value: val, Timestamp: r.Timestamp})
}
