// The parts of Go's encoding/json that redact's output depends on: the
// scanner (and its error messages), the Decoder's Token/More/Decode, string
// unquoting, Marshal's escaping and Compact.

import { Writer, utf8 } from "weir-transform/assembly/index";

const MAX_DEPTH: i32 = 10000;

// Scanner results.
const S_CONTINUE = 0;
const S_END_OBJECT = 1;
const S_END_ARRAY = 2;
const S_SKIP_SPACE = 3;
const S_END = 4;
const S_ERROR = 5;

// Parse stack entries.
const P_OBJECT_KEY = 0;
const P_OBJECT_VALUE = 1;
const P_ARRAY_VALUE = 2;

// Scanner states.
const BEGIN_VALUE = 0;
const BEGIN_VALUE_OR_EMPTY = 1;
const BEGIN_STRING_OR_EMPTY = 2;
const BEGIN_STRING = 3;
const END_VALUE = 4;
const END_TOP = 5;
const IN_STRING = 6;
const IN_STRING_ESC = 7;
const ESC_U = 8; // + digits seen (0..3)
const NEG = 12;
const ZERO = 13;
const ONE = 14;
const DOT = 15;
const DOT0 = 16;
const E = 17;
const E_SIGN = 18;
const E0 = 19;
const LIT = 20;
const ERROR = 21;

function isSpace(c: u8): bool {
  return c == 0x20 || c == 0x09 || c == 0x0d || c == 0x0a;
}

