// Command guest is a test-only transform driven by its input: each record's
// value is a command. It exercises every host function and misbehaves on
// request (loops, exhausts memory, panics).
package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/weir-broker/weir/sdk/transform"
)

func init() { transform.OnRecord(handle) }

func main() {}

var keep [][]byte

func handle(r transform.Record, ctx *transform.Context) error {
	cmd, arg, _ := strings.Cut(string(r.Value), " ")
	emit := func(s string) error { return ctx.Emit(transform.Record{Key: r.Key, Value: []byte(s)}) }
	switch cmd {
	case "loop":
		for {
		}
	case "hog":
		for {
			keep = append(keep, make([]byte, 1<<20))
		}
	case "panic":
		panic("asked to")
	case "error":
		return errors.New("asked to fail")
	case "put":
		k, v, _ := strings.Cut(arg, "=")
		return ctx.State().Put(k, []byte(v))
	case "get":
		v, ok := ctx.State().Get(arg)
		if !ok {
			return emit("<none>")
		}
		return emit(string(v))
	case "del":
		return ctx.State().Delete(arg)
	case "emitto":
		return ctx.EmitTo(arg, r)
	case "big":
		n, _ := strconv.Atoi(arg)
		return emit(strings.Repeat("x", n))
	case "dead":
		return ctx.DeadLetter(arg)
	case "cfg":
		v, ok := ctx.LookupConfig(arg)
		return emit(fmt.Sprintf("%s/%v", v, ok))
	case "now":
		return emit(strconv.FormatInt(ctx.Now().UnixNano(), 10))
	case "rand":
		var b [8]byte
		ctx.Random(b[:])
		return emit(hex.EncodeToString(b[:]))
	case "log":
		ctx.Log(arg)
		return nil
	case "print":
		fmt.Println(arg)
		return nil
	case "where":
		return emit(fmt.Sprintf("%s/%d/%s", ctx.Topic(), ctx.Partition(), strings.Join(ctx.Outputs(), ",")))
	}
	return ctx.Emit(r)
}
