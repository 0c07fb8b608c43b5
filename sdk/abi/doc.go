// Package abi is the language-neutral contract between the Weir broker (the
// host) and a WebAssembly transform (the guest): the ABI version, the names of
// the functions each side provides, and the byte layouts of the batches and
// records that cross the boundary.
//
// The package has no dependencies and is shared by the host (plugins) and the
// Go guest SDK (sdk/transform). Guests in other languages implement the same
// layouts; docs/abi.md in the repository describes them without Go.
//
// All integers are little-endian. A "str" is a u32 byte length followed by
// that many bytes. A batch handed to the guest:
//
//	u32 abi version (the guest's: 1 or 2)
//	str input topic
//	i32 input partition
//	u32 output count, then one str per output topic
//	u32 record count, then one record per input record
//
// A record:
//
//	i64 offset
//	i64 timestamp (milliseconds since the Unix epoch)
//	i32 key length, -1 for a nil key; then the key bytes
//	u32 value length, then the value bytes
//	u32 header count, then per header: str key, str value
//
// An emitted record (what the guest passes to the host's emit function; one
// call may carry several back to back):
//
//	u32 output index (into the batch's outputs)
//	record (its offset is ignored)
//
// or a forwarded input record, passed on unchanged without re-encoding it:
//
//	u32 Forward | output index
//	u32 input record index
//
// Version 2 adds, changing nothing of version 1: the optional export
// ExportTick, called with a batch of zero records on an idle partition, and
// the host function ImportStateKeys, which lists state keys by prefix.
package abi
