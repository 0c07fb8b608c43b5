//! Runs handlers natively, without Wasm, against in-memory state and config
//! with the broker's batch semantics: a batch sees its own state writes, and
//! the writes of a failed batch are discarded. Build tests with
//! `rustc --test` (or `weir transform build --test`).
//!
//! ```ignore
//! let mut h = Harness::new(Options { config: vec![("fields", "card")], ..Options::default() });
//! let out = h.records(WEIR_HANDLER, &[kv("k", r#"{"card":"4111"}"#)]).unwrap();
//! assert_eq!(out.values(), vec![r#"{"card":"***"}"#]);
//! ```

use crate::abi::{self, Reader};
use crate::{Handler, Host};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The largest state key plus value the broker takes by default (1 MiB).
pub const STATE_LIMIT: usize = 1 << 20;

/// An owned record for tests: input records and emitted ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owned {
    /// `None`: the harness numbers input records in order.
    pub offset: Option<i64>,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Owned {
    /// The value as UTF-8 (lossy).
    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// A record with a string key and value; an empty key is no key.
pub fn kv(key: &str, value: &str) -> Owned {
    Owned {
        key: if key.is_empty() { None } else { Some(key.as_bytes().to_vec()) },
        value: value.as_bytes().to_vec(),
        ..Owned::default()
    }
}

/// Harness settings. The default has one output named "out", input topic
/// "in", partition 0, no config.
#[derive(Clone, Debug)]
pub struct Options {
    pub topic: String,
    pub partition: i32,
    pub outputs: Vec<String>,
    pub config: Vec<(&'static str, &'static str)>,
    /// Nanoseconds since the Unix epoch for `Context::now`; `None` is the clock.
    pub now: Option<i64>,
}

impl Default for Options {
    fn default() -> Self {
        Options { topic: "in".into(), partition: 0, outputs: vec!["out".into()], config: Vec::new(), now: None }
    }
}

/// One emitted record with its output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    pub output: String,
    pub output_index: usize,
    pub record: Owned,
}

/// One dead-lettered input record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dead {
    pub index: usize,
    pub reason: String,
}

/// One state write (`value: None` is a delete).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// One log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    pub level: i32,
    pub msg: String,
}

/// What a successful batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub emitted: Vec<Emitted>,
    pub dead: Vec<Dead>,
    pub changes: Vec<Change>,
    pub logs: Vec<Log>,
}

impl Output {
    /// The emitted values as strings, in order.
    pub fn values(&self) -> Vec<String> {
        self.emitted.iter().map(|e| e.record.value_str()).collect()
    }
}

/// Runs batches against one partition's state. Not for concurrent use.
pub struct Harness {
    opts: Options,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    next: i64,
}

impl Harness {
    pub fn new(opts: Options) -> Self {
        Harness { opts, state: BTreeMap::new(), next: 0 }
    }

    /// The committed state.
    pub fn state(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.state
    }

    /// Runs a record handler over one batch of `records`.
    pub fn records(&mut self, h: crate::RecordHandler, records: &[Owned]) -> Result<Output, String> {
        self.run(Handler::Record(h), records)
    }

    /// Runs a batch handler over one batch of `records`.
    pub fn batch(&mut self, h: crate::BatchHandler, records: &[Owned]) -> Result<Output, String> {
        self.run(Handler::Batch(h), records)
    }

    /// Runs `handler` (e.g. the `WEIR_HANDLER` that `on_record!` defines)
    /// over one batch; `Err` carries the batch's failure message.
    pub fn run(&mut self, handler: Handler, records: &[Owned]) -> Result<Output, String> {
        let mut inputs = records.to_vec();
        let mut buf = Vec::new();
        abi::put_batch_header(&mut buf, &self.opts.topic, self.opts.partition, &self.opts.outputs, inputs.len());
        for r in &mut inputs {
            let off = r.offset.unwrap_or(self.next);
            r.offset = Some(off);
            self.next = off + 1;
            let headers = r.headers.iter().map(|(k, v)| abi::Header { key: k, value: v }).collect();
            let rec = abi::Record { offset: off, timestamp: r.timestamp, key: r.key.as_deref(), value: &r.value, headers };
            abi::put_record(&mut buf, &rec);
        }
        let mut host = TestHost { opts: &self.opts, inputs: &inputs, committed: &self.state, staged: BTreeMap::new(), out: Output::default(), failed: None };
        let code = crate::run(&mut host, &buf, handler);
        if code != 0 || host.failed.is_some() {
            return Err(host.failed.unwrap_or_else(|| format!("weir_process returned {}", code)));
        }
        let (staged, out) = (host.staged, host.out);
        for (k, v) in staged {
            match v {
                Some(v) => self.state.insert(k, v),
                None => self.state.remove(&k),
            };
        }
        Ok(out)
    }
}

