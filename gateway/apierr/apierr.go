package apierr

import (
	"context"
	"errors"
	"net/http"

	"github.com/weir-broker/weir/core"
)

// Errors the gateway itself raises (no domain sentinel stands for them).
var (
	ErrNotFound         = errors.New("no such endpoint")
	ErrMethodNotAllowed = errors.New("method not allowed")
	ErrUnsupportedMedia = errors.New("unsupported media type")
)

// entry is a row of the table.
type entry struct {
	err    error
	status int
	code   string
}

// table maps errors to API codes and HTTP statuses (docs/api.md "Errors"),
// matched in order with errors.Is. A code may appear on several rows; its
// first row is its canonical error, the one Decode returns. The table is
// never modified.
var table = []entry{
	{ErrNotFound, http.StatusNotFound, "not_found"},
	{ErrMethodNotAllowed, http.StatusMethodNotAllowed, "method_not_allowed"},
	{ErrUnsupportedMedia, http.StatusUnsupportedMediaType, "unsupported_media_type"},

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
	{core.ErrMirrorTopic, http.StatusConflict, "mirror_topic"},
	{core.ErrLinkNotFound, http.StatusNotFound, "link_not_found"},
	{core.ErrLinkExists, http.StatusConflict, "link_exists"},
	{core.ErrBaseOffset, http.StatusConflict, "base_offset_mismatch"},
	{core.ErrQuotaNotFound, http.StatusNotFound, "not_found"}, // the code of ErrNotFound: Decode returns that
	{core.ErrNotLeader, http.StatusServiceUnavailable, "not_leader"},
	{core.ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, "unavailable"},
	{context.Canceled, http.StatusServiceUnavailable, "unavailable"},
}

// Internal is the code of an error the table does not know (HTTP 500).
const Internal = "internal"

// StatusError is an error with an explicit HTTP status and API code, for
// errors that have no domain sentinel (a 429 too_many_subscriptions, a 426
// upgrade_required). Decode also returns one: then Err is the domain error
// of the code (it unwraps to it) and Msg the answer's message.
type StatusError struct {
	Status int
	Code   string
	Msg    string
	Err    error // optional: the domain error it stands for
}

func (e *StatusError) Error() string { return e.Msg }

// Unwrap returns the domain error the answer stood for, if any.
func (e *StatusError) Unwrap() error { return e.Err }

// Status returns the HTTP status and API code err answers with: a
// StatusError's own, else the table's first row err matches (errors.Is),
// else 500 "internal".
func Status(err error) (status int, code string) {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status, se.Code
	}
	for i := range table {
		if errors.Is(err, table[i].err) {
			return table[i].status, table[i].code
		}
	}
	return http.StatusInternalServerError, Internal
}
