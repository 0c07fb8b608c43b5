package gateway

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway/apierr"
)

// The one table that maps domain errors to API codes and HTTP statuses
// (docs/api.md "Errors") is apierr's; node-to-node calls (internal/peer)
// answer and decode errors with the same table.

// Errors the gateway itself raises.
var (
	errNotFound         = apierr.ErrNotFound
	errMethodNotAllowed = apierr.ErrMethodNotAllowed
)

// StatusError carries an explicit HTTP status and API code; other packages
// of the gateway use it for errors that have no domain sentinel.
type StatusError = apierr.StatusError

// writeError writes {"error":{"code","message"}} with the mapped status; a
// 503 or 429 says Retry-After: the seconds of a *core.RateLimitError (a
// quota), else 1.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	status, code := apierr.Status(err)
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		var rl *core.RateLimitError
		if errors.As(err, &rl) {
			ctx.Response.Header.Set("Retry-After", strconv.FormatInt(rl.RetryAfterSeconds(), 10))
		} else {
			ctx.Response.Header.Set("Retry-After", "1")
		}
	}
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(status)
	ctx.SetBody(apierr.AppendBody(make([]byte, 0, 128), code, err))
}

// ErrorStatus returns the HTTP status and API code an error maps to; the
// WebSocket protocol uses the same codes.
func ErrorStatus(err error) (int, string) { return apierr.Status(err) }
