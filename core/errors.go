package core

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors callers branch on. Each maps to an API error code and
// HTTP status in one table (gateway/apierr), which the public API and
// node-to-node calls share.
var (
	ErrBadRequest         = errors.New("bad request")
	ErrTopicNotFound      = errors.New("topic not found")
	ErrTopicExists        = errors.New("topic exists")
	ErrPartitionNotFound  = errors.New("partition not found")
	ErrOffsetOutOfRange   = errors.New("offset out of range")
	ErrTooLarge           = errors.New("too large")
	ErrOutOfOrderSequence = errors.New("out of order sequence")
	ErrUnavailable        = errors.New("unavailable")
	ErrNotLeader          = errors.New("not leader")
	ErrRateLimited        = errors.New("rate limited")

	// Queue model (subscriptions).
	ErrSubscriptionNotFound = errors.New("subscription not found")
	ErrSubscriptionExists   = errors.New("subscription exists")
	ErrInvalidReceipt       = errors.New("invalid receipt")
	ErrLeaseLost            = errors.New("lease lost")

	// Consumer groups (stream model).
	ErrGroupNotFound   = errors.New("group not found")
	ErrUnknownMember   = errors.New("unknown member")
	ErrStaleGeneration = errors.New("stale generation")
	ErrNotAssigned     = errors.New("partition not assigned")

	// Security (core/auth, docs/security.md).
	ErrUnauthenticated   = errors.New("unauthenticated")
	ErrForbidden         = errors.New("forbidden")
	ErrPrincipalNotFound = errors.New("principal not found")
	ErrACLNotFound       = errors.New("acl not found")

	// Quotas (core/quota, docs/quotas.md).
	ErrQuotaNotFound = errors.New("quota not found")
)

// ErrCorrupt is a stored record (pipeline metadata, an outbox entry, a
// security catalog record) that does not decode. Weir never guesses its
// content: what depends on it stops and says so (a pipeline fails, a
// token or principal is refused). It has no row in the API error table:
// a request that meets it answers 500 "internal".
var ErrCorrupt = errors.New("corrupt stored record")

// InvalidError says why a request is malformed. It wraps ErrBadRequest.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }
func (e *InvalidError) Unwrap() error { return ErrBadRequest }

// Invalidf returns an *InvalidError with a formatted message.
func Invalidf(format string, args ...any) error {
	return &InvalidError{Msg: fmt.Sprintf(format, args...)}
}

// RecordError says why produce refused a record's content (a reserved
// header with a value it cannot take). It wraps ErrBadRequest (HTTP 400
// bad_request); the Kafka listener answers INVALID_RECORD.
type RecordError struct{ Msg string }

func (e *RecordError) Error() string { return e.Msg }
func (e *RecordError) Unwrap() error { return ErrBadRequest }

// OffsetRangeError is returned by reads outside [LogStart, HighWatermark].
// It wraps ErrOffsetOutOfRange.
type OffsetRangeError struct {
	Offset        int64
	LogStart      int64
	HighWatermark int64
}

func (e *OffsetRangeError) Error() string {
	return fmt.Sprintf("offset %d is outside the log [%d, %d]", e.Offset, e.LogStart, e.HighWatermark)
}
func (e *OffsetRangeError) Unwrap() error { return ErrOffsetOutOfRange }

// SequenceError is returned when an idempotent producer skips sequence numbers.
type SequenceError struct {
	ProducerID string
	Expected   int64
	Got        int64
}

func (e *SequenceError) Error() string {
	return fmt.Sprintf("producer %q: expected sequence %d, got %d", e.ProducerID, e.Expected, e.Got)
}
func (e *SequenceError) Unwrap() error { return ErrOutOfOrderSequence }

// StaleGenerationError refuses a group member's request made in a
// generation that is no longer current. It wraps ErrStaleGeneration.
type StaleGenerationError struct {
	Group      string
	Generation int64 // the generation of the request
	Current    int64
}

func (e *StaleGenerationError) Error() string {
	return fmt.Sprintf("group %q rebalanced: generation %d is stale, the current generation is %d", e.Group, e.Generation, e.Current)
}
func (e *StaleGenerationError) Unwrap() error { return ErrStaleGeneration }

// RateLimitError refuses a request over a quota (core/quota): RetryAfter
// is when a retry can be admitted at the earliest. It wraps
// ErrRateLimited; the gateway answers it 429 with Retry-After.
type RateLimitError struct {
	Msg        string
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string { return e.Msg }
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, at least 1
// (the HTTP Retry-After header's unit).
func (e *RateLimitError) RetryAfterSeconds() int64 {
	s := int64((e.RetryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}
