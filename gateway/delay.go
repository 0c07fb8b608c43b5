package gateway

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// maxDelay bounds delay_ms and how far deliver_at may lie ahead.
const maxDelay = 366 * 24 * time.Hour

// withDeliverAt adds the core.HeaderDeliverAt header for a produce record's
// "deliver_at" (ms since the epoch) or "delay_ms" (from now, by this
// node's clock). A record may carry one of them, not both.
func withDeliverAt(hs []core.Header, deliverAt, delayMs *int64) ([]core.Header, error) {
	now := time.Now().UnixMilli()
	var at int64
	switch {
	case deliverAt != nil && delayMs != nil:
		return hs, core.Invalidf("give deliver_at or delay_ms, not both")
	case deliverAt != nil:
		at = *deliverAt
		if at < 0 || at > now+maxDelay.Milliseconds() {
			return hs, core.Invalidf("deliver_at must be milliseconds since the epoch, at most %d days ahead", int(maxDelay.Hours()/24))
		}
	default:
		if *delayMs < 0 || *delayMs > maxDelay.Milliseconds() {
			return hs, core.Invalidf("delay_ms must be between 0 and %d", maxDelay.Milliseconds())
		}
		at = now + *delayMs
	}
	for _, h := range hs {
		if h.Key == core.HeaderDeliverAt {
			return hs, core.Invalidf("give deliver_at or delay_ms, or the %s header, not both", core.HeaderDeliverAt)
		}
	}
	return append(hs, core.Header{Key: core.HeaderDeliverAt, Value: strconv.FormatInt(at, 10)}), nil
}

// deliverAtArgs applies ?deliver_at= or ?delay_ms= of a raw-body produce.
func deliverAtArgs(q *fasthttp.Args, r *core.Record) error {
	if !q.Has("deliver_at") && !q.Has("delay_ms") {
		return nil
	}
	num := func(name string) (*int64, error) {
		if !q.Has(name) {
			return nil, nil
		}
		v, err := strconv.ParseInt(string(q.Peek(name)), 10, 64)
		if err != nil {
			return nil, core.Invalidf("%s must be a number of milliseconds", name)
		}
		return &v, nil
	}
	at, err := num("deliver_at")
	if err != nil {
		return err
	}
	delay, err := num("delay_ms")
	if err != nil {
		return err
	}
	r.Headers, err = withDeliverAt(r.Headers, at, delay)
	return err
}
