// The module's abort (asc --use abort=~lib/weir-transform/assembly/abort/weirAbort,
// which weir transform build passes): reports the message as the batch's
// error through the broker's fail, then traps. Kept out of exports.ts so
// that it is not a Wasm export.

@external("weir", "fail") declare function hostFail(ptr: usize, len: usize): void;

export function weirAbort(msg: string | null, file: string | null, line: u32, col: u32): void {
  let m = "abort";
  if (msg != null) m = msg;
  if (file != null) m += " at " + file + ":" + line.toString() + ":" + col.toString();
  const b = String.UTF8.encode(m);
  hostFail(changetype<usize>(b), b.byteLength);
  unreachable();
}
