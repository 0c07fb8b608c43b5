// Runs handlers in tests, without Wasm host or broker, against in-memory
// state and config with the broker's batch semantics: a batch sees its own
// state writes, and the writes of a failed batch are discarded.
//
//   const h = new Harness();
//   h.config.set("fields", "card");
//   const out = h.run(handler(), [kv("k", '{"card":"4111"}')]);
//   assert(out.error == null);
//   assert(out.values()[0] == '{"card":"***"}');
//
// Test files export functions named test*; `weir transform build --test`
// compiles them and runs each in Node.js (sdk/ts/test/run.mjs).

import {
  Host, Handler, Record, Header, Reader, Writer, writeBatchHeader, run, utf8, str,
  FORWARD, ERR_MALFORMED, ERR_BAD_OUTPUT, ERR_BAD_INDEX, ERR_STATE_LIMIT,
} from "./index";

/** The largest state key plus value the broker takes by default (1 MiB). */
export const STATE_LIMIT: i32 = 1 << 20;

/** A record with a string key and value; an empty key is no key. */
export function kv(key: string, value: string): Record {
  const r = new Record();
  if (key.length > 0) r.key = utf8(key);
  r.value = utf8(value);
  return r;
}

export class Emitted {
  constructor(public output: string, public outputIndex: i32, public record: Record) {}
}

export class Dead {
  constructor(public index: i32, public reason: string) {}
}

/** One state write; value null is a delete. */
export class Change {
  constructor(public key: Uint8Array, public value: Uint8Array | null) {}
}

export class Log {
  constructor(public level: i32, public msg: string) {}
}

/** What a batch did; error is the failure message of a failed batch. */
export class Output {
  error: string | null = null;
  emitted: Emitted[] = [];
  dead: Dead[] = [];
  changes: Change[] = [];
  logs: Log[] = [];

  /** The emitted values as strings. */
  values(): string[] {
    const v = new Array<string>();
    for (let i = 0; i < this.emitted.length; i++) v.push(str(this.emitted[i].record.value));
    return v;
  }
}

function copy(b: Uint8Array): Uint8Array {
  return b.slice(0);
}

function ownRecord(r: Record): Record {
  const o = new Record();
  o.offset = r.offset;
  o.timestamp = r.timestamp;
  const k = r.key;
  if (k != null) o.key = copy(k);
  o.value = copy(r.value);
  for (let i = 0; i < r.headers.length; i++) o.headers.push(new Header(copy(r.headers[i].key), copy(r.headers[i].value)));
  return o;
}

/** Runs batches against one partition's state. */
export class Harness {
  topic: string = "in";
  partition: i32 = 0;
  outputs: string[] = ["out"];
  config: Map<string, string> = new Map<string, string>();
  /** Committed state, by the key's string form (UTF-8 keys). */
  state: Map<string, Uint8Array> = new Map<string, Uint8Array>();
  /** Nanoseconds since the epoch for ctx.now(). */
  clock: i64 = 0;
  private next: i64 = 0;

  /** Runs h over one batch of records (offsets are numbered in order). */
  run(h: Handler, records: Record[]): Output {
    const w = new Writer();
    writeBatchHeader(w, this.topic, this.partition, this.outputs, records.length);
    for (let i = 0; i < records.length; i++) {
      records[i].offset = this.next++;
      w.record(records[i]);
    }
    const host = new TestHost(this, records);
    const code = run(host, w.view().slice(0), h);
    const out = host.out;
    if (code != 0 && out.error == null) out.error = "weir_process returned " + code.toString();
    if (out.error != null) return out;
    const keys = host.staged.keys();
    for (let i = 0; i < keys.length; i++) {
      const v = host.staged.get(keys[i]);
      if (v == null) this.state.delete(keys[i]);
      else this.state.set(keys[i], v);
    }
    return out;
  }
}

class TestHost extends Host {
  out: Output = new Output();
  staged: Map<string, Uint8Array | null> = new Map<string, Uint8Array | null>();

  constructor(private h: Harness, private inputs: Record[]) {
    super();
  }

  private refuse(code: i32, what: string): i32 {
    if (this.out.error == null) this.out.error = what + " (code " + code.toString() + ")";
    return code;
  }

  emit(frames: Uint8Array): i32 {
    const r = new Reader(frames);
    const n = this.h.outputs.length;
    while (r.left() > 0) {
      const out = r.u32();
      let idx: i32;
      let rec: Record;
      if (out & FORWARD) {
        const i = <i32>r.u32();
        if (!r.ok) return this.refuse(ERR_MALFORMED, "emit: malformed frames");
        if (i < 0 || i >= this.inputs.length) return this.refuse(ERR_BAD_INDEX, "emit: forward index out of range");
        idx = <i32>(out & ~FORWARD);
        rec = ownRecord(this.inputs[i]);
      } else {
        rec = ownRecord(r.record());
        if (!r.ok) return this.refuse(ERR_MALFORMED, "emit: malformed frames");
        idx = <i32>out;
      }
      if (idx >= n) return this.refuse(ERR_BAD_OUTPUT, "emit: output index out of range");
      this.out.emitted.push(new Emitted(this.h.outputs[idx], idx, rec));
    }
    return 0;
  }

  deadLetter(index: i32, reason: Uint8Array): i32 {
    if (index < 0 || index >= this.inputs.length) return this.refuse(ERR_BAD_INDEX, "dead_letter: index out of range");
    this.out.dead.push(new Dead(index, str(reason)));
    return 0;
  }

  stateGet(key: Uint8Array): Uint8Array | null {
    const k = str(key);
    if (this.staged.has(k)) {
      const v = this.staged.get(k);
      return v == null ? null : copy(v);
    }
    if (this.h.state.has(k)) return copy(this.h.state.get(k));
    return null;
  }

  private write(key: Uint8Array, value: Uint8Array | null): i32 {
    const n = key.length + (value == null ? 0 : value.length);
    if (n > STATE_LIMIT) return this.refuse(ERR_STATE_LIMIT, "state: key or value too large");
    const v: Uint8Array | null = value == null ? null : copy(value);
    this.staged.set(str(key), v);
    this.out.changes.push(new Change(copy(key), v));
    return 0;
  }

  statePut(key: Uint8Array, value: Uint8Array): i32 {
    return this.write(key, value);
  }

  stateDelete(key: Uint8Array): i32 {
    return this.write(key, null);
  }

  configGet(key: Uint8Array): Uint8Array | null {
    const k = str(key);
    if (!this.h.config.has(k)) return null;
    return utf8(this.h.config.get(k));
  }

  log(level: i32, msg: Uint8Array): void {
    this.out.logs.push(new Log(level, str(msg)));
  }

  now(): i64 {
    return this.h.clock;
  }

  random(buf: Uint8Array): void {
    // Not cryptographic: tests only need bytes that vary.
    let x: u64 = <u64>this.h.clock | 1;
    for (let i = 0; i < buf.length; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      buf[i] = <u8>x;
    }
  }

  fail(msg: Uint8Array): void {
    if (this.out.error == null) this.out.error = str(msg);
  }
}
