// Package apierr is Weir's one table of API errors: which HTTP status and
// API code each domain error answers with, the JSON body of an error
// answer, and the reverse, decoding such an answer back into an error that
// errors.Is and errors.As the same core sentinel or typed error.
//
// Two protocols share it: the public HTTP API (the gateway, docs/api.md
// "Errors") and the node-to-node protocol (internal/peer), so that an error
// raised on one node reaches the caller on another with the same code,
// status, message and data. It imports only core and the standard library.
//
// Answering (the gateway adds Retry-After and writes the response):
//
//	status, code := apierr.Status(err)
//	body := apierr.AppendBody(nil, code, err) // {"error":{"code","message"}…}\n
//
// Reading an answer (a node-to-node call, a client):
//
//	if resp.Status >= 300 {
//		err := apierr.Decode(resp.Status, body)
//		if errors.Is(err, core.ErrTopicNotFound) { … }
//	}
//
// Every code of the table decodes to its sentinel (a test round-trips each
// one); codes outside it (raised with a StatusError) decode to a
// StatusError with the same status and code, so Status(Decode(answer))
// always reproduces the answer's status and code.
package apierr
