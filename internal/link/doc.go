// Package link runs cluster links (docs/geo-replication.md): on the
// destination cluster B, each link names a source cluster A, the topics
// to mirror and the consumer groups whose offsets to copy.
//
// A Runner is a long-running service of one node. It is constructed
// inert; Run reconciles until its context ends and returns once every
// goroutine it started has stopped:
//
//	r := link.New(broker, core.NewLinks(host), link.Config{})
//	go r.Run(ctx) // cancel ctx, or r.Close(), to stop; both wait for its pullers
//
// Every node of B reconciles every Interval (and at each metadata
// change): it lists A's topics over A's public API, creates the mirror
// topics a link selects (core.Links.MarkMirror: same partition count and
// retention, marked read-only), and runs one puller per mirror partition
// whose Raft leader it is. A puller fetches A's records in the binary
// format from the mirror's next offset and appends them with
// core.MirrorLog.AppendAt, conditional on that offset: a stale leader, a
// retry after an unknown outcome or a restart never writes a record twice,
// and offsets, keys, headers and timestamps stay A's. When A's log starts
// above the mirror's next offset (retention), the mirror's start moves
// there first (StartAt).
//
// The node leading partition 0 of a link's first mirror topic copies the
// link's group offsets: A's committed offsets, capped at what is mirrored
// and never moving a group backwards on B.
package link
