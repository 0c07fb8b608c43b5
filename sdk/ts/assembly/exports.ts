// The ABI's exports and the broker's host functions. A transform's entry
// file re-exports this file: `export * from "weir-transform/assembly/exports";`

import { Host, run, handler, utf8 } from "./index";
import "./abort"; // the module's abort: weir transform build passes --use abort=…/abort/weirAbort

@external("weir", "emit") declare function hostEmit(ptr: usize, len: usize): i32;
@external("weir", "dead_letter") declare function hostDeadLetter(index: i32, ptr: usize, len: usize): i32;
@external("weir", "state_get") declare function hostStateGet(kp: usize, kl: usize, bp: usize, bc: usize): i32;
@external("weir", "state_put") declare function hostStatePut(kp: usize, kl: usize, vp: usize, vl: usize): i32;
@external("weir", "state_delete") declare function hostStateDelete(kp: usize, kl: usize): i32;
@external("weir", "config_get") declare function hostConfigGet(kp: usize, kl: usize, bp: usize, bc: usize): i32;
@external("weir", "log") declare function hostLog(level: i32, ptr: usize, len: usize): void;
@external("weir", "now") declare function hostNow(): i64;
@external("weir", "random") declare function hostRandom(ptr: usize, len: usize): void;
@external("weir", "fail") declare function hostFail(ptr: usize, len: usize): void;

function getter(state: bool, key: Uint8Array): Uint8Array | null {
  let buf = new Uint8Array(256);
  let n = buf.length + 1;
  while (n > buf.length) {
    if (n > 256) buf = new Uint8Array(n);
    n = state
      ? hostStateGet(key.dataStart, key.length, buf.dataStart, buf.length)
      : hostConfigGet(key.dataStart, key.length, buf.dataStart, buf.length);
    if (n < 0) return null;
  }
  return buf.subarray(0, n);
}

class WasmHost extends Host {
  emit(frames: Uint8Array): i32 {
    return hostEmit(frames.dataStart, frames.length);
  }
  deadLetter(index: i32, reason: Uint8Array): i32 {
    return hostDeadLetter(index, reason.dataStart, reason.length);
  }
  stateGet(key: Uint8Array): Uint8Array | null {
    return getter(true, key);
  }
  statePut(key: Uint8Array, value: Uint8Array): i32 {
    return hostStatePut(key.dataStart, key.length, value.dataStart, value.length);
  }
  stateDelete(key: Uint8Array): i32 {
    return hostStateDelete(key.dataStart, key.length);
  }
  configGet(key: Uint8Array): Uint8Array | null {
    return getter(false, key);
  }
  log(level: i32, msg: Uint8Array): void {
    hostLog(level, msg.dataStart, msg.length);
  }
  now(): i64 {
    return hostNow();
  }
  random(buf: Uint8Array): void {
    hostRandom(buf.dataStart, buf.length);
  }
  fail(msg: Uint8Array): void {
    hostFail(msg.dataStart, msg.length);
  }
}

const wasmHost = new WasmHost();
// The batch buffer handed to the host by weir_alloc, reused across batches.
let batchBuf = new ArrayBuffer(0);

/** The ABI handshake: the name carries the version. Never called. */
export function weir_abi_version_1(): void {}

/** A buffer of at least size bytes for the next batch. */
export function weir_alloc(size: i32): usize {
  if (batchBuf.byteLength < size) batchBuf = new ArrayBuffer(size);
  return changetype<usize>(batchBuf);
}

/** Runs the registered handler over the batch at ptr. */
export function weir_process(ptr: usize, len: i32): i32 {
  let buf: Uint8Array;
  if (ptr == changetype<usize>(batchBuf) && len <= batchBuf.byteLength) {
    buf = Uint8Array.wrap(batchBuf, 0, len);
  } else {
    buf = new Uint8Array(len);
    memory.copy(buf.dataStart, ptr, len);
  }
  return run(wasmHost, buf, handler());
}
