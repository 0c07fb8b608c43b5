// Package quota bounds what one principal may cost a node: produce bytes
// per second, fetch bytes per second and requests per second
// (docs/quotas.md). It is the one quota layer of every front door: the
// HTTP and WebSocket gateway and the Kafka listener call the same Limiter.
//
// Quotas are stored in the replicated catalog (table "quotas", one JSON
// record per principal, like core/auth's principals and ACLs), so every
// node sees a change at its next request, without a restart. The quota of
// the principal Default applies to every principal that has none of its
// own; a principal's own quota replaces the default entirely. A limit of
// 0 is unlimited.
//
// Enforcement is per node, like Kafka's per-broker quotas: each node keeps
// a token bucket per principal and kind, filled at the quota's rate and
// holding at most Config.Burst of it. A principal that spreads its
// traffic over N nodes can get up to N times its quota.
//
// A front door decodes a request once, then asks the Limiter:
//
//	err := lim.Admit(ctx, principal, origin, quota.Cost{Requests: 1, Produce: bytes})
//
// Admit takes the tokens and returns at once when the buckets hold them;
// when they will within Config.MaxWait it waits that long; otherwise it
// takes nothing and returns a *core.RateLimitError (429 rate_limited with
// Retry-After) so that nothing is half-done. Reads cannot know their size
// beforehand: a Cost with Fetch set waits while the fetch bucket is in
// debt, and the bytes returned are charged afterwards with Charge (as
// Kafka does), delaying the principal's next read. Reserve is Admit
// without the wait, for callers that delay on their own (the Kafka
// listener answers first and then mutes the connection).
//
// Every throttled request (delayed or refused) is counted in the node's
// telemetry (weir_quota_throttled_total{principal,kind}) and recorded in
// the audit log as result "throttled", capped per source like denials.
//
// A nil *Limiter admits everything; a Limiter with no quota stored costs
// an atomic load per request.
package quota
