import { handler } from "weir-transform/assembly/index";
import { Harness, kv } from "weir-transform/assembly/testing";
import { upper } from "./index";

// Every exported test* function is a test; assert fails it.
export function testUpper(): void {
  const h = new Harness();
  const out = h.run(handler(), [kv("k", "hello"), kv("k", "")]);
  assert(out.error == null, "the batch failed");
  assert(out.values().length == 1 && out.values()[0] == "HELLO", "emitted " + out.values().join(","));
  assert(out.dead.length == 1 && out.dead[0].index == 1, "dead letters");
}

export function testUpperIsRegistered(): void {
  assert(handler().record == upper, "onRecord(upper) at top level");
}
