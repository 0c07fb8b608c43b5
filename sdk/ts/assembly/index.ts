// Weir transforms in AssemblyScript: the guest side of the Weir Wasm ABI
// (docs/abi.md). A transform's entry file registers one handler at top level
// and re-exports the ABI's functions:
//
//   import { Context, Record, onRecord } from "weir-transform/assembly/index";
//   export * from "weir-transform/assembly/exports";
//
//   onRecord(upper);
//
//   function upper(r: Record, ctx: Context): string | null {
//     if (r.value.length == 0) return ctx.deadLetter("empty value");
//     ...
//     return ctx.emit(r.withValue(v));
//   }
//
// A handler returns null on success; a string fails the whole batch with that
// message (nothing it emitted or wrote takes effect; the pipeline retries it).
// Use ctx.deadLetter for one bad record. `weir transform build` compiles it
// (asc with --exportStart _initialize and the SDK's abort); testing.ts runs
// handlers in tests without a broker.

import {
  Batch, Record, Writer, readBatch, utf8, str, FORWARD, LEVEL_INFO, ERR_OUTPUT_LIMIT, ERR_STATE_LIMIT,
} from "./abi";

export * from "./abi";

/**
 * The host functions a transform calls: the broker's imports in a module,
 * the harness in tests. Transforms never call it directly.
 */
export abstract class Host {
  abstract emit(frames: Uint8Array): i32;
  abstract deadLetter(index: i32, reason: Uint8Array): i32;
  abstract stateGet(key: Uint8Array): Uint8Array | null;
  abstract statePut(key: Uint8Array, value: Uint8Array): i32;
  abstract stateDelete(key: Uint8Array): i32;
  abstract configGet(key: Uint8Array): Uint8Array | null;
  abstract log(level: i32, msg: Uint8Array): void;
  abstract now(): i64;
  abstract random(buf: Uint8Array): void;
  abstract fail(msg: Uint8Array): void;
}

/** Handles one input record; null on success, else the batch's error. */
export type RecordHandler = (r: Record, ctx: Context) => string | null;
/** Handles one batch of input records. */
export type BatchHandler = (b: Batch, ctx: Context) => string | null;

/** The handler a module registered: one of the two is set. */
export class Handler {
  record: RecordHandler | null = null;
  batch: BatchHandler | null = null;
}

let registered = new Handler();

/** Registers the module's handler, called once per input record. */
export function onRecord(h: RecordHandler): void {
  registered = new Handler();
  registered.record = h;
}

/** Registers the module's handler, called once per batch. */
export function onBatch(h: BatchHandler): void {
  registered = new Handler();
  registered.batch = h;
}

/** The registered handler. */
export function handler(): Handler {
  return registered;
}

const EMIT_FLUSH_BYTES: i32 = 256 << 10;

function hostErr(fn: string, code: i32): string {
  if (code == ERR_OUTPUT_LIMIT) return "transform: host refused the call: " + fn + ": output limit exceeded";
  if (code == ERR_STATE_LIMIT) return "transform: host refused the call: " + fn + ": key or value too large";
  return "transform: host refused the call: " + fn + ": code " + code.toString();
}

/** A handler's view of the host for one batch. */
export class Context {
  /** The index of the record an onRecord handler handles, or -1. */
  index: i32 = -1;
  /** The first host failure; it fails the batch. */
  err: string | null = null;
  private out: Writer = new Writer(1024);

  constructor(private host: Host, public batch: Batch) {}

  /** The pipeline's output topics; index 0 is the first. */
  get outputs(): string[] {
    return this.batch.outputs;
  }

  /** The input topic. */
  get topic(): string {
    return this.batch.topic;
  }

  /** The input partition. */
  get partition(): i32 {
    return this.batch.partition;
  }

  private outputIndex(name: string): i32 {
    return this.batch.outputs.indexOf(name);
  }

  private checkOutput(out: i32): string | null {
    if (this.batch.outputs.length == 0) return "transform: the pipeline has no outputs";
    if (out < 0 || out >= this.batch.outputs.length) return "transform: unknown output index " + out.toString();
    return null;
  }

  /** Sends r to the first output. */
  emit(r: Record): string | null {
    return this.emitToIndex(0, r);
  }

  /** Sends r to the output topic named `output`. */
  emitTo(output: string, r: Record): string | null {
    const i = this.outputIndex(output);
    if (i < 0) return "transform: unknown output \"" + output + "\"";
    return this.emitToIndex(i, r);
  }

