//! The broker's host functions (module `weir`) and the exports' bodies.

use crate::{Handler, Host};

#[link(wasm_import_module = "weir")]
extern "C" {
    fn emit(ptr: *const u8, len: usize) -> i32;
    fn dead_letter(index: u32, ptr: *const u8, len: usize) -> i32;
    fn state_get(kp: *const u8, kl: usize, bp: *mut u8, bc: usize) -> i32;
    fn state_put(kp: *const u8, kl: usize, vp: *const u8, vl: usize) -> i32;
    fn state_delete(kp: *const u8, kl: usize) -> i32;
    fn config_get(kp: *const u8, kl: usize, bp: *mut u8, bc: usize) -> i32;
    fn log(level: i32, ptr: *const u8, len: usize);
    fn now() -> i64;
    fn random(ptr: *mut u8, len: usize);
    fn fail(ptr: *const u8, len: usize);
}

/// The batch buffer handed to the host by `weir_alloc`, reused across batches.
static mut BATCH: Vec<u8> = Vec::new();

/// `weir_alloc(size)`: a buffer of at least `size` bytes for the next batch.
pub fn alloc(size: i32) -> i32 {
    // SAFETY: a Wasm instance runs one call at a time (no threads).
    unsafe {
        let n = size.max(0) as usize;
        if BATCH.len() < n {
            BATCH.resize(n, 0);
        }
        BATCH.as_mut_ptr() as i32
    }
}

/// `weir_process(ptr, len)`: runs `handler` over the batch at `ptr`.
///
/// # Safety
/// `ptr..ptr+len` must be memory the host wrote a batch to (from `alloc`).
pub unsafe fn process(ptr: i32, len: i32, handler: Handler) -> i32 {
    let buf = std::slice::from_raw_parts(ptr as *const u8, len.max(0) as usize);
    crate::run(&mut WasmHost, buf, handler)
}

struct WasmHost;

type GetFn = unsafe extern "C" fn(*const u8, usize, *mut u8, usize) -> i32;

fn get(f: GetFn, key: &[u8]) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: pointers and lengths of live slices.
        let n = unsafe { f(key.as_ptr(), key.len(), buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            return None;
        }
        let n = n as usize;
        if n <= buf.len() {
            buf.truncate(n);
            return Some(buf);
        }
        buf.resize(n, 0);
    }
}

impl Host for WasmHost {
    fn emit(&mut self, frames: &[u8]) -> i32 {
        unsafe { emit(frames.as_ptr(), frames.len()) }
    }
    fn dead_letter(&mut self, index: u32, reason: &str) -> i32 {
        unsafe { dead_letter(index, reason.as_ptr(), reason.len()) }
    }
    fn state_get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        get(state_get, key)
    }
    fn state_put(&mut self, key: &[u8], value: &[u8]) -> i32 {
        unsafe { state_put(key.as_ptr(), key.len(), value.as_ptr(), value.len()) }
    }
    fn state_delete(&mut self, key: &[u8]) -> i32 {
        unsafe { state_delete(key.as_ptr(), key.len()) }
    }
    fn config_get(&mut self, key: &str) -> Option<String> {
        get(config_get, key.as_bytes()).map(|v| String::from_utf8_lossy(&v).into_owned())
    }
    fn log(&mut self, level: i32, msg: &str) {
        unsafe { log(level, msg.as_ptr(), msg.len()) }
    }
    fn now(&mut self) -> i64 {
        unsafe { now() }
    }
    fn random(&mut self, buf: &mut [u8]) {
        unsafe { random(buf.as_mut_ptr(), buf.len()) }
    }
    fn fail(&mut self, msg: &str) {
        unsafe { fail(msg.as_ptr(), msg.len()) }
    }
}
