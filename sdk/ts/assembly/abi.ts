// The ABI's byte encoding (docs/abi.md): little-endian, a `str` is a u32
// length and its bytes. The host encodes batches with the same layout in Go
// (sdk/abi).

/** The ABI version this SDK speaks (`weir_abi_version_1`). */
export const VERSION: u32 = 1;
/** Frame flag of a forwarded input record. */
export const FORWARD: u32 = 0x80000000;

export const LEVEL_DEBUG: i32 = 0;
export const LEVEL_INFO: i32 = 1;
export const LEVEL_WARN: i32 = 2;
export const LEVEL_ERROR: i32 = 3;

export const ERR_MALFORMED: i32 = -1;
export const ERR_OUTPUT_LIMIT: i32 = -2;
export const ERR_BAD_OUTPUT: i32 = -3;
export const ERR_BAD_INDEX: i32 = -4;
export const ERR_STATE_LIMIT: i32 = -5;

/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

/** A string from UTF-8 bytes. */
export function str(b: Uint8Array): string {
  return String.UTF8.decodeUnsafe(b.dataStart, b.length);
}

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): bool {
  if (a.length != b.length) return false;
  return memory.compare(a.dataStart, b.dataStart, a.length) == 0;
}

/** One record header; values are arbitrary bytes. */
export class Header {
  constructor(public key: Uint8Array, public value: Uint8Array) {}
}

/**
 * A record. Input records' bytes are views of the batch buffer, which the
 * next batch overwrites: copy what you keep (`slice()`). `key` is null for
 * "no key"; an empty array is an empty key.
 */
export class Record {
  /** The input offset (ignored on emitted records). */
  offset: i64 = 0;
  /** Milliseconds since the Unix epoch; kept on emitted records. */
  timestamp: i64 = 0;
  key: Uint8Array | null = null;
  value: Uint8Array = new Uint8Array(0);
  headers: Header[] = [];

  /** A shallow copy: same bytes, own headers array. */
  clone(): Record {
    const r = new Record();
    r.offset = this.offset;
    r.timestamp = this.timestamp;
    r.key = this.key;
    r.value = this.value;
    r.headers = this.headers.slice(0);
    return r;
  }

  /** A copy with another value. */
  withValue(value: Uint8Array): Record {
    const r = this.clone();
    r.value = value;
    return r;
  }

  /** The value of the first header named `key`, or null. */
  header(key: string): Uint8Array | null {
    const k = utf8(key);
    for (let i = 0; i < this.headers.length; i++) {
      if (bytesEqual(this.headers[i].key, k)) return this.headers[i].value;
    }
    return null;
  }
}

/** A growable byte buffer. */
export class Writer {
  buf: Uint8Array;
  len: i32 = 0;

  constructor(cap: i32 = 256) {
    this.buf = new Uint8Array(cap);
  }

  private grow(n: i32): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    if (cap < this.len + n) cap = this.len + n;
    const b = new Uint8Array(cap);
    memory.copy(b.dataStart, this.buf.dataStart, this.len);
    this.buf = b;
  }

  byte(v: u8): void {
    this.grow(1);
    this.buf[this.len++] = v;
  }

  bytes(p: Uint8Array): void {
    this.grow(p.length);
    memory.copy(this.buf.dataStart + this.len, p.dataStart, p.length);
    this.len += p.length;
  }

  /** Appends the UTF-8 bytes of an ASCII string. */
  ascii(s: string): void {
    for (let i = 0; i < s.length; i++) this.byte(<u8>s.charCodeAt(i));
  }

  u32(v: u32): void {
    this.grow(4);
    store<u32>(this.buf.dataStart + this.len, v);
    this.len += 4;
  }

  u64(v: u64): void {
    this.grow(8);
    store<u64>(this.buf.dataStart + this.len, v);
    this.len += 8;
  }

  /** A u32 length, then the bytes. */
  lenBytes(p: Uint8Array): void {
    this.u32(<u32>p.length);
    this.bytes(p);
  }

  record(r: Record): void {
    this.u64(<u64>r.offset);
    this.u64(<u64>r.timestamp);
    const k = r.key;
    if (k == null) this.u32(0xffffffff);
    else this.lenBytes(k);
    this.lenBytes(r.value);
    this.u32(<u32>r.headers.length);
    for (let i = 0; i < r.headers.length; i++) {
      this.lenBytes(r.headers[i].key);
      this.lenBytes(r.headers[i].value);
    }
  }

  /** The written bytes (a view, valid until the next write). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  reset(): void {
    this.len = 0;
  }
}

/** Decodes ABI data; after the first short read `ok` is false. */
export class Reader {
  pos: i32 = 0;
  ok: bool = true;

  constructor(public buf: Uint8Array) {}

  left(): i32 {
    return this.buf.length - this.pos;
  }

  private need(n: u64): bool {
    if (!this.ok || <u64>this.left() < n) {
      this.ok = false;
      this.pos = this.buf.length;
      return false;
    }
    return true;
  }

  u32(): u32 {
    if (!this.need(4)) return 0;
    const v = load<u32>(this.buf.dataStart + this.pos);
    this.pos += 4;
    return v;
  }

  u64(): u64 {
    if (!this.need(8)) return 0;
    const v = load<u64>(this.buf.dataStart + this.pos);
    this.pos += 8;
    return v;
  }

  take(n: u32): Uint8Array {
    if (!this.need(n)) return new Uint8Array(0);
    const p = this.buf.subarray(this.pos, this.pos + <i32>n);
    this.pos += <i32>n;
    return p;
  }

  lenBytes(): Uint8Array {
    return this.take(this.u32());
  }

  record(): Record {
    const r = new Record();
    r.offset = <i64>this.u64();
    r.timestamp = <i64>this.u64();
    const kl = this.u32();
    if (kl != 0xffffffff) r.key = this.take(kl);
    r.value = this.lenBytes();
    const n = this.u32();
    if (!this.need(<u64>n * 8)) return r;
    for (let i: u32 = 0; i < n && this.ok; i++) {
      const k = this.lenBytes();
      r.headers.push(new Header(k, this.lenBytes()));
    }
    return r;
  }
}

/** One batch of input records from one partition. */
export class Batch {
  topic: string = "";
  partition: i32 = 0;
  outputs: string[] = [];
  records: Record[] = [];
}

/** Decodes a batch; the error message when it is not one. */
export function readBatch(buf: Uint8Array, batch: Batch): string | null {
  const r = new Reader(buf);
  const version = r.u32();
  if (r.ok && version != VERSION) {
    return "transform: host speaks abi version " + version.toString() + ", sdk " + VERSION.toString();
  }
  batch.topic = str(r.lenBytes());
  batch.partition = <i32>r.u32();
  const n = r.u32();
  if (<u64>n * 4 > <u64>r.left()) r.ok = false;
  for (let i: u32 = 0; i < n && r.ok; i++) batch.outputs.push(str(r.lenBytes()));
  const count = r.u32();
  if (<u64>count * 28 > <u64>r.left()) r.ok = false;
  for (let i: u32 = 0; i < count && r.ok; i++) batch.records.push(r.record());
  if (!r.ok) return "transform: bad batch: abi: truncated or malformed data";
  return null;
}

/** Appends a batch header; `count` records must follow. */
export function writeBatchHeader(w: Writer, topic: string, partition: i32, outputs: string[], count: i32): void {
  w.u32(VERSION);
  w.lenBytes(utf8(topic));
  w.u32(<u32>partition);
  w.u32(<u32>outputs.length);
  for (let i = 0; i < outputs.length; i++) w.lenBytes(utf8(outputs[i]));
  w.u32(<u32>count);
}
