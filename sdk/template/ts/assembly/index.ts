// upper: a Weir transform that upper-cases each record's value and sends
// records with an empty value to the pipeline's dead-letter topic.
//
//   weir transform build --test   # run index.test.ts in Node.js, then build the .wasm
//
// See docs/transforms.md in the Weir repository.

import { Context, Record, onRecord } from "weir-transform/assembly/index";
export * from "weir-transform/assembly/exports";

// Register at top level: it runs once per instance, in _initialize.
onRecord(upper);

export function upper(r: Record, ctx: Context): string | null {
  if (r.value.length == 0) return ctx.deadLetter("empty value"); // to the pipeline's dead-letter topic
  const v = r.value.slice(0);
  for (let i = 0; i < v.length; i++) {
    if (v[i] >= 0x61 && v[i] <= 0x7a) v[i] -= 0x20;
  }
  return ctx.emit(r.withValue(v)); // to the first output
}
