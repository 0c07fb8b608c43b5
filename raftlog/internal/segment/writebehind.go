package segment

import "os"

// writeBehindBytes is how much an Append may leave behind in the page cache
// before the log asks the OS to start writing it to disk (write-behind).
// Without it, the active segment's dirty pages pile up until the next Sync
// (Dragonboat's, before each snapshot), which must then write all of them
// while the state machine's applies wait: a stall every few thousand
// entries, the tail of every produce that waits on it.
const writeBehindBytes = 1 << 20

// WriteBehinder is an optional method of a File: start writing
// [off, off+n) back to storage and return without waiting. It promises
// nothing about durability (only Sync does); an error is reported by the
// next Sync as well, so it may be ignored.
type WriteBehinder interface {
	WriteBehind(off, n int64) error
}

// writeBehind starts writeback of [off, off+n) of f where f supports it:
// a WriteBehinder, or an *os.File on Linux (sync_file_range with
// SYNC_FILE_RANGE_WRITE). Elsewhere it does nothing.
func writeBehind(f File, off, n int64) {
	switch f := f.(type) {
	case WriteBehinder:
		f.WriteBehind(off, n)
	case *os.File:
		osWriteBehind(f, off, n)
	}
}
