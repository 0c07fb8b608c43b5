// Command timer is a test-only transform for the ABI's version 2 calls:
// state listings (state_keys) and ticks (weir_tick). Each record's value
// is a command:
//
//	put K        write key K
//	del K        delete key K
//	keys P       emit "n first last" of the keys with prefix P
//	set N MS     set processing-time timer N at MS (Unix ms); "now+D" is the
//	             batch's processing time plus D ms
//
// A timer that fires emits "fired N".
package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/weir-broker/weir/sdk/transform"
)

func init() {
	transform.EventTime(func(*transform.Context) (transform.TimeOptions, error) {
		// Tests number every batch's records from timestamp 1000: nothing
		// is late.
		return transform.TimeOptions{IdleTimeout: -1, AllowedLateness: 1000 * time.Hour}, nil
	})
	transform.OnRecord(handle)
	transform.OnTimer(func(t transform.Timer, ctx *transform.Context) error {
		return ctx.Emit(transform.Record{Value: []byte("fired " + t.Name)})
	})
}

func main() {}

func handle(r transform.Record, ctx *transform.Context) error {
	cmd, arg, _ := strings.Cut(string(r.Value), " ")
	switch cmd {
	case "put":
		return ctx.State().Put(arg, []byte("v"))
	case "del":
		return ctx.State().Delete(arg)
	case "keys":
		var n int
		var first, last string
		for k := range ctx.State().Keys(arg) {
			if n == 0 {
				first = k
			}
			last = k
			n++
		}
		return ctx.Emit(transform.Record{Value: fmt.Appendf(nil, "%d %s %s", n, first, last)})
	case "set":
		name, at, _ := strings.Cut(arg, " ")
		ms, err := strconv.ParseInt(strings.TrimPrefix(at, "now+"), 10, 64)
		if err != nil {
			return err
		}
		if strings.HasPrefix(at, "now+") {
			ms += ctx.ProcessingTime().UnixMilli()
		}
		return ctx.Timers().SetProcessing(name, time.UnixMilli(ms))
	}
	return fmt.Errorf("unknown command %q", cmd)
}
