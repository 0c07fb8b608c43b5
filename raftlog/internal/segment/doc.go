// Package segment stores the log of one partition as segment files on disk:
// the storage under raftlog's Dragonboat on-disk state machine.
//
// # Use
//
// The state machine opens the log, appends one Batch per applied Raft
// entry, and fsyncs when Dragonboat asks it to:
//
//	l, err := segment.Open(segment.Config{Dir: dir}) // validates and repairs the tail
//	lastApplied := l.LastIndex()                     // what Open should return to Dragonboat
//	err = l.Append(segment.Batch{RaftIndex: e.Index, BaseOffset: l.NextOffset(),
//		Count: n, MaxTimestamp: ts, Payload: records})
//	err = l.Sync() // in IOnDiskStateMachine.Sync
//
// Consumers read from any goroutine, by offset, while appends go on:
//
//	err = l.Read(from, 1<<20, func(b segment.Batch) bool {
//		if b.Count == 0 { return true } // a control batch
//		... // b.Payload stays valid after Read returns; do not modify it
//		return true
//	})
//
// After a restart, state kept outside the log (producer tables) is rebuilt
// with Scan(checkpointIndex, fn). Retention calls DeleteBefore(offset).
// A new or lagging replica gets the whole retained log through
// Capture + Snapshot.WriteTo on the sender and Restore on the receiver.
//
// # Batches and offsets
//
// A record batch has Count > 0 records at offsets [BaseOffset, BaseOffset+Count);
// Kind 0 means plain records and other kinds are the caller's. A control batch
// has Count == 0 and Kind != 0, holds no offset, and sits at the log's next
// offset. Raft indexes strictly increase (with gaps: not every Raft entry
// writes a batch); base offsets never go below NextOffset (gaps are allowed).
//
// # Files
//
// Dir holds one file per segment, named "<base>-<prevIndex>.seg" with both
// numbers zero-padded to 20 digits, where base is the log's NextOffset and
// prevIndex its LastIndex when the segment was created. (The base offset
// alone is not unique: a segment of control batches only does not advance
// the offset.) All integers are little-endian. A file starts with a 32-byte
// header:
//
//	[4]  magic "WSEG"
//	u16  format version (1)
//	u16  flags (0)
//	i64  base offset
//	u64  prevIndex
//	u32  reserved (0)
//	u32  CRC32C of the 28 bytes above
//
// followed by frames, one per batch, each a 37-byte header and the payload:
//
//	u32  length: bytes after the crc field (29 + len(payload))
//	u32  CRC32C (Castagnoli) of the length field and of everything after crc
//	u64  Raft index
//	u8   kind
//	i64  base offset
//	u32  record count
//	i64  max timestamp (ms)
//	...  payload
//
// Because every segment header records NextOffset and LastIndex, both
// survive even when retention has deleted every batch: the active segment is
// then an empty file holding only its header.
//
// # Writing and durability
//
// Append encodes the frame into a reused buffer and writes it with one
// pwrite at the end of the active segment, without fsync. Every
// writeBehindBytes (1 MiB) it asks the OS to start writing the new bytes
// to disk without waiting (write-behind: sync_file_range on Linux), so
// that the fsync of Sync, which Dragonboat calls before each snapshot while
// applies wait, finds at most about that much left to write instead of
// everything since the last one (a stall of every produce in flight).
// Durability still comes only from fsync. When the active
// segment has reached SegmentBytes, the next Append first rolls: it fsyncs
// the full segment, which is sealed from then on, and creates the next one
// through a temporary file that is fsynced and renamed into place, followed
// by an fsync of the directory. So sealed segments are always whole, and a
// crash can only tear the active segment's tail. DeleteBefore unlinks whole
// sealed segments, oldest first, fsyncing the directory after each, so a
// crash never leaves a hole. A failed write that cannot be undone, or a
// failed fsync, makes the log refuse further writes (the page cache can no
// longer be trusted) until it is reopened or restored.
//
// # Recovery
//
// Open reads every segment header and every frame header to rebuild the
// in-memory state: per segment its NextOffset, LastIndex, largest timestamp
// and a sparse index with one entry (offset, Raft index, file position,
// largest timestamp up to the next entry) every IndexIntervalBytes of
// frames; nothing is persisted besides the segments. The active segment is
// validated frame by frame — length within the file, CRC32C, Raft index and
// offset order — and cut (then fsynced) at the first invalid or torn frame:
// what survives is a prefix of what was appended, which is what Dragonboat
// requires of an on-disk state machine. Sealed segments are trusted up to
// their framing: Open checks their frame headers but not the payload CRCs
// (Read and Scan check those on every access, and report ErrCorrupt). A
// sealed segment with bad framing, any damaged segment header, or a gap
// between segments fails Open with ErrCorrupt rather than dropping data from
// the middle of the log. Open never panics on corrupt input.
//
// # Reading
//
// Read finds the segment by base offset and the starting frame by binary
// search in the sparse index, then reads frames with pread into buffers
// sized by the byte budget (at most 1 MiB per call), checking each CRC.
// Readers take a lock only to locate data, never while reading or calling
// back. Each segment is reference counted: a reader or snapshot that holds a
// segment keeps reading it after DeleteBefore or Restore removed its file
// (the file is closed with the last reference). OffsetForTime answers at
// batch granularity from per-segment and per-index-entry timestamp maxima,
// reading frame headers of one index interval at most.
//
// # Snapshot stream
//
// Capture pins the segments and their current lengths; WriteTo streams
//
//	[4]  magic "WSNP"
//	u16  version (1)
//	u16  flags (0)
//	u64  LastIndex
//	i64  NextOffset
//	u32  segment count n (1 to 2^20)
//	n ×  { i64 base, u64 prevIndex, i64 length }
//	u32  CRC32C of the manifest above
//	n ×  { length bytes of the segment file, u32 CRC32C of those bytes }
//
// Restore reads exactly that many bytes. It writes the segments into a
// scratch directory ".<name>.restore-*" next to Dir, validates every frame
// as strictly as a sealed segment plus CRCs, fsyncs the files and the
// directory, and then swaps: Dir is renamed to ".<name>.old", the scratch
// directory to Dir, and the parent directory is fsynced. If a crash falls
// between the two renames, the next Open renames ".<name>.old" back: a crash
// leaves either the old log or the new one, never a mix. Leftover scratch
// directories are removed by Open. A truncated or corrupt stream fails with
// ErrCorrupt and leaves the old log untouched.
//
// # Filesystem
//
// Every file operation goes through Config.FS: OS when nil. raftlog passes
// the node's filesystem, so that its power-loss test can run the log on an
// in-memory filesystem that drops whatever was not fsynced. Open creates Dir
// and its missing parents durably (fsyncing each new directory's parent).
//
// # Limits
//
// One Log per directory, in one process; there is no lock file. Open reads
// every frame header, so it costs about one small pread per batch of the
// whole retained log (a persisted index for sealed segments would remove
// that). Payloads are at most 4 GiB − 29 bytes.
package segment