function isDigit(c: u8): bool {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: u8): bool {
  return isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

const HEX = "0123456789abcdef";

function hex2(c: u8): string {
  return HEX.charAt(c >> 4) + HEX.charAt(c & 15);
}

// Go's quoteChar: strconv.Quote of the byte taken as a rune, in single quotes.
export function quoteChar(c: u8): string {
  if (c == 0x27) return "'\\''";
  if (c == 0x22) return "'\"'";
  if (c == 0x5c) return "'\\\\'";
  if (c == 7) return "'\\a'";
  if (c == 8) return "'\\b'";
  if (c == 0x0c) return "'\\f'";
  if (c == 0x0a) return "'\\n'";
  if (c == 0x0d) return "'\\r'";
  if (c == 0x09) return "'\\t'";
  if (c == 0x0b) return "'\\v'";
  if (c < 0x20 || c == 0x7f) return "'\\x" + hex2(c) + "'";
  if ((c >= 0x80 && c <= 0xa0) || c == 0xad) return "'\\u00" + hex2(c) + "'";
  return "'" + String.fromCharCode(c) + "'";
}

class Scanner {
  step: i32 = BEGIN_VALUE;
  parse: i32[] = [];
  err: string = "";
  lit: string = "";
  litPos: i32 = 0;

  error(c: u8, context: string): i32 {
    this.step = ERROR;
    this.err = "invalid character " + quoteChar(c) + " " + context;
    return S_ERROR;
  }

  go(s: i32): i32 {
    this.step = s;
    return S_CONTINUE;
  }

  push(c: u8, p: i32): i32 {
    this.parse.push(p);
    if (this.parse.length <= MAX_DEPTH) return S_CONTINUE;
    return this.error(c, "exceeded max depth");
  }

  pop(): void {
    this.parse.pop();
    this.step = this.parse.length == 0 ? END_TOP : END_VALUE;
  }

  literal(word: string): i32 {
    this.lit = word;
    this.litPos = 1;
    return this.go(LIT);
  }

  beginValue(c: u8): i32 {
    if (isSpace(c)) return S_SKIP_SPACE;
    switch (c) {
      case 0x7b: // {
        this.step = BEGIN_STRING_OR_EMPTY;
        return this.push(c, P_OBJECT_KEY);
      case 0x5b: // [
        this.step = BEGIN_VALUE_OR_EMPTY;
        return this.push(c, P_ARRAY_VALUE);
      case 0x22:
        return this.go(IN_STRING);
      case 0x2d:
        return this.go(NEG);
      case 0x30:
        return this.go(ZERO);
      case 0x74:
        return this.literal("true");
      case 0x66:
        return this.literal("false");
      case 0x6e:
        return this.literal("null");
    }
    if (c >= 0x31 && c <= 0x39) return this.go(ONE);
    return this.error(c, "looking for beginning of value");
  }

  beginString(c: u8): i32 {
    if (isSpace(c)) return S_SKIP_SPACE;
    if (c == 0x22) return this.go(IN_STRING);
    return this.error(c, "looking for beginning of object key string");
  }

  endValue(c: u8): i32 {
    const n = this.parse.length;
    if (n == 0) {
      this.step = END_TOP;
      return this.endTop(c);
    }
    if (isSpace(c)) {
      this.step = END_VALUE;
      return S_SKIP_SPACE;
    }
    const ps = this.parse[n - 1];
    if (ps == P_OBJECT_KEY) {
      if (c == 0x3a) {
        this.parse[n - 1] = P_OBJECT_VALUE;
        return this.go(BEGIN_VALUE);
      }
      return this.error(c, "after object key");
    }
    if (ps == P_OBJECT_VALUE) {
      if (c == 0x2c) {
        this.parse[n - 1] = P_OBJECT_KEY;
        return this.go(BEGIN_STRING);
      }
      if (c == 0x7d) {
        this.pop();
        return S_END_OBJECT;
      }
      return this.error(c, "after object key:value pair");
    }
    if (c == 0x2c) return this.go(BEGIN_VALUE);
    if (c == 0x5d) {
      this.pop();
      return S_END_ARRAY;
    }
    return this.error(c, "after array element");
  }

  endTop(c: u8): i32 {
    if (!isSpace(c)) this.error(c, "after top-level value");
    return S_END;
  }

  number(c: u8): i32 {
    // ZERO and ONE after their digits.
    if (c == 0x2e) return this.go(DOT);
    if (c == 0x65 || c == 0x45) return this.go(E);
    return this.endValue(c);
  }

  next(c: u8): i32 {
    const s = this.step;
    if (s == BEGIN_VALUE) return this.beginValue(c);
    if (s == BEGIN_VALUE_OR_EMPTY) {
      if (isSpace(c)) return S_SKIP_SPACE;
      if (c == 0x5d) return this.endValue(c);
      return this.beginValue(c);
    }
    if (s == BEGIN_STRING_OR_EMPTY) {
      if (isSpace(c)) return S_SKIP_SPACE;
      if (c == 0x7d) {
        this.parse[this.parse.length - 1] = P_OBJECT_VALUE;
        return this.endValue(c);
      }
      return this.beginString(c);
    }
    if (s == BEGIN_STRING) return this.beginString(c);
    if (s == END_VALUE) return this.endValue(c);
    if (s == END_TOP) return this.endTop(c);
    if (s == IN_STRING) {
      if (c == 0x22) return this.go(END_VALUE);
      if (c == 0x5c) return this.go(IN_STRING_ESC);
      if (c < 0x20) return this.error(c, "in string literal");
      return S_CONTINUE;
    }
    if (s == IN_STRING_ESC) {
      if (c == 0x62 || c == 0x66 || c == 0x6e || c == 0x72 || c == 0x74 || c == 0x5c || c == 0x2f || c == 0x22) {
        return this.go(IN_STRING);
      }
      if (c == 0x75) return this.go(ESC_U);
      return this.error(c, "in string escape code");
    }
    if (s >= ESC_U && s < ESC_U + 4) {
      if (isHex(c)) return this.go(s == ESC_U + 3 ? IN_STRING : s + 1);
      return this.error(c, "in \\u hexadecimal character escape");
    }
    if (s == NEG) {
      if (c == 0x30) return this.go(ZERO);
      if (c >= 0x31 && c <= 0x39) return this.go(ONE);
      return this.error(c, "in numeric literal");
    }
    if (s == ONE) {
      if (isDigit(c)) return S_CONTINUE;
      return this.number(c);
    }
    if (s == ZERO) return this.number(c);
    if (s == DOT) {
      if (isDigit(c)) return this.go(DOT0);
      return this.error(c, "after decimal point in numeric literal");
    }
    if (s == DOT0) {
      if (isDigit(c)) return S_CONTINUE;
      if (c == 0x65 || c == 0x45) return this.go(E);
      return this.endValue(c);
    }
    if (s == E && (c == 0x2b || c == 0x2d)) return this.go(E_SIGN);
    if (s == E || s == E_SIGN) {
      if (isDigit(c)) return this.go(E0);
      return this.error(c, "in exponent of numeric literal");
    }
    if (s == E0) {
      if (isDigit(c)) return S_CONTINUE;
      return this.endValue(c);
    }
    if (s == LIT) {
      const want = <u8>this.lit.charCodeAt(this.litPos);
      if (c == want) {
        this.litPos++;
        return this.go(this.litPos == this.lit.length ? END_VALUE : LIT);
      }
      return this.error(c, "in literal " + this.lit + " (expecting '" + String.fromCharCode(want) + "')");
    }
    return S_ERROR;
  }
}

// Decoder.readValue: the end of the value starting at start, or -1 with
// readErr set.
let readErr = "";

function readValue(buf: Uint8Array, start: i32): i32 {
  const s = new Scanner();
  for (let i = start; i < buf.length; i++) {
    const v = s.next(buf[i]);
    if (v == S_END) return i;
    if (v == S_END_OBJECT || v == S_END_ARRAY) {
      if (s.endValue(0x20) == S_END) return i + 1;
    } else if (v == S_ERROR) {
      readErr = s.err;
      return -1;
    }
  }
  if (s.next(0x20) == S_END) return buf.length;
  readErr = "EOF";
  for (let i = start; i < buf.length; i++) {
    if (!isSpace(buf[i])) {
      readErr = "unexpected EOF";
      break;
    }
  }
  return -1;
}

// Token stream states.
const T_TOP_VALUE = 0;
const T_ARRAY_START = 1;
const T_ARRAY_VALUE = 2;
const T_ARRAY_COMMA = 3;
const T_OBJECT_START = 4;
const T_OBJECT_KEY = 5;
const T_OBJECT_COLON = 6;
const T_OBJECT_VALUE = 7;
const T_OBJECT_COMMA = 8;

// Token kinds.
const K_ERROR = 0;
const K_DELIM = 1;
const K_KEY = 2;
const K_VALUE = 3;

// Go's json.Decoder over a whole value, as far as Token, More and Decode
// into a json.RawMessage go.
class Decoder {
  p: i32 = 0;
  state: i32 = T_TOP_VALUE;
  stack: i32[] = [];
  err: string = "";
  delim: u8 = 0;
  key: Uint8Array = new Uint8Array(0);
  rawStart: i32 = 0;
  rawEnd: i32 = 0;

  constructor(public buf: Uint8Array) {}

  // The next non-space byte, or -1 at the end.
  peek(): i32 {
    while (this.p < this.buf.length) {
      const c = this.buf[this.p];
      if (!isSpace(c)) return c;
      this.p++;
    }
    return -1;
  }

  valueAllowed(): bool {
    const s = this.state;
    return s == T_TOP_VALUE || s == T_ARRAY_START || s == T_ARRAY_VALUE || s == T_OBJECT_VALUE;
  }

  valueEnd(): void {
    if (this.state == T_ARRAY_START || this.state == T_ARRAY_VALUE) this.state = T_ARRAY_COMMA;
    else if (this.state == T_OBJECT_VALUE) this.state = T_OBJECT_COMMA;
  }

  fail(msg: string): i32 {
    this.err = msg;
    return K_ERROR;
  }

  tokenError(c: u8): i32 {
    const s = this.state;
    let context = "";
    if (s == T_TOP_VALUE || s == T_ARRAY_START || s == T_ARRAY_VALUE || s == T_OBJECT_VALUE) {
      context = " looking for beginning of value";
    } else if (s == T_ARRAY_COMMA) context = " after array element";
    else if (s == T_OBJECT_KEY) context = " looking for beginning of object key string";
    else if (s == T_OBJECT_COLON) context = " after object key";
    else if (s == T_OBJECT_COMMA) context = " after object key:value pair";
    return this.fail("invalid character " + quoteChar(c) + context);
  }

  // Decode: sets rawStart/rawEnd to the next value; false with err set.
  decode(): bool {
    if (this.state == T_ARRAY_COMMA || this.state == T_OBJECT_COLON) {
      const colon = this.state == T_OBJECT_COLON;
      const c = this.peek();
      if (c < 0) {
        this.err = "EOF";
        return false;
      }
      if (c != (colon ? 0x3a : 0x2c)) {
        this.err = colon ? "expected colon after object key" : "expected comma after array element";
        return false;
      }
      this.p++;
      this.state = colon ? T_OBJECT_VALUE : T_ARRAY_VALUE;
    }
    if (!this.valueAllowed()) {
      this.err = "not at beginning of value";
      return false;
    }
    const end = readValue(this.buf, this.p);
    if (end < 0) {
      this.err = readErr;
      return false;
    }
    this.rawStart = this.p;
    this.rawEnd = end;
    this.p = end;
    this.valueEnd();
    return true;
  }

  open(c: u8, next: i32): i32 {
    if (!this.valueAllowed()) return this.tokenError(c);
    this.p++;
    this.stack.push(this.state);
    this.state = next;
    this.delim = c;
    return K_DELIM;
  }

  close(c: u8, a: i32, b: i32): i32 {
    if (this.state != a && this.state != b) return this.tokenError(c);
    this.p++;
    this.state = this.stack.length > 0 ? this.stack.pop() : T_TOP_VALUE;
    this.valueEnd();
    this.delim = c;
    return K_DELIM;
  }

  token(): i32 {
    for (;;) {
      const ci = this.peek();
      if (ci < 0) return this.fail("EOF");
      const c = <u8>ci;
      if (c == 0x5b) return this.open(c, T_ARRAY_START);
      if (c == 0x7b) return this.open(c, T_OBJECT_START);
      if (c == 0x5d) return this.close(c, T_ARRAY_START, T_ARRAY_COMMA);
      if (c == 0x7d) return this.close(c, T_OBJECT_START, T_OBJECT_COMMA);
      if (c == 0x3a) {
        if (this.state != T_OBJECT_COLON) return this.tokenError(c);
        this.p++;
        this.state = T_OBJECT_VALUE;
        continue;
      }
      if (c == 0x2c) {
        if (this.state == T_ARRAY_COMMA) {
          this.p++;
          this.state = T_ARRAY_VALUE;
          continue;
        }
        if (this.state == T_OBJECT_COMMA) {
          this.p++;
          this.state = T_OBJECT_KEY;
          continue;
        }
        return this.tokenError(c);
      }
      if (c == 0x22 && (this.state == T_OBJECT_START || this.state == T_OBJECT_KEY)) {
        const old = this.state;
        this.state = T_TOP_VALUE;
        const ok = this.decode();
        this.state = old;
        if (!ok) return K_ERROR;
        this.state = T_OBJECT_COLON;
        this.key = unquote(this.buf.subarray(this.rawStart + 1, this.rawEnd - 1));
        return K_KEY;
      }
      if (!this.valueAllowed()) return this.tokenError(c);
      return this.decode() ? K_VALUE : K_ERROR;
    }
  }

  more(): bool {
    const c = this.peek();
    return c >= 0 && c != 0x5d && c != 0x7d;
  }
}

// utf8.DecodeRune: the rune and its size, (0xFFFD, 1) for invalid input.
let runeSize = 0;

function decodeRune(s: Uint8Array, i: i32): i32 {
  const c0 = <i32>s[i];
  runeSize = 1;
  if (c0 < 0x80) return c0;
  let n = 0;
  let lo = 0x80;
  let hi = 0xbf;
  if (c0 >= 0xc2 && c0 <= 0xdf) n = 2;
  else if (c0 == 0xe0) { n = 3; lo = 0xa0; }
  else if ((c0 >= 0xe1 && c0 <= 0xec) || c0 == 0xee || c0 == 0xef) n = 3;
  else if (c0 == 0xed) { n = 3; hi = 0x9f; }
  else if (c0 == 0xf0) { n = 4; lo = 0x90; }
  else if (c0 >= 0xf1 && c0 <= 0xf3) n = 4;
  else if (c0 == 0xf4) { n = 4; hi = 0x8f; }
  else return 0xfffd;
  if (s.length - i < n) return 0xfffd;
  const c1 = <i32>s[i + 1];
  if (c1 < lo || c1 > hi) return 0xfffd;
  let r = c0 & (0x7f >> n);
  r = (r << 6) | (c1 & 0x3f);
  for (let k = 2; k < n; k++) {
    const ck = <i32>s[i + k];
    if (ck < 0x80 || ck > 0xbf) return 0xfffd;
    r = (r << 6) | (ck & 0x3f);
  }
  runeSize = n;
  return r;
}

function putRune(w: Writer, r: i32): void {
  if (r < 0x80) w.byte(<u8>r);
  else if (r < 0x800) {
    w.byte(<u8>(0xc0 | (r >> 6)));
    w.byte(<u8>(0x80 | (r & 0x3f)));
  } else if (r < 0x10000) {
    w.byte(<u8>(0xe0 | (r >> 12)));
    w.byte(<u8>(0x80 | ((r >> 6) & 0x3f)));
    w.byte(<u8>(0x80 | (r & 0x3f)));
  } else {
    w.byte(<u8>(0xf0 | (r >> 18)));
    w.byte(<u8>(0x80 | ((r >> 12) & 0x3f)));
    w.byte(<u8>(0x80 | ((r >> 6) & 0x3f)));
    w.byte(<u8>(0x80 | (r & 0x3f)));
  }
}

function hexVal(c: u8): i32 {
  if (isDigit(c)) return c - 0x30;
  if (c >= 0x61) return c - 0x61 + 10;
  return c - 0x41 + 10;
}

// getu4: the \uXXXX escape at s[i:], or -1.
function getu4(s: Uint8Array, i: i32): i32 {
  if (s.length - i < 6 || s[i] != 0x5c || s[i + 1] != 0x75) return -1;
  let r = 0;
  for (let k = 2; k < 6; k++) {
    if (!isHex(s[i + k])) return -1;
    r = (r << 4) | hexVal(s[i + k]);
  }
  return r;
}

// unquoteBytes of a scanned string literal's contents.
function unquote(s: Uint8Array): Uint8Array {
  const w = new Writer(s.length + 8);
  let r = 0;
  while (r < s.length) {
    const c = s[r];
    if (c == 0x5c) {
      const e = s[r + 1];
      if (e == 0x75) {
        let rr = getu4(s, r);
        r += 6;
        if (rr >= 0xd800 && rr < 0xe000) {
          const r2 = getu4(s, r);
          if (rr < 0xdc00 && r2 >= 0xdc00 && r2 < 0xe000) {
            rr = 0x10000 + (((rr - 0xd800) << 10) | (r2 - 0xdc00));
            r += 6;
          } else rr = 0xfffd;
        }
        putRune(w, rr);
        continue;
      }
      r += 2;
      if (e == 0x62) w.byte(8);
      else if (e == 0x66) w.byte(0x0c);
      else if (e == 0x6e) w.byte(0x0a);
      else if (e == 0x72) w.byte(0x0d);
      else if (e == 0x74) w.byte(0x09);
      else w.byte(e);
    } else if (c < 0x80) {
      w.byte(c);
      r++;
    } else {
      putRune(w, decodeRune(s, r));
      r += runeSize;
    }
  }
  return w.view().slice(0);
}

// json.Marshal of a string (HTML-safe escaping).
function marshal(s: Uint8Array, w: Writer): void {
  w.byte(0x22);
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c < 0x80) {
      if (c == 0x5c || c == 0x22) {
        w.byte(0x5c);
        w.byte(c);
      } else if (c == 8) w.ascii("\\b");
      else if (c == 0x0c) w.ascii("\\f");
      else if (c == 0x0a) w.ascii("\\n");
      else if (c == 0x0d) w.ascii("\\r");
      else if (c == 0x09) w.ascii("\\t");
      else if (c < 0x20 || c == 0x3c || c == 0x3e || c == 0x26) w.ascii("\\u00" + hex2(c));
      else w.byte(c);
      i++;
      continue;
    }
    const r = decodeRune(s, i);
    const n = runeSize;
    if (r == 0xfffd && n == 1) w.ascii("\\ufffd");
    else if (r == 0x2028 || r == 0x2029) w.ascii("\\u202" + HEX.charAt(r & 15));
    else w.bytes(s.subarray(i, i + n));
    i += n;
  }
  w.byte(0x22);
}

