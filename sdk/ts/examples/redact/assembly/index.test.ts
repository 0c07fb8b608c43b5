import { handler, str } from "weir-transform/assembly/index";
import { Harness, kv } from "weir-transform/assembly/testing";
import { fieldList } from "./index";

export function testRedacts(): void {
  const h = new Harness();
  h.config.set("fields", "card, email");
  const out = h.run(handler(), [
    kv("1", '{"id":1,"card":"4111","email":"a@b","nested":{"card":"x"}}'),
    kv("2", '{"id":2}'),
    kv("3", "not json"),
    kv("4", '{"card":{"deep":[1,2]} , "z" : true}'),
  ]);
  assert(out.error == null, "batch failed");
  const v = out.values();
  assert(v.length == 3, "emitted " + v.length.toString());
  assert(v[0] == '{"id":1,"card":"***","email":"***","nested":{"card":"x"}}', v[0]);
  assert(v[1] == '{"id":2}', v[1]);
  assert(v[2] == '{"card":"***","z":true}', v[2]);
  assert(out.dead.length == 1 && out.dead[0].index == 2, "dead letters");
  assert(out.dead[0].reason == "redact: value is not a JSON object", out.dead[0].reason);
}

export function testReasonsFollowGo(): void {
  const cases = [
    '{"a":1,}', "redact: bad JSON: invalid character '}' looking for beginning of object key string",
    '{"a":1', "redact: bad JSON object",
    '{"a" 1}', "redact: bad JSON: expected colon after object key",
    '{"a":tru}', "redact: bad JSON: invalid character '}' in literal true (expecting 'e')",
    '{"a":   ', "redact: bad JSON: EOF",
    '{"a":  1.', "redact: bad JSON: unexpected EOF",
    "{1}", "redact: bad JSON: invalid character '1'",
    "{} {", "redact: trailing data after the JSON object",
  ];
  const h = new Harness();
  for (let i = 0; i < cases.length; i += 2) {
    const out = h.run(handler(), [kv("", cases[i])]);
    assert(out.dead.length == 1, cases[i]);
    assert(out.dead[0].reason == cases[i + 1], out.dead[0].reason);
  }
  const ok = h.run(handler(), [kv("", "{} x")]);
  assert(ok.values().length == 1 && ok.values()[0] == "{}", "trailing junk after the object is ignored, as in Go");
}

export function testFieldList(): void {
  const f = fieldList(" a ,,\u00a0b\u3000, ");
  assert(f.length == 2 && f[0] == "a" && f[1] == "b", f.join("|"));
  assert(str(new Uint8Array(0)) == "", "str");
}
