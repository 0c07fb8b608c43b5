// redact: replaces the values of the top-level JSON fields listed in config
// `fields` (comma-separated) with the string "***", keeping the order of the
// object's fields. A value that is not a JSON object is dead-lettered, so
// that nothing unredacted leaves the pipeline.
//
// It produces byte for byte what the Go example (examples/redact, on Go's
// encoding/json) produces, dead-letter reasons included: json.ts follows
// encoding/json's scanner, Decoder token stream, unquoting and escaping.

import { Context, Record, onRecord } from "weir-transform/assembly/index";
import { redactObject, Result } from "./json";
export * from "weir-transform/assembly/exports";

onRecord(redact);

// Go's strings.TrimSpace: the Unicode White_Space characters.
function isSpace(c: i32): bool {
  return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

function trimSpace(s: string): string {
  let i = 0;
  let j = s.length;
  while (i < j && isSpace(s.charCodeAt(i))) i++;
  while (j > i && isSpace(s.charCodeAt(j - 1))) j--;
  return s.substring(i, j);
}

export function fieldList(config: string | null): string[] {
  const fields = new Array<string>();
  if (config == null) return fields;
  const parts = config.split(",");
  for (let i = 0; i < parts.length; i++) {
    const f = trimSpace(parts[i]);
    if (f.length > 0) fields.push(f);
  }
  return fields;
}

function redact(r: Record, ctx: Context): string | null {
  const res: Result = redactObject(r.value, fieldList(ctx.config("fields")));
  const err = res.err;
  if (err != null) return ctx.deadLetter(err);
  return ctx.emit(r.withValue(res.value));
}
