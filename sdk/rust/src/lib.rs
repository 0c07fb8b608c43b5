//! Weir transforms in Rust: the guest side of the Weir Wasm ABI
//! (docs/abi.md), with only the standard library.
//!
//! A transform is a `cdylib` built for `wasm32-wasi` that registers one
//! handler with [`on_record!`] or [`on_batch!`]:
//!
//! ```ignore
//! use weir_transform::{Context, Error, Record};
//!
//! weir_transform::on_record!(upper);
//!
//! pub fn upper(r: &Record, ctx: &mut Context) -> Result<(), Error> {
//!     if r.value.is_empty() {
//!         return ctx.dead_letter("empty value");
//!     }
//!     let v = r.value.to_ascii_uppercase();
//!     ctx.emit(&Record { value: &v, ..r.clone() })
//! }
//! ```
//!
//! Build it with `weir transform build` (or `rustc --edition 2021 --target
//! wasm32-wasi --crate-type cdylib -O --extern weir_transform=…`), test it
//! natively with [`testing::Harness`] and `rustc --test`.
//!
//! Returning an error fails the whole batch: nothing it emitted or wrote
//! takes effect and the pipeline retries it. Use [`Context::dead_letter`] for
//! one bad record. A panic traps the module, which fails the batch too.

pub mod abi;
pub mod testing;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use abi::{Batch, Header, Record};

use std::fmt;

/// A handler's error: it fails the batch with this message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(s.to_string())
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

/// Handles one input record.
pub type RecordHandler = fn(&Record, &mut Context) -> Result<(), Error>;
/// Handles one batch of input records.
pub type BatchHandler = fn(&Batch, &mut Context) -> Result<(), Error>;

/// The module's handler, as registered by [`on_record!`] or [`on_batch!`].
#[derive(Clone, Copy)]
pub enum Handler {
    Record(RecordHandler),
    Batch(BatchHandler),
}

/// The host functions a transform calls: the broker's imports in a Wasm
/// build, [`testing::Harness`] natively. Transforms never call it directly.
pub trait Host {
    /// ABI-encoded emitted frames; 0 or an `abi::ERR_*` code.
    fn emit(&mut self, frames: &[u8]) -> i32;
    fn dead_letter(&mut self, index: u32, reason: &str) -> i32;
    fn state_get(&mut self, key: &[u8]) -> Option<Vec<u8>>;
    fn state_put(&mut self, key: &[u8], value: &[u8]) -> i32;
    fn state_delete(&mut self, key: &[u8]) -> i32;
    fn config_get(&mut self, key: &str) -> Option<String>;
    fn log(&mut self, level: i32, msg: &str);
    /// Nanoseconds since the Unix epoch.
    fn now(&mut self) -> i64;
    fn random(&mut self, buf: &mut [u8]);
    fn fail(&mut self, msg: &str);
}

const EMIT_FLUSH_BYTES: usize = 256 << 10;

/// A handler's view of the host for one batch.
pub struct Context<'a> {
    host: &'a mut dyn Host,
    batch: &'a Batch<'a>,
    cur: Option<usize>,
    emit_buf: Vec<u8>,
    config: Vec<(String, Option<String>)>,
    err: Option<Error>,
}

fn host_err(func: &str, code: i32) -> Error {
    Error(match code {
        abi::ERR_OUTPUT_LIMIT => format!("transform: host refused the call: {}: output limit exceeded", func),
        abi::ERR_STATE_LIMIT => format!("transform: host refused the call: {}: key or value too large", func),
        _ => format!("transform: host refused the call: {}: code {}", func, code),
    })
}

impl<'a> Context<'a> {
    /// The pipeline's output topics; index 0 is the first.
    pub fn outputs(&self) -> &[String] {
        &self.batch.outputs
    }

    /// The input topic of the batch.
    pub fn topic(&self) -> &str {
        &self.batch.topic
    }

    /// The input partition of the batch.
    pub fn partition(&self) -> i32 {
        self.batch.partition
    }

    /// The index in the batch of the record an `on_record` handler handles.
    pub fn index(&self) -> Option<usize> {
        self.cur
    }

