// Command sessionize is a Weir transform that counts each user's events
// in 10 s tumbling event-time windows (transform.OnWindows). The user is
// the "user" field of a JSON value, {"user":"alice","page":"/"}; a record
// without one (not JSON, no "user", or an empty one) is dead-lettered.
//
// When the partition's watermark reaches a window's end, every user seen
// in it gets one record on the first output, keyed by the user, with
// headers weir-window-start and weir-window-end:
//
//	{"user":"alice","window_start":1764000000000,"window_end":1764000010000,"count":3}
//
// Config (all optional, in milliseconds): size_ms (default 10000),
// lateness_ms (default 0), idle_timeout_ms (default 10000; negative:
// never): a partition idle that long moves its watermark on with
// processing time, so the last window closes without new input. Late
// records go to the dead-letter topic with the reason "late: …".
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/weir-broker/weir/sdk/transform"
)

func init() { transform.OnWindows(setup) }

func main() {}

var errNoUser = errors.New(`sessionize: no "user" in the value`)

func setup(ctx *transform.Context) (transform.Windows, error) {
	size, err := millis(ctx, "size_ms", 10_000)
	if err != nil {
		return transform.Windows{}, err
	}
	lateness, err := millis(ctx, "lateness_ms", 0)
	if err != nil {
		return transform.Windows{}, err
	}
	idle, err := millis(ctx, "idle_timeout_ms", 10_000)
	if err != nil {
		return transform.Windows{}, err
	}
	return transform.Windows{
		Size: size,
		Time: transform.TimeOptions{AllowedLateness: lateness, IdleTimeout: idle},
		Key:  user,
		Add: func(acc []byte, _ transform.Record) ([]byte, error) {
			n, _ := strconv.ParseInt(string(acc), 10, 64) // nil: 0
			return strconv.AppendInt(nil, n+1, 10), nil
		},
		Emit: func(w transform.Window, acc []byte, ctx *transform.Context) error {
			n, err := strconv.ParseInt(string(acc), 10, 64)
			if err != nil {
				return fmt.Errorf("sessionize: corrupt count %q", acc)
			}
			v, err := json.Marshal(struct {
				User  string `json:"user"`
				Start int64  `json:"window_start"`
				End   int64  `json:"window_end"`
				Count int64  `json:"count"`
			}{w.Key, w.Start.UnixMilli(), w.End.UnixMilli(), n})
			if err != nil {
				return err
			}
			return ctx.Emit(w.Record(v))
		},
	}, nil
}

func user(r transform.Record) (string, error) {
	var v struct {
		User string `json:"user"`
	}
	if json.Unmarshal(r.Value, &v) != nil || v.User == "" {
		return "", errNoUser
	}
	return v.User, nil
}

// millis reads config key in milliseconds (def when unset).
func millis(ctx *transform.Context, key string, def int64) (time.Duration, error) {
	n := def
	if s, ok := ctx.LookupConfig(key); ok {
		var err error
		if n, err = strconv.ParseInt(s, 10, 64); err != nil {
			return 0, fmt.Errorf("sessionize: config.%s must be an integer (milliseconds), got %q", key, s)
		}
	}
	return time.Duration(n) * time.Millisecond, nil
}
