// Runs the test* exports of a test module compiled by asc (weir transform
// build --test): node run.mjs tests.wasm. Prints one line per test and
// "N passed, N failed"; exits 1 when a test failed.
import { readFileSync } from "node:fs";

const file = process.argv[2];
let memory;
// An AssemblyScript string: UTF-16 code units, byte length at ptr-4.
const text = (ptr) => {
  if (!ptr) return "";
  const n = new Uint32Array(memory.buffer, ptr - 4, 1)[0];
  return String.fromCharCode(...new Uint16Array(memory.buffer, ptr, n >>> 1));
};
class Abort extends Error {}
const imports = {
  env: {
    abort(msg, file, line, col) {
      throw new Abort(`${text(msg)} at ${text(file)}:${line}:${col}`);
    },
    trace(msg, n, ...args) {
      console.log(`trace: ${text(msg)} ${args.slice(0, n).join(", ")}`);
    },
    seed: () => Date.now(),
    "Date.now": () => Date.now(),
  },
  // The broker's functions: tests run handlers through testing.ts instead.
  weir: new Proxy({}, {
    get: (_, name) => () => {
      throw new Error(`weir.${String(name)} called outside the broker: use testing.ts's Harness`);
    },
  }),
};
const { instance } = await WebAssembly.instantiate(readFileSync(file), imports);
memory = instance.exports.memory;
if (instance.exports._initialize) instance.exports._initialize();
let passed = 0;
let failed = 0;
for (const [name, fn] of Object.entries(instance.exports)) {
  if (!name.startsWith("test") || typeof fn !== "function") continue;
  try {
    fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e instanceof Abort ? e.message : e}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
if (failed > 0 || passed === 0) process.exit(1);