    fn check(&self) -> Result<(), Error> {
        match &self.err {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn output_index(&self, name: &str) -> Result<usize, Error> {
        self.batch
            .outputs
            .iter()
            .position(|o| o == name)
            .ok_or_else(|| Error(format!("transform: unknown output {:?}", name)))
    }

    fn check_output(&self, out: usize) -> Result<(), Error> {
        if self.batch.outputs.is_empty() {
            return Err("transform: the pipeline has no outputs".into());
        }
        if out >= self.batch.outputs.len() {
            return Err(Error(format!("transform: unknown output index {}", out)));
        }
        Ok(())
    }

    /// Sends `r` to the first output.
    pub fn emit(&mut self, r: &Record) -> Result<(), Error> {
        self.emit_to_index(0, r)
    }

    /// Sends `r` to the output topic named `output`.
    pub fn emit_to(&mut self, output: &str, r: &Record) -> Result<(), Error> {
        let i = self.output_index(output)?;
        self.emit_to_index(i, r)
    }

    /// Sends `r` to output `out` (an index into [`outputs`](Self::outputs)).
    pub fn emit_to_index(&mut self, out: usize, r: &Record) -> Result<(), Error> {
        self.check()?;
        self.check_output(out)?;
        abi::put_emitted(&mut self.emit_buf, out as u32, r);
        self.maybe_flush()
    }

    /// Passes the current input record on to the first output unchanged
    /// (the host copies it: the cheap way to filter and route).
    pub fn forward(&mut self) -> Result<(), Error> {
        let i = self.cur.ok_or_else(|| Error::from("transform: no current record"))?;
        self.forward_at(i, 0)
    }

    /// Passes the current input record on unchanged to the output named `output`.
    pub fn forward_to(&mut self, output: &str) -> Result<(), Error> {
        let i = self.cur.ok_or_else(|| Error::from("transform: no current record"))?;
        let out = self.output_index(output)?;
        self.forward_at(i, out)
    }

    /// Passes input record `i` of the batch unchanged to output `out`.
    pub fn forward_at(&mut self, i: usize, out: usize) -> Result<(), Error> {
        self.check()?;
        if i >= self.batch.records.len() {
            return Err("transform: no current record".into());
        }
        self.check_output(out)?;
        abi::put_forward(&mut self.emit_buf, out as u32, i as u32);
        self.maybe_flush()
    }

    fn maybe_flush(&mut self) -> Result<(), Error> {
        if self.emit_buf.len() >= EMIT_FLUSH_BYTES {
            return self.flush();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.check()?;
        if self.emit_buf.is_empty() {
            return Ok(());
        }
        let code = self.host.emit(&self.emit_buf);
        self.emit_buf.clear();
        self.record(code, "emit")
    }

    fn record(&mut self, code: i32, func: &str) -> Result<(), Error> {
        if code != 0 {
            self.err = Some(host_err(func, code));
        }
        self.check()
    }

    /// Rejects the current input record: it goes to the pipeline's
    /// dead-letter topic with `reason`, and the batch goes on.
    pub fn dead_letter(&mut self, reason: &str) -> Result<(), Error> {
        let i = self.cur.ok_or_else(|| Error::from("transform: no current record"))?;
        self.dead_letter_at(i, reason)
    }

    /// Rejects input record `i` of the batch.
    pub fn dead_letter_at(&mut self, i: usize, reason: &str) -> Result<(), Error> {
        self.check()?;
        let code = self.host.dead_letter(i as u32, reason);
        self.record(code, "dead_letter")
    }

    /// The pipeline's config value for `key` (cached for the batch).
    pub fn config(&mut self, key: &str) -> Option<String> {
        if let Some((_, v)) = self.config.iter().find(|(k, _)| k == key) {
            return v.clone();
        }
        let v = self.host.config_get(key);
        self.config.push((key.to_string(), v.clone()));
        v
    }

    /// A copy of the state value under `key`. A batch sees its own writes.
    pub fn state_get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.host.state_get(key)
    }

    /// Stores `value` under `key` (kept only if the batch succeeds).
    pub fn state_put(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.check()?;
        let code = self.host.state_put(key, value);
        self.record(code, "state_put")
    }

    /// Deletes `key`.
    pub fn state_delete(&mut self, key: &[u8]) -> Result<(), Error> {
        self.check()?;
        let code = self.host.state_delete(key);
        self.record(code, "state_delete")
    }

    /// A log line at info level.
    pub fn log(&mut self, msg: &str) {
        self.host.log(abi::LEVEL_INFO, msg)
    }

    /// A log line at an `abi::LEVEL_*` level.
    pub fn log_level(&mut self, level: i32, msg: &str) {
        self.host.log(level, msg)
    }

    /// The host's wall clock, nanoseconds since the Unix epoch.
    pub fn now(&mut self) -> i64 {
        self.host.now()
    }

    /// Fills `buf` with cryptographically random bytes from the host.
    pub fn random(&mut self, buf: &mut [u8]) {
        self.host.random(buf)
    }
}

/// Decodes one ABI batch and runs `handler` over it against `host`:
/// what the Wasm export calls, and what [`testing::Harness`] calls natively.
/// Returns 0, or 1 after reporting the error to `host.fail`.
pub fn run(host: &mut dyn Host, buf: &[u8], handler: Handler) -> i32 {
    let batch = match abi::read_batch(buf) {
        Ok(b) => b,
        Err(e) => {
            host.fail(&e);
            return 1;
        }
    };
    let res = {
        let mut ctx = Context { host: &mut *host, batch: &batch, cur: None, emit_buf: Vec::new(), config: Vec::new(), err: None };
        let res = match handler {
            Handler::Batch(h) => h(&batch, &mut ctx),
            Handler::Record(h) => batch.records.iter().enumerate().try_for_each(|(i, r)| {
                ctx.cur = Some(i);
                h(r, &mut ctx)
            }),
        };
        ctx.cur = None;
        res.and_then(|_| ctx.flush()).and_then(|_| ctx.check())
    };
    match res {
        Ok(()) => 0,
        Err(e) => {
            host.fail(&e.0);
            1
        }
    }
}

/// Registers a [`RecordHandler`]: exports the ABI's functions
/// (`weir_abi_version_1`, `weir_alloc`, `weir_process`) in a Wasm build and
/// defines `WEIR_HANDLER` for tests. Use it once, at the crate root.
#[macro_export]
macro_rules! on_record {
    ($h:path) => {
        $crate::__export!($crate::Handler::Record($h));
    };
}

/// Registers a [`BatchHandler`]; see [`on_record!`].
#[macro_export]
macro_rules! on_batch {
    ($h:path) => {
        $crate::__export!($crate::Handler::Batch($h));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export {
    ($handler:expr) => {
        /// The handler this module registered.
        pub const WEIR_HANDLER: $crate::Handler = $handler;

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn weir_abi_version_1() {}

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn weir_alloc(size: i32) -> i32 {
            $crate::wasm::alloc(size)
        }

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub unsafe extern "C" fn weir_process(ptr: i32, len: i32) -> i32 {
            $crate::wasm::process(ptr, len, WEIR_HANDLER)
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::testing::{kv, Harness, Options};
    use crate::{Context, Error, Record};

    fn count(r: &Record, ctx: &mut Context) -> Result<(), Error> {
        let key = r.key.unwrap_or_default();
        let n = ctx.state_get(key).map_or(0, |v| v[0]) + 1;
        ctx.state_put(key, &[n])?;
        if r.value == b"fail" {
            return Err("asked to fail".into());
        }
        if r.value == b"fwd" {
            return ctx.forward_to("b");
        }
        ctx.emit(&Record { value: &[n], ..r.clone() })
    }

    #[test]
    fn state_is_kept_only_for_successful_batches() {
        let mut h = Harness::new(Options { outputs: vec!["a".into(), "b".into()], ..Options::default() });
        let out = h.records(count, &[kv("k", "x"), kv("k", "x"), kv("k", "fwd")]).unwrap();
        assert_eq!(out.emitted.iter().map(|e| e.record.value.clone()).collect::<Vec<_>>(), vec![vec![1], vec![2], b"fwd".to_vec()]);
        assert_eq!(out.emitted[2].output, "b");
        assert_eq!(h.state().get(&b"k"[..]), Some(&vec![3]));
        let err = h.records(count, &[kv("k", "x"), kv("k", "fail")]).unwrap_err();
        assert_eq!(err, "asked to fail");
        assert_eq!(h.state().get(&b"k"[..]), Some(&vec![3]), "a failed batch's writes are discarded");
    }

    #[test]
    fn unknown_output_and_no_record() {
        fn bad(_: &Record, ctx: &mut Context) -> Result<(), Error> {
            ctx.emit_to("nope", &Record::default())
        }
        let mut h = Harness::new(Options::default());
        assert_eq!(h.records(bad, &[kv("", "x")]).unwrap_err(), "transform: unknown output \"nope\"");
    }

    #[test]
    fn abi_round_trip() {
        let hs = vec![crate::Header { key: b"h", value: b"v" }];
        let r = Record { offset: 7, timestamp: -1, key: Some(b""), value: b"val", headers: hs };
        let mut b = Vec::new();
        crate::abi::put_batch_header(&mut b, "t", 3, &["o".to_string()], 1);
        crate::abi::put_record(&mut b, &r);
        let batch = crate::abi::read_batch(&b).unwrap();
        assert_eq!((batch.topic.as_str(), batch.partition, batch.outputs.len()), ("t", 3, 1));
        assert_eq!(batch.records[0], r);
        assert!(crate::abi::read_batch(&b[..b.len() - 1]).is_err());
    }
}
