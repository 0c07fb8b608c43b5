// Command countv2 is examples/count's next version, for the upgrade tests:
// it keeps the same per-key counters in state (so an upgrade carries them
// over) but writes "v2:<count>", so a test can tell which module wrote each
// output, and logs one line per record (for the pipeline logs tests).
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
	ctx.Logf("counted %s = %d", r.Key, n)
	return ctx.Emit(transform.Record{Key: r.Key, Value: append([]byte("v2:"), val...), Timestamp: r.Timestamp})
}
