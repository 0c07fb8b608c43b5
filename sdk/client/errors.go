package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Code is an API error code (docs/api.md "Errors"). A Code is an error, so
// callers branch with errors.Is:
//
//	if errors.Is(err, client.CodeTopicNotFound) { … }
type Code string

func (c Code) Error() string { return string(c) }

// The codes callers usually branch on; every code of docs/api.md works
// the same way as Code("…").
const (
	CodeBadRequest           Code = "bad_request"
	CodeUnauthenticated      Code = "unauthenticated"
	CodeForbidden            Code = "forbidden"
	CodeNotFound             Code = "not_found"
	CodeTopicNotFound        Code = "topic_not_found"
	CodePartitionNotFound    Code = "partition_not_found"
	CodeTopicExists          Code = "topic_exists"
	CodeOutOfOrderSequence   Code = "out_of_order_sequence"
	CodeOffsetOutOfRange     Code = "offset_out_of_range"
	CodeTooLarge             Code = "too_large"
	CodeRateLimited          Code = "rate_limited"
	CodeUnavailable          Code = "unavailable"
	CodeNotLeader            Code = "not_leader"
	CodeSubscriptionNotFound Code = "subscription_not_found"
	CodeSubscriptionExists   Code = "subscription_exists"
	CodeGroupNotFound        Code = "group_not_found"
	CodeUnknownMember        Code = "unknown_member"
	CodeStaleGeneration      Code = "stale_generation"
	CodeNotAssigned          Code = "not_assigned"
	CodeModuleNotFound       Code = "module_not_found"
	CodePipelineNotFound     Code = "pipeline_not_found"
	CodePipelineExists       Code = "pipeline_exists"
	CodeLeaseLost            Code = "lease_lost"
	CodeInvalidReceipt       Code = "invalid_receipt"
	CodeMirrorTopic          Code = "mirror_topic" // a produce to a read-only mirror topic (cluster links)
	CodeLinkNotFound         Code = "link_not_found"
	CodeLinkExists           Code = "link_exists"
)

// Error is an error answer of the API: its HTTP status (0 on WebSocket),
// code and message, and the extra members some codes carry.
type Error struct {
	Status  int
	Code    Code
	Message string
	// RetryAfter is the answer's Retry-After (429, 503), 0 without one.
	RetryAfter time.Duration
	// LogStartOffset and HighWatermark come with offset_out_of_range.
	LogStartOffset, HighWatermark int64
	// ExpectedSequence comes with out_of_order_sequence: the sequence the
	// partition expects next from the producer.
	ExpectedSequence int64
	// Generation comes with stale_generation (WebSocket): the current one.
	Generation int64

	partitions []partitionResultJSON // a produce's per-partition results
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Code, e.Message, e.Status)
}

// Is reports whether target is this error's Code.
func (e *Error) Is(target error) bool {
	c, ok := target.(Code)
	return ok && c == e.Code
}

// errorBody is the JSON of an error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		// WebSocket error frames carry these inside "error".
		LogStart      int64 `json:"log_start_offset"`
		HighWatermark int64 `json:"high_watermark"`
		Generation    int64 `json:"generation"`
		// A produce's per-partition results, on WebSocket.
		Partitions []partitionResultJSON `json:"partitions"`
	} `json:"error"`
	LogStart      int64                 `json:"log_start_offset"`
	HighWatermark int64                 `json:"high_watermark"`
	Expected      int64                 `json:"expected_sequence"`
	Partitions    []partitionResultJSON `json:"partitions"`
}

func (b *errorBody) toError(status int) *Error {
	e := &Error{Status: status, Code: Code(b.Error.Code), Message: b.Error.Message,
		LogStartOffset: b.LogStart, HighWatermark: b.HighWatermark, ExpectedSequence: b.Expected, Generation: b.Error.Generation}
	e.partitions = b.Partitions
	if status == 0 {
		e.LogStartOffset, e.HighWatermark = b.Error.LogStart, b.Error.HighWatermark
		e.partitions = b.Error.Partitions
	}
	return e
}

// decodeError turns a non-2xx answer into an *Error.
func decodeError(resp *response) *Error {
	var b errorBody
	var e *Error
	if json.Unmarshal(resp.body, &b) == nil && b.Error.Code != "" {
		e = b.toError(resp.status)
	} else {
		e = &Error{Status: resp.status, Code: Code("http_" + strconv.Itoa(resp.status)), Message: strings.TrimSpace(string(resp.body))}
		if len(e.Message) > 200 {
			e.Message = e.Message[:200]
		}
	}
	if s, err := strconv.Atoi(resp.header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// ErrClosed is returned by calls on a closed Conn or Subscription.
var ErrClosed = errors.New("client: connection closed")
