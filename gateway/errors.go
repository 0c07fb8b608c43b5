package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
)

// apiError is the one table that maps domain errors to API codes and HTTP
// statuses (API.md "Errors").
var apiErrors = []struct {
	err    error
	status int
	code   string
}{
	{core.ErrBadRequest, http.StatusBadRequest, "bad_request"},
	{core.ErrTopicNotFound, http.StatusNotFound, "topic_not_found"},
	{core.ErrTopicExists, http.StatusConflict, "topic_exists"},
	{core.ErrPartitionNotFound, http.StatusNotFound, "partition_not_found"},
	{core.ErrOffsetOutOfRange, http.StatusRequestedRangeNotSatisfiable, "offset_out_of_range"},
	{core.ErrTooLarge, http.StatusRequestEntityTooLarge, "too_large"},
	{core.ErrOutOfOrderSequence, http.StatusConflict, "out_of_order_sequence"},
	{core.ErrRateLimited, http.StatusTooManyRequests, "rate_limited"},
	{core.ErrModuleInvalid, http.StatusBadRequest, "module_invalid"},
	{core.ErrModuleNotFound, http.StatusNotFound, "module_not_found"},
	{core.ErrPipelineNotFound, http.StatusNotFound, "pipeline_not_found"},
	{core.ErrPipelineExists, http.StatusConflict, "pipeline_exists"},
	{core.ErrSubscriptionNotFound, http.StatusNotFound, "subscription_not_found"},
	{core.ErrSubscriptionExists, http.StatusConflict, "subscription_exists"},
	{core.ErrInvalidReceipt, http.StatusBadRequest, "invalid_receipt"},
	{core.ErrLeaseLost, http.StatusConflict, "lease_lost"},
	{core.ErrGroupNotFound, http.StatusNotFound, "group_not_found"},
	{core.ErrUnknownMember, http.StatusNotFound, "unknown_member"},
	{core.ErrStaleGeneration, http.StatusConflict, "stale_generation"},
	{core.ErrNotAssigned, http.StatusConflict, "not_assigned"},
	{core.ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
	{core.ErrForbidden, http.StatusForbidden, "forbidden"},
	{core.ErrPrincipalNotFound, http.StatusNotFound, "principal_not_found"},
	{core.ErrACLNotFound, http.StatusNotFound, "acl_not_found"},
	{core.ErrNotLeader, http.StatusServiceUnavailable, "not_leader"},
	{core.ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, "unavailable"},
	{context.Canceled, http.StatusServiceUnavailable, "unavailable"},
}

// Errors the gateway itself raises.
var (
	errNotFound         = errors.New("no such endpoint")
	errMethodNotAllowed = errors.New("method not allowed")
	errUnsupportedMedia = errors.New("unsupported media type")
)

// StatusError carries an explicit HTTP status and API code; other packages
// of the gateway use it for errors that have no domain sentinel.
type StatusError struct {
	Status int
	Code   string
	Msg    string
}

func (e *StatusError) Error() string { return e.Msg }

// writeError writes {"error":{"code","message"}} with the mapped status.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	status, code := http.StatusInternalServerError, "internal"
	var se *StatusError
	switch {
	case errors.As(err, &se):
		status, code = se.Status, se.Code
	case errors.Is(err, errNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, errMethodNotAllowed):
		status, code = http.StatusMethodNotAllowed, "method_not_allowed"
	case errors.Is(err, errUnsupportedMedia):
		status, code = http.StatusUnsupportedMediaType, "unsupported_media_type"
	default:
		for _, e := range apiErrors {
			if errors.Is(err, e.err) {
				status, code = e.status, e.code
				break
			}
		}
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	b := make([]byte, 0, 128)
	b = append(b, `{"error":{"code":`...)
	b = appendJSONString(b, code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, err.Error())
	b = append(b, '}')
	var re *core.OffsetRangeError
	if errors.As(err, &re) {
		b = append(b, `,"log_start_offset":`...)
		b = strconv.AppendInt(b, re.LogStart, 10)
		b = append(b, `,"high_watermark":`...)
		b = strconv.AppendInt(b, re.HighWatermark, 10)
	}
	// An idempotent producer learns where the partition is: a sequence below
	// expected_sequence was stored already (docs/guarantees.md).
	var sqe *core.SequenceError
	if errors.As(err, &sqe) {
		b = append(b, `,"expected_sequence":`...)
		b = strconv.AppendInt(b, sqe.Expected, 10)
	}
	b = append(b, "}\n"...)
	ctx.Response.Header.SetContentType("application/json")
	ctx.SetStatusCode(status)
	ctx.SetBody(b)
}

// ErrorStatus returns the HTTP status and API code an error maps to; the
// WebSocket protocol uses the same codes.
func ErrorStatus(err error) (int, string) {
	ctx := &fasthttp.RequestCtx{}
	writeError(ctx, err)
	code := "internal"
	for _, e := range apiErrors {
		if errors.Is(err, e.err) {
			code = e.code
			break
		}
	}
	var se *StatusError
	if errors.As(err, &se) {
		code = se.Code
	}
	return ctx.Response.StatusCode(), code
}