  /** Sends r to output `out` (an index into outputs). */
  emitToIndex(out: i32, r: Record): string | null {
    if (this.err != null) return this.err;
    const bad = this.checkOutput(out);
    if (bad != null) return bad;
    this.out.u32(<u32>out);
    const offset = r.offset;
    r.offset = 0;
    this.out.record(r);
    r.offset = offset;
    return this.maybeFlush();
  }

  /** Passes the current input record on to the first output unchanged. */
  forward(): string | null {
    return this.forwardAt(this.index, 0);
  }

  /** Passes the current input record on unchanged to the output named `output`. */
  forwardTo(output: string): string | null {
    const i = this.outputIndex(output);
    if (i < 0) return "transform: unknown output \"" + output + "\"";
    return this.forwardAt(this.index, i);
  }

  /** Passes input record i of the batch unchanged to output `out`. */
  forwardAt(i: i32, out: i32): string | null {
    if (this.err != null) return this.err;
    if (i < 0 || i >= this.batch.records.length) return "transform: no current record";
    const bad = this.checkOutput(out);
    if (bad != null) return bad;
    this.out.u32(FORWARD | <u32>out);
    this.out.u32(<u32>i);
    return this.maybeFlush();
  }

  private maybeFlush(): string | null {
    if (this.out.len >= EMIT_FLUSH_BYTES) return this.flush();
    return null;
  }

  /** Hands the buffered emitted records to the host. */
  flush(): string | null {
    if (this.err != null || this.out.len == 0) return this.err;
    const code = this.host.emit(this.out.view());
    this.out.reset();
    return this.check(code, "emit");
  }

  private check(code: i32, fn: string): string | null {
    if (code != 0) this.err = hostErr(fn, code);
    return this.err;
  }

  /** Rejects the current input record to the dead-letter topic; the batch goes on. */
  deadLetter(reason: string): string | null {
    if (this.index < 0) return "transform: no current record";
    return this.deadLetterAt(this.index, reason);
  }

  /** Rejects input record i of the batch. */
  deadLetterAt(i: i32, reason: string): string | null {
    if (this.err != null) return this.err;
    return this.check(this.host.deadLetter(i, utf8(reason)), "dead_letter");
  }

  /** The pipeline's config value for key, or null. */
  config(key: string): string | null {
    const v = this.host.configGet(utf8(key));
    if (v == null) return null;
    return str(v);
  }

  /** A copy of the state value under key (a batch sees its own writes). */
  stateGet(key: Uint8Array): Uint8Array | null {
    return this.host.stateGet(key);
  }

  /** Stores value under key (kept only if the batch succeeds). */
  statePut(key: Uint8Array, value: Uint8Array): string | null {
    if (this.err != null) return this.err;
    return this.check(this.host.statePut(key, value), "state_put");
  }

  /** Deletes key. */
  stateDelete(key: Uint8Array): string | null {
    if (this.err != null) return this.err;
    return this.check(this.host.stateDelete(key), "state_delete");
  }

  /** A log line at info level. */
  log(msg: string): void {
    this.host.log(LEVEL_INFO, utf8(msg));
  }

  /** A log line at a LEVEL_* level. */
  logLevel(level: i32, msg: string): void {
    this.host.log(level, utf8(msg));
  }

  /** The host's wall clock, nanoseconds since the Unix epoch. */
  now(): i64 {
    return this.host.now();
  }

  /** Fills buf with cryptographically random bytes from the host. */
  random(buf: Uint8Array): void {
    this.host.random(buf);
  }
}

/**
 * Decodes one ABI batch and runs h over it against host: what the module's
 * weir_process calls, and what the test harness calls. Returns 0, or 1
 * after reporting the error to host.fail.
 */
export function run(host: Host, buf: Uint8Array, h: Handler): i32 {
  const batch = new Batch();
  let err = readBatch(buf, batch);
  if (err == null) {
    const ctx = new Context(host, batch);
    const rec = h.record;
    const bat = h.batch;
    if (rec != null) {
      for (let i = 0; i < batch.records.length && err == null; i++) {
        ctx.index = i;
        err = rec(batch.records[i], ctx);
      }
      ctx.index = -1;
    } else if (bat != null) {
      err = bat(batch, ctx);
    } else {
      err = "transform: no handler registered (call onRecord or onBatch at top level)";
    }
    if (err == null) err = ctx.flush();
    if (err == null) err = ctx.err;
  }
  if (err != null) {
    host.fail(utf8(err));
    return 1;
  }
  return 0;
}