// json.Compact of a valid value: drops the spaces outside strings.
function compact(raw: Uint8Array, w: Writer): void {
  let inStr = false;
  let esc = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (inStr) {
      if (esc) esc = false;
      else if (c == 0x5c) esc = true;
      else if (c == 0x22) inStr = false;
    } else if (c == 0x22) inStr = true;
    else if (isSpace(c)) continue;
    w.byte(c);
  }
}

export class Result {
  value: Uint8Array = new Uint8Array(0);
  err: string | null = null;
}

function failed(msg: string): Result {
  const r = new Result();
  r.err = msg;
  return r;
}

// The Go example's redactObject, message for message.
export function redactObject(value: Uint8Array, fields: string[]): Result {
  const names = new Array<Uint8Array>();
  for (let i = 0; i < fields.length; i++) names.push(utf8(fields[i]));
  const dec = new Decoder(value);
  if (dec.token() != K_DELIM || dec.delim != 0x7b) return failed("redact: value is not a JSON object");
  const w = new Writer(value.length + 16);
  w.byte(0x7b);
  let n = 0;
  while (dec.more()) {
    const k = dec.token();
    if (k == K_ERROR) return failed("redact: bad JSON: " + dec.err);
    if (k != K_KEY) return failed("redact: bad JSON: not a key");
    const key = dec.key;
    if (!dec.decode()) return failed("redact: bad JSON: " + dec.err);
    if (n > 0) w.byte(0x2c);
    marshal(key, w);
    w.byte(0x3a);
    let hit = false;
    for (let i = 0; i < names.length && !hit; i++) {
      const f = names[i];
      hit = f.length == key.length && memory.compare(f.dataStart, key.dataStart, f.length) == 0;
    }
    if (hit) w.ascii("\"***\"");
    else compact(value.subarray(dec.rawStart, dec.rawEnd), w);
    n++;
  }
  if (dec.token() != K_DELIM || dec.delim != 0x7d) return failed("redact: bad JSON object");
  if (dec.token() != K_ERROR) return failed("redact: trailing data after the JSON object");
  w.byte(0x7d);
  const r = new Result();
  r.value = w.view().slice(0);
  return r;
}
