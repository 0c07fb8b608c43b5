//! The ABI's byte encoding (docs/abi.md): little-endian, a `str` is a u32
//! length and its bytes. The host encodes batches with the same layout in Go
//! (`sdk/abi`).

/// The ABI version this crate speaks (`weir_abi_version_1`).
pub const VERSION: u32 = 1;

/// Frame flag of a forwarded input record: `FORWARD | output`, then the
/// input record's index.
pub const FORWARD: u32 = 1 << 31;

/// Log levels of the `log` host function.
pub const LEVEL_DEBUG: i32 = 0;
pub const LEVEL_INFO: i32 = 1;
pub const LEVEL_WARN: i32 = 2;
pub const LEVEL_ERROR: i32 = 3;

/// Host function error codes (every one also fails the batch on the host).
pub const ERR_MALFORMED: i32 = -1;
pub const ERR_OUTPUT_LIMIT: i32 = -2;
pub const ERR_BAD_OUTPUT: i32 = -3;
pub const ERR_BAD_INDEX: i32 = -4;
pub const ERR_STATE_LIMIT: i32 = -5;

/// One record header. Header values are arbitrary bytes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// A record: input records borrow the batch buffer; build your own to emit.
/// `key` is `None` for "no key", `Some(b"")` for an empty key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record<'a> {
    /// The input offset (ignored on emitted records).
    pub offset: i64,
    /// Milliseconds since the Unix epoch; kept on emitted records.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Vec<Header<'a>>,
}

impl<'a> Record<'a> {
    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&'a [u8]> {
        self.headers.iter().find(|h| h.key == key.as_bytes()).map(|h| h.value)
    }
}

/// Appends `v` little-endian.
pub fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

/// Appends `v` little-endian.
pub fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

/// Appends a u32 length and `p`.
pub fn put_bytes(b: &mut Vec<u8>, p: &[u8]) {
    put_u32(b, p.len() as u32);
    b.extend_from_slice(p);
}

/// Appends one record.
pub fn put_record(b: &mut Vec<u8>, r: &Record) {
    put_u64(b, r.offset as u64);
    put_u64(b, r.timestamp as u64);
    match r.key {
        None => put_u32(b, u32::MAX),
        Some(k) => put_bytes(b, k),
    }
    put_bytes(b, r.value);
    put_u32(b, r.headers.len() as u32);
    for h in &r.headers {
        put_bytes(b, h.key);
        put_bytes(b, h.value);
    }
}

/// Appends an emitted frame: output index, then the record.
pub fn put_emitted(b: &mut Vec<u8>, out: u32, r: &Record) {
    put_u32(b, out);
    put_record(b, &Record { offset: 0, ..r.clone() });
}

/// Appends a frame forwarding input record `index` to output `out`.
pub fn put_forward(b: &mut Vec<u8>, out: u32, index: u32) {
    put_u32(b, FORWARD | out);
    put_u32(b, index);
}

/// Appends a batch header; `count` records must follow.
pub fn put_batch_header(b: &mut Vec<u8>, topic: &str, partition: i32, outputs: &[String], count: usize) {
    put_u32(b, VERSION);
    put_bytes(b, topic.as_bytes());
    put_u32(b, partition as u32);
    put_u32(b, outputs.len() as u32);
    for o in outputs {
        put_bytes(b, o.as_bytes());
    }
    put_u32(b, count as u32);
}

/// The data ended early or a length was out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short;

/// Decodes ABI data; every read fails with `Short` past the end.
pub struct Reader<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, off: 0 }
    }

    /// Unread bytes.
    pub fn len(&self) -> usize {
        self.buf.len() - self.off
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        if self.len() < n {
            return Err(Short);
        }
        let p = &self.buf[self.off..self.off + n];
        self.off += n;
        Ok(p)
    }

    pub fn u32(&mut self) -> Result<u32, Short> {
        let p = self.take(4)?;
        Ok(u32::from_le_bytes([p[0], p[1], p[2], p[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, Short> {
        let lo = self.u32()? as u64;
        let hi = self.u32()? as u64;
        Ok(lo | hi << 32)
    }

    /// A u32 length and that many bytes (borrowed).
    pub fn bytes(&mut self) -> Result<&'a [u8], Short> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// One record.
    pub fn record(&mut self) -> Result<Record<'a>, Short> {
        let offset = self.u64()? as i64;
        let timestamp = self.u64()? as i64;
        let kl = self.u32()?;
        let key = if kl == u32::MAX { None } else { Some(self.take(kl as usize)?) };
        let value = self.bytes()?;
        let n = self.u32()? as usize;
        if n.saturating_mul(8) > self.len() {
            return Err(Short);
        }
        let mut headers = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.bytes()?;
            let value = self.bytes()?;
            headers.push(Header { key, value });
        }
        Ok(Record { offset, timestamp, key, value, headers })
    }
}

/// A decoded batch: where it comes from, the outputs, the records.
#[derive(Debug)]
pub struct Batch<'a> {
    pub topic: String,
    pub partition: i32,
    pub outputs: Vec<String>,
    pub records: Vec<Record<'a>>,
}

/// Decodes a whole batch (header and records).
pub fn read_batch(buf: &[u8]) -> Result<Batch<'_>, String> {
    let mut r = Reader::new(buf);
    let bad = |_| "transform: bad batch: abi: truncated or malformed data".to_string();
    let version = r.u32().map_err(bad)?;
    if version != VERSION {
        return Err(format!("transform: host speaks abi version {}, sdk {}", version, VERSION));
    }
    let topic = String::from_utf8_lossy(r.bytes().map_err(bad)?).into_owned();
    let partition = r.u32().map_err(bad)? as i32;
    let n = r.u32().map_err(bad)? as usize;
    if n.saturating_mul(4) > r.len() {
        return Err(bad(Short));
    }
    let mut outputs = Vec::with_capacity(n);
    for _ in 0..n {
        outputs.push(String::from_utf8_lossy(r.bytes().map_err(bad)?).into_owned());
    }
    let count = r.u32().map_err(bad)? as usize;
    if count.saturating_mul(28) > r.len() {
        return Err(bad(Short));
    }
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        records.push(r.record().map_err(bad)?);
    }
    Ok(Batch { topic, partition, outputs, records })
}