struct TestHost<'a> {
    opts: &'a Options,
    inputs: &'a [Owned],
    committed: &'a BTreeMap<Vec<u8>, Vec<u8>>,
    staged: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    out: Output,
    failed: Option<String>,
}

impl<'a> TestHost<'a> {
    /// Records a host-side failure, as the broker does: the batch fails.
    fn refuse(&mut self, code: i32, what: &str) -> i32 {
        if self.failed.is_none() {
            self.failed = Some(format!("{} (code {})", what, code));
        }
        code
    }

    fn decode_frames(&mut self, frames: &[u8]) -> Result<(), (i32, &'static str)> {
        let mut r = Reader::new(frames);
        let n = self.opts.outputs.len();
        while !r.is_empty() {
            let out = r.u32().map_err(|_| (abi::ERR_MALFORMED, "emit: malformed frames"))?;
            let (idx, record) = if out & abi::FORWARD != 0 {
                let i = r.u32().map_err(|_| (abi::ERR_MALFORMED, "emit: malformed frames"))? as usize;
                let rec = self.inputs.get(i).ok_or((abi::ERR_BAD_INDEX, "emit: forward index out of range"))?;
                ((out & !abi::FORWARD) as usize, rec.clone())
            } else {
                let rec = r.record().map_err(|_| (abi::ERR_MALFORMED, "emit: malformed frames"))?;
                let owned = Owned {
                    offset: None,
                    timestamp: rec.timestamp,
                    key: rec.key.map(|k| k.to_vec()),
                    value: rec.value.to_vec(),
                    headers: rec.headers.iter().map(|h| (h.key.to_vec(), h.value.to_vec())).collect(),
                };
                (out as usize, owned)
            };
            if idx >= n {
                return Err((abi::ERR_BAD_OUTPUT, "emit: output index out of range"));
            }
            self.out.emitted.push(Emitted { output: self.opts.outputs[idx].clone(), output_index: idx, record });
        }
        Ok(())
    }

    fn write(&mut self, key: &[u8], value: Option<&[u8]>) -> i32 {
        if key.len() + value.map_or(0, |v| v.len()) > STATE_LIMIT {
            return self.refuse(abi::ERR_STATE_LIMIT, "state: key or value too large");
        }
        self.staged.insert(key.to_vec(), value.map(|v| v.to_vec()));
        self.out.changes.push(Change { key: key.to_vec(), value: value.map(|v| v.to_vec()) });
        0
    }
}

impl<'a> Host for TestHost<'a> {
    fn emit(&mut self, frames: &[u8]) -> i32 {
        match self.decode_frames(frames) {
            Ok(()) => 0,
            Err((code, what)) => self.refuse(code, what),
        }
    }
    fn dead_letter(&mut self, index: u32, reason: &str) -> i32 {
        if index as usize >= self.inputs.len() {
            return self.refuse(abi::ERR_BAD_INDEX, "dead_letter: index out of range");
        }
        self.out.dead.push(Dead { index: index as usize, reason: reason.to_string() });
        0
    }
    fn state_get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        match self.staged.get(key) {
            Some(v) => v.clone(),
            None => self.committed.get(key).cloned(),
        }
    }
    fn state_put(&mut self, key: &[u8], value: &[u8]) -> i32 {
        self.write(key, Some(value))
    }
    fn state_delete(&mut self, key: &[u8]) -> i32 {
        self.write(key, None)
    }
    fn config_get(&mut self, key: &str) -> Option<String> {
        self.opts.config.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string())
    }
    fn log(&mut self, level: i32, msg: &str) {
        self.out.logs.push(Log { level, msg: msg.to_string() });
    }
    fn now(&mut self) -> i64 {
        self.opts.now.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64))
    }
    fn random(&mut self, buf: &mut [u8]) {
        // Not cryptographic: tests only need bytes that vary.
        let mut x = self.now() as u64 | 1;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    fn fail(&mut self, msg: &str) {
        if self.failed.is_none() {
            self.failed = Some(msg.to_string());
        }
    }
}
