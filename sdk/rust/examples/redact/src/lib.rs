//! redact: replaces the values of the top-level JSON fields listed in
//! config `fields` (comma-separated) with the string "***", keeping the order
//! of the object's fields. A value that is not a JSON object is
//! dead-lettered, so that nothing unredacted leaves the pipeline.
//!
//! It produces byte for byte what the Go example (examples/redact, on Go's
//! encoding/json) produces, dead-letter reasons included: `json` below
//! follows encoding/json's scanner, Decoder token stream, string unquoting
//! and Marshal escaping.

use weir_transform::{Context, Error, Record};

weir_transform::on_record!(redact);

pub fn redact(r: &Record, ctx: &mut Context) -> Result<(), Error> {
    let cfg = ctx.config("fields").unwrap_or_default();
    let fields: Vec<&str> = cfg.split(',').map(|f| f.trim()).filter(|f| !f.is_empty()).collect();
    match json::redact_object(r.value, &fields) {
        Ok(v) => ctx.emit(&Record { value: &v, ..r.clone() }),
        Err(reason) => ctx.dead_letter(&reason),
    }
}

mod json {
    //! The parts of Go's encoding/json that redact's output depends on.

    const MAX_DEPTH: usize = 10000;

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Scan {
        Continue,
        EndObject,
        EndArray,
        SkipSpace,
        End,
        Error,
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Parse {
        ObjectKey,
        ObjectValue,
        ArrayValue,
    }

    #[derive(Clone, Copy)]
    enum St {
        BeginValue,
        BeginValueOrEmpty,
        BeginStringOrEmpty,
        BeginString,
        EndValue,
        EndTop,
        InString,
        InStringEsc,
        EscU(u8),
        Neg,
        Zero,
        One,
        Dot,
        Dot0,
        E,
        ESign,
        E0,
        Lit(&'static [u8], usize),
        Error,
    }

    fn is_space(c: u8) -> bool {
        c == b' ' || c == b'\t' || c == b'\r' || c == b'\n'
    }

    /// Go's quoteChar: strconv.Quote of the byte taken as a rune, in single quotes.
    fn quote_char(c: u8) -> String {
        match c {
            b'\'' => "'\\''".to_string(),
            b'"' => "'\"'".to_string(),
            b'\\' => "'\\\\'".to_string(),
            7 => "'\\a'".into(),
            8 => "'\\b'".into(),
            0x0c => "'\\f'".into(),
            b'\n' => "'\\n'".into(),
            b'\r' => "'\\r'".into(),
            b'\t' => "'\\t'".into(),
            0x0b => "'\\v'".into(),
            0..=0x1f | 0x7f => format!("'\\x{:02x}'", c),
            0x20..=0x7e => format!("'{}'", c as char),
            0x80..=0xa0 | 0xad => format!("'\\u{:04x}'", c),
            _ => format!("'{}'", c as char),
        }
    }

    struct Scanner {
        step: St,
        parse: Vec<Parse>,
        err: String,
    }

    impl Scanner {
        fn new() -> Self {
            Scanner { step: St::BeginValue, parse: Vec::new(), err: String::new() }
        }

        fn error(&mut self, c: u8, context: &str) -> Scan {
            self.step = St::Error;
            self.err = format!("invalid character {} {}", quote_char(c), context);
            Scan::Error
        }

        fn push(&mut self, c: u8, p: Parse) -> Scan {
            self.parse.push(p);
            if self.parse.len() <= MAX_DEPTH {
                return Scan::Continue;
            }
            self.error(c, "exceeded max depth")
        }

        fn pop(&mut self) {
            self.parse.pop();
            self.step = if self.parse.is_empty() { St::EndTop } else { St::EndValue };
        }

        fn begin_value(&mut self, c: u8) -> Scan {
            if is_space(c) {
                return Scan::SkipSpace;
            }
            match c {
                b'{' => {
                    self.step = St::BeginStringOrEmpty;
                    self.push(c, Parse::ObjectKey)
                }
                b'[' => {
                    self.step = St::BeginValueOrEmpty;
                    self.push(c, Parse::ArrayValue)
                }
                b'"' => self.go(St::InString),
                b'-' => self.go(St::Neg),
                b'0' => self.go(St::Zero),
                b't' => self.go(St::Lit(b"true", 1)),
                b'f' => self.go(St::Lit(b"false", 1)),
                b'n' => self.go(St::Lit(b"null", 1)),
                b'1'..=b'9' => self.go(St::One),
                _ => self.error(c, "looking for beginning of value"),
            }
        }

        fn go(&mut self, s: St) -> Scan {
            self.step = s;
            Scan::Continue
        }

        fn end_value(&mut self, c: u8) -> Scan {
            let n = self.parse.len();
            if n == 0 {
                self.step = St::EndTop;
                return self.end_top(c);
            }
            if is_space(c) {
                self.step = St::EndValue;
                return Scan::SkipSpace;
            }
            match self.parse[n - 1] {
                Parse::ObjectKey => {
                    if c == b':' {
                        self.parse[n - 1] = Parse::ObjectValue;
                        return self.go(St::BeginValue);
                    }
                    self.error(c, "after object key")
                }
                Parse::ObjectValue => {
                    if c == b',' {
                        self.parse[n - 1] = Parse::ObjectKey;
                        return self.go(St::BeginString);
                    }
                    if c == b'}' {
                        self.pop();
                        return Scan::EndObject;
                    }
                    self.error(c, "after object key:value pair")
                }
                Parse::ArrayValue => {
                    if c == b',' {
                        return self.go(St::BeginValue);
                    }
                    if c == b']' {
                        self.pop();
                        return Scan::EndArray;
                    }
                    self.error(c, "after array element")
                }
            }
        }

        fn end_top(&mut self, c: u8) -> Scan {
            if !is_space(c) {
                self.error(c, "after top-level value");
            }
            Scan::End
        }

        fn step(&mut self, c: u8) -> Scan {
            let digit = c.is_ascii_digit();
            match self.step {
                St::BeginValue => self.begin_value(c),
                St::BeginValueOrEmpty => {
                    if is_space(c) {
                        Scan::SkipSpace
                    } else if c == b']' {
                        self.end_value(c)
                    } else {
                        self.begin_value(c)
                    }
                }
                St::BeginStringOrEmpty => {
                    if is_space(c) {
                        return Scan::SkipSpace;
                    }
                    if c == b'}' {
                        let n = self.parse.len();
                        self.parse[n - 1] = Parse::ObjectValue;
                        return self.end_value(c);
                    }
                    self.begin_string(c)
                }
                St::BeginString => self.begin_string(c),
                St::EndValue => self.end_value(c),
                St::EndTop => self.end_top(c),
                St::InString => match c {
                    b'"' => self.go(St::EndValue),
                    b'\\' => self.go(St::InStringEsc),
                    0..=0x1f => self.error(c, "in string literal"),
                    _ => Scan::Continue,
                },
                St::InStringEsc => match c {
                    b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => self.go(St::InString),
                    b'u' => self.go(St::EscU(0)),
                    _ => self.error(c, "in string escape code"),
                },
                St::EscU(n) => {
                    if c.is_ascii_hexdigit() {
                        self.go(if n == 3 { St::InString } else { St::EscU(n + 1) })
                    } else {
                        self.error(c, "in \\u hexadecimal character escape")
                    }
                }
                St::Neg => match c {
                    b'0' => self.go(St::Zero),
                    b'1'..=b'9' => self.go(St::One),
                    _ => self.error(c, "in numeric literal"),
                },
                St::One if digit => self.go(St::One),
                St::One | St::Zero => match c {
                    b'.' => self.go(St::Dot),
                    b'e' | b'E' => self.go(St::E),
                    _ => self.end_value(c),
                },
                St::Dot if digit => self.go(St::Dot0),
                St::Dot => self.error(c, "after decimal point in numeric literal"),
                St::Dot0 if digit => Scan::Continue,
                St::Dot0 if c == b'e' || c == b'E' => self.go(St::E),
                St::Dot0 => self.end_value(c),
                St::E if c == b'+' || c == b'-' => self.go(St::ESign),
                St::E | St::ESign if digit => self.go(St::E0),
                St::E | St::ESign => self.error(c, "in exponent of numeric literal"),
                St::E0 if digit => Scan::Continue,
                St::E0 => self.end_value(c),
                St::Lit(word, i) => {
                    if c == word[i] {
                        self.go(if i + 1 == word.len() { St::EndValue } else { St::Lit(word, i + 1) })
                    } else {
                        let ctx = format!("in literal {} (expecting '{}')", std::str::from_utf8(word).unwrap(), word[i] as char);
                        self.error(c, &ctx)
                    }
                }
                St::Error => Scan::Error,
            }
        }

        fn begin_string(&mut self, c: u8) -> Scan {
            if is_space(c) {
                return Scan::SkipSpace;
            }
            if c == b'"' {
                return self.go(St::InString);
            }
            self.error(c, "looking for beginning of object key string")
        }
    }

    /// Decoder.readValue: the end of the JSON value starting at `start`.
    fn read_value(buf: &[u8], start: usize) -> Result<usize, String> {
        let mut s = Scanner::new();
        for (i, &c) in buf.iter().enumerate().skip(start) {
            match s.step(c) {
                Scan::End => return Ok(i),
                Scan::EndObject | Scan::EndArray => {
                    if s.end_value(b' ') == Scan::End {
                        return Ok(i + 1);
                    }
                }
                Scan::Error => return Err(s.err),
                _ => {}
            }
        }
        if s.step(b' ') == Scan::End {
            return Ok(buf.len());
        }
        if buf[start..].iter().any(|&c| !is_space(c)) {
            return Err("unexpected EOF".into());
        }
        Err("EOF".into())
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Tok {
        TopValue,
        ArrayStart,
        ArrayValue,
        ArrayComma,
        ObjectStart,
        ObjectKey,
        ObjectColon,
        ObjectValue,
        ObjectComma,
    }

    enum Token {
        Delim(u8),
        Key(Vec<u8>),
        Value,
    }

    /// Go's json.Decoder over a whole value, as far as Token, More and
    /// Decode into a json.RawMessage go.
    struct Decoder<'a> {
        buf: &'a [u8],
        p: usize,
        state: Tok,
        stack: Vec<Tok>,
    }

    impl<'a> Decoder<'a> {
        fn peek(&mut self) -> Option<u8> {
            let i = self.buf[self.p..].iter().position(|&c| !is_space(c))?;
            self.p += i;
            Some(self.buf[self.p])
        }

        fn value_allowed(&self) -> bool {
            matches!(self.state, Tok::TopValue | Tok::ArrayStart | Tok::ArrayValue | Tok::ObjectValue)
        }

        fn value_end(&mut self) {
            match self.state {
                Tok::ArrayStart | Tok::ArrayValue => self.state = Tok::ArrayComma,
                Tok::ObjectValue => self.state = Tok::ObjectComma,
                _ => {}
            }
        }

        fn token_error(&self, c: u8) -> String {
            let context = match self.state {
                Tok::TopValue | Tok::ArrayStart | Tok::ArrayValue | Tok::ObjectValue => " looking for beginning of value",
                Tok::ArrayComma => " after array element",
                Tok::ObjectKey => " looking for beginning of object key string",
                Tok::ObjectColon => " after object key",
                Tok::ObjectComma => " after object key:value pair",
                Tok::ObjectStart => "",
            };
            format!("invalid character {}{}", quote_char(c), context)
        }

        /// Decode: the raw bytes of the next value.
        fn decode(&mut self) -> Result<&'a [u8], String> {
            match self.state {
                Tok::ArrayComma => {
                    if self.peek().ok_or("EOF")? != b',' {
                        return Err("expected comma after array element".into());
                    }
                    self.p += 1;
                    self.state = Tok::ArrayValue;
                }
                Tok::ObjectColon => {
                    if self.peek().ok_or("EOF")? != b':' {
                        return Err("expected colon after object key".into());
                    }
                    self.p += 1;
                    self.state = Tok::ObjectValue;
                }
                _ => {}
            }
            if !self.value_allowed() {
                return Err("not at beginning of value".into());
            }
            let end = read_value(self.buf, self.p)?;
            let raw = &self.buf[self.p..end];
            self.p = end;
            self.value_end();
            Ok(raw)
        }

        fn open(&mut self, c: u8, next: Tok) -> Result<Token, String> {
            if !self.value_allowed() {
                return Err(self.token_error(c));
            }
            self.p += 1;
            self.stack.push(self.state);
            self.state = next;
            Ok(Token::Delim(c))
        }

        fn close(&mut self, c: u8, ok: [Tok; 2]) -> Result<Token, String> {
            if !ok.contains(&self.state) {
                return Err(self.token_error(c));
            }
            self.p += 1;
            self.state = self.stack.pop().unwrap_or(Tok::TopValue);
            self.value_end();
            Ok(Token::Delim(c))
        }

        fn token(&mut self) -> Result<Token, String> {
            loop {
                let c = self.peek().ok_or("EOF")?;
                match c {
                    b'[' => return self.open(c, Tok::ArrayStart),
                    b'{' => return self.open(c, Tok::ObjectStart),
                    b']' => return self.close(c, [Tok::ArrayStart, Tok::ArrayComma]),
                    b'}' => return self.close(c, [Tok::ObjectStart, Tok::ObjectComma]),
                    b':' => {
                        if self.state != Tok::ObjectColon {
                            return Err(self.token_error(c));
                        }
                        self.p += 1;
                        self.state = Tok::ObjectValue;
                    }
                    b',' if self.state == Tok::ArrayComma => {
                        self.p += 1;
                        self.state = Tok::ArrayValue;
                    }
                    b',' if self.state == Tok::ObjectComma => {
                        self.p += 1;
                        self.state = Tok::ObjectKey;
                    }
                    b',' => return Err(self.token_error(c)),
                    b'"' if self.state == Tok::ObjectStart || self.state == Tok::ObjectKey => {
                        let old = self.state;
                        self.state = Tok::TopValue;
                        let raw = self.decode();
                        self.state = old;
                        let raw = raw?;
                        self.state = Tok::ObjectColon;
                        return Ok(Token::Key(unquote(raw)));
                    }
                    _ => {
                        if !self.value_allowed() {
                            return Err(self.token_error(c));
                        }
                        self.decode()?;
                        return Ok(Token::Value);
                    }
                }
            }
        }

        fn more(&mut self) -> bool {
            matches!(self.peek(), Some(c) if c != b']' && c != b'}')
        }
    }

    /// utf8.DecodeRune: (rune, size), (0xFFFD, 1) for invalid input.
    fn decode_rune(s: &[u8]) -> (u32, usize) {
        let c0 = s[0];
        if c0 < 0x80 {
            return (c0 as u32, 1);
        }
        let (n, lo, hi) = match c0 {
            0xc2..=0xdf => (2, 0x80, 0xbf),
            0xe0 => (3, 0xa0, 0xbf),
            0xe1..=0xec | 0xee..=0xef => (3, 0x80, 0xbf),
            0xed => (3, 0x80, 0x9f),
            0xf0 => (4, 0x90, 0xbf),
            0xf1..=0xf3 => (4, 0x80, 0xbf),
            0xf4 => (4, 0x80, 0x8f),
            _ => return (0xfffd, 1),
        };
        if s.len() < n || s[1] < lo || s[1] > hi || s[2..n].iter().any(|&c| !(0x80..=0xbf).contains(&c)) {
            return (0xfffd, 1);
        }
        let mut r = (c0 as u32) & (0x7f >> n);
        for &c in &s[1..n] {
            r = r << 6 | (c as u32 & 0x3f);
        }
        (r, n)
    }

    fn push_rune(b: &mut Vec<u8>, r: u32) {
        let c = char::from_u32(r).unwrap_or('\u{fffd}');
        let mut tmp = [0u8; 4];
        b.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
    }

    fn getu4(s: &[u8]) -> Option<u32> {
        if s.len() < 6 || s[0] != b'\\' || s[1] != b'u' {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(&s[2..6]).ok()?, 16).ok()
    }

    /// unquoteBytes of a scanned string literal (quotes included).
    fn unquote(lit: &[u8]) -> Vec<u8> {
        let s = &lit[1..lit.len() - 1];
        let mut b = Vec::with_capacity(s.len());
        let mut r = 0;
        while r < s.len() {
            let c = s[r];
            if c == b'\\' {
                let e = s[r + 1];
                r += 2;
                match e {
                    b'b' => b.push(8),
                    b'f' => b.push(0x0c),
                    b'n' => b.push(b'\n'),
                    b'r' => b.push(b'\r'),
                    b't' => b.push(b'\t'),
                    b'u' => {
                        let mut rr = getu4(&s[r - 2..]).unwrap_or(0xfffd);
                        r += 4;
                        if (0xd800..0xe000).contains(&rr) {
                            match getu4(&s[r..]) {
                                Some(r2) if rr < 0xdc00 && (0xdc00..0xe000).contains(&r2) => {
                                    rr = 0x10000 + ((rr - 0xd800) << 10 | (r2 - 0xdc00));
                                    r += 6;
                                }
                                _ => rr = 0xfffd,
                            }
                        }
                        push_rune(&mut b, rr);
                    }
                    _ => b.push(e),
                }
            } else if c < 0x80 {
                b.push(c);
                r += 1;
            } else {
                let (rr, n) = decode_rune(&s[r..]);
                push_rune(&mut b, rr);
                r += n;
            }
        }
        b
    }

    /// json.Marshal of a string (HTML-safe escaping).
    fn marshal(s: &[u8], dst: &mut Vec<u8>) {
        const HEX: &[u8] = b"0123456789abcdef";
        dst.push(b'"');
        let mut i = 0;
        while i < s.len() {
            let c = s[i];
            if c < 0x80 {
                match c {
                    b'\\' | b'"' => dst.extend_from_slice(&[b'\\', c]),
                    8 => dst.extend_from_slice(b"\\b"),
                    0x0c => dst.extend_from_slice(b"\\f"),
                    b'\n' => dst.extend_from_slice(b"\\n"),
                    b'\r' => dst.extend_from_slice(b"\\r"),
                    b'\t' => dst.extend_from_slice(b"\\t"),
                    0..=0x1f | b'<' | b'>' | b'&' => dst.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]),
                    _ => dst.push(c),
                }
                i += 1;
                continue;
            }
            let (r, n) = decode_rune(&s[i..]);
            if r == 0xfffd && n == 1 {
                dst.extend_from_slice(b"\\ufffd");
            } else if r == 0x2028 || r == 0x2029 {
                dst.extend_from_slice(&[b'\\', b'u', b'2', b'0', b'2', HEX[(r & 15) as usize]]);
            } else {
                dst.extend_from_slice(&s[i..i + n]);
            }
            i += n;
        }
        dst.push(b'"');
    }

    /// json.Compact of a valid value: drops the spaces outside strings.
    fn compact(raw: &[u8], dst: &mut Vec<u8>) {
        let (mut in_str, mut esc) = (false, false);
        for &c in raw {
            if in_str {
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    esc = true;
                } else if c == b'"' {
                    in_str = false;
                }
            } else if c == b'"' {
                in_str = true;
            } else if is_space(c) {
                continue;
            }
            dst.push(c);
        }
    }

    /// The Go example's redactObject, message for message.
    pub fn redact_object(value: &[u8], fields: &[&str]) -> Result<Vec<u8>, String> {
        let mut dec = Decoder { buf: value, p: 0, state: Tok::TopValue, stack: Vec::new() };
        if !matches!(dec.token(), Ok(Token::Delim(b'{'))) {
            return Err("redact: value is not a JSON object".into());
        }
        let mut out = vec![b'{'];
        let mut i = 0;
        while dec.more() {
            let key = match dec.token() {
                Ok(Token::Key(k)) => k,
                Ok(_) => return Err("redact: bad JSON: not a key".into()),
                Err(e) => return Err(format!("redact: bad JSON: {}", e)),
            };
            let raw = dec.decode().map_err(|e| format!("redact: bad JSON: {}", e))?;
            if i > 0 {
                out.push(b',');
            }
            marshal(&key, &mut out);
            out.push(b':');
            if fields.iter().any(|f| f.as_bytes() == key.as_slice()) {
                out.extend_from_slice(b"\"***\"");
            } else {
                compact(raw, &mut out);
            }
            i += 1;
        }
        if !matches!(dec.token(), Ok(Token::Delim(b'}'))) {
            return Err("redact: bad JSON object".into());
        }
        if dec.token().is_ok() {
            return Err("redact: trailing data after the JSON object".into());
        }
        out.push(b'}');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use weir_transform::testing::{kv, Harness, Options};

    #[test]
    fn redacts_fields_and_dead_letters_non_objects() {
        let mut h = Harness::new(Options { config: vec![("fields", "card, email")], ..Options::default() });
        let out = h
            .run(
                super::WEIR_HANDLER,
                &[
                    kv("1", r#"{"id":1,"card":"4111","email":"a@b","nested":{"card":"x"}}"#),
                    kv("2", r#"{"id":2}"#),
                    kv("3", "not json"),
                    kv("4", r#"{"card":{"deep":[1,2]} , "z" : true}"#),
                ],
            )
            .unwrap();
        assert_eq!(
            out.values(),
            vec![r#"{"id":1,"card":"***","email":"***","nested":{"card":"x"}}"#, r#"{"id":2}"#, r#"{"card":"***","z":true}"#]
        );
        assert_eq!(out.dead.len(), 1);
        assert_eq!(out.dead[0].index, 2);
        assert_eq!(out.dead[0].reason, "redact: value is not a JSON object");
    }

    #[test]
    fn reasons_follow_go() {
        let mut h = Harness::new(Options::default());
        let cases = [
            (r#"{"a":1,}"#, "redact: bad JSON: invalid character '}' looking for beginning of object key string"),
            (r#"{"a":1"#, "redact: bad JSON object"),
            ("{} x", ""),
            (r#"{"a" 1}"#, "redact: bad JSON: expected colon after object key"),
            (r#"{"a":tru}"#, "redact: bad JSON: invalid character '}' in literal true (expecting 'e')"),
            (r#"{"a":1"b":2}"#, "redact: bad JSON: invalid character '\"' after object key:value pair"),
            ("{\"a\":   ", "redact: bad JSON: EOF"),
            ("{\"a\":  1.", "redact: bad JSON: unexpected EOF"),
            (r#"{1}"#, "redact: bad JSON: invalid character '1'"),
            (r#"{} {"#, "redact: trailing data after the JSON object"),
        ];
        let recs: Vec<_> = cases.iter().map(|(v, _)| kv("", v)).collect();
        let out = h.run(super::WEIR_HANDLER, &recs).unwrap();
        let reasons: Vec<_> = out.dead.iter().map(|d| d.reason.as_str()).collect();
        let want: Vec<_> = cases.iter().map(|(_, r)| *r).filter(|r| !r.is_empty()).collect();
        assert_eq!(out.values(), vec!["{}"]);
        assert_eq!(reasons, want);
    }
}
