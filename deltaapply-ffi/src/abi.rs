//! The `extern "C"` entry points, exactly as `include/deltaapply.h` declares them
//! (`tests/header.rs` compares the two). Each one checks its pointers, converts its
//! strings, catches any panic, and returns a code; the work is in `jobs.rs`.

use std::collections::BTreeSet;
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Mutex;

use deltaapply::key::KeyFile as _;
use deltaapply::{PublicKey, Sha256Digest, TrustedKeys};
use serde_json::Value;

use crate::failure::{self, E_INTERNAL, Failure, OK};
use crate::handle::{self, Progress, ProgressFn};
use crate::jobs::{self, Reporter};

/// The strings handed out and not yet freed, by address: `deltaapply_string_free`
/// frees only these, so a double free or a foreign pointer is ignored, not UB.
static STRINGS: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

/// A Rust string as a C string the caller frees with `deltaapply_string_free`
/// (an interior NUL, impossible in our messages and JSON, becomes U+FFFD).
fn give(s: String) -> *mut c_char {
    let c = CString::new(s.replace('\0', "\u{fffd}")).unwrap_or_default();
    let ptr = c.into_raw();
    STRINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(ptr as usize);
    ptr
}

/// Stores `value` (or NULL) where `out` points, if `out` is not NULL.
///
/// # Safety
/// `out` is NULL or valid for a write of one pointer.
unsafe fn put(out: *mut *mut c_char, value: Option<String>) {
    if !out.is_null() {
        let ptr = value.map_or(std::ptr::null_mut(), give);
        // SAFETY: the caller passes NULL (checked above) or a writable pointer slot.
        unsafe { out.write(ptr) };
    }
}

/// A required string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid for `'a`.
unsafe fn arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{name} is NULL")));
    }
    // SAFETY: not NULL, and NUL-terminated by the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes
        .to_str()
        .map_err(|e| Failure::invalid(format!("{name} is not UTF-8 ({e})")))
}

/// An optional string argument: NULL is `None`.
///
/// # Safety
/// As for [`arg`].
unsafe fn opt_arg<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: the caller's contract, passed on.
        unsafe { arg(ptr, name) }.map(Some)
    }
}

/// Runs `body`, catching a panic; writes the error message (or NULL) and returns the
/// code.
///
/// # Safety
/// `error_message` is NULL or valid for a write of one pointer.
unsafe fn entry(
    error_message: *mut *mut c_char,
    body: impl FnOnce() -> Result<(), Failure>,
) -> i32 {
    let result = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(Failure::new(
            E_INTERNAL,
            format!("internal error in deltaapply (please report it): {what}"),
        ))
    });
    let (code, message) = match result {
        Ok(()) => (OK, None),
        Err(f) => (f.code, Some(f.message)),
    };
    // SAFETY: the caller's contract, passed on.
    unsafe { put(error_message, message) };
    code
}

/// Runs a job on `handle` that produces JSON, storing it in `result_json`.
///
/// # Safety
/// `result_json` and `error_message` are NULL or valid for a write of one pointer.
unsafe fn job(
    handle: u64,
    result_json: *mut *mut c_char,
    error_message: *mut *mut c_char,
    run: impl FnOnce(&handle::Settings, &Reporter<'_>) -> Result<Value, Failure>,
) -> i32 {
    // SAFETY: the caller's contract, passed on.
    unsafe { put(result_json, None) };
    let mut out = None;
    // SAFETY: the caller's contract, passed on.
    let code = unsafe {
        entry(error_message, || {
            let h = handle::get(handle)?;
            let value = h.run(|settings, token| run(settings, &Reporter::new(settings, token)))?;
            out = Some(value.to_string());
            Ok(())
        })
    };
    // SAFETY: the caller's contract, passed on.
    unsafe { put(result_json, out) };
    code
}

/// The library's version (a static string: do not free it).
#[unsafe(no_mangle)]
pub extern "C" fn deltaapply_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The constant's name of a code (a static string: do not free it).
#[unsafe(no_mangle)]
pub extern "C" fn deltaapply_code_name(code: i32) -> *const c_char {
    failure::name(code).as_ptr()
}

/// Frees a string the library handed out; NULL, a string already freed and a pointer
/// the library did not hand out are ignored.
///
/// # Safety
/// None beyond C's: any pointer value may be passed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deltaapply_string_free(s: *mut c_char) {
    let known = STRINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&(s as usize));
    if known {
        // SAFETY: `s` came from `CString::into_raw` in `give` and was not freed since
        // (it was still in the set, and is removed from it now).
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Opens a handle with the default settings.
///
/// # Safety
/// `out_handle` is NULL or valid for a write; `error_message` as everywhere.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deltaapply_open(
    out_handle: *mut u64,
    error_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe {
        entry(error_message, || {
            if out_handle.is_null() {
                return Err(Failure::invalid("out_handle is NULL"));
            }
            let id = handle::open();
            // SAFETY: not NULL, writable by the caller's contract.
            out_handle.write(id);
            Ok(())
        })
    }
}

/// Closes a handle.
///
/// # Safety
/// `error_message` is NULL or valid for a write of one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deltaapply_close(handle: u64, error_message: *mut *mut c_char) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { entry(error_message, || handle::close(handle)) }
}

/// Sets the trusted keys from key file text (replacing any set before).
///
/// # Safety
/// `keys` is NULL or a NUL-terminated string; `error_message` as everywhere.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deltaapply_set_trusted_keys(
    handle: u64,
    keys: *const c_char,
    error_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe {
        entry(error_message, || {
            let h = handle::get(handle)?;
            let text = arg(keys, "keys")?;
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect();
            let list = lines.join("\n");
            let parsed = if list.trim().is_empty() {
                Vec::new()
            } else {
                TrustedKeys::parse_list(&list)
                    .map_err(|e| Failure::invalid(format!("keys: {e}")))?
                    .keys()
                    .to_vec()
            };
            h.settings().keys = parsed;
            Ok(())
        })
    }
}

/// Adds the key in a public key file to the trusted keys.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `error_message` as everywhere.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deltaapply_add_trusted_key_file(
    handle: u64,
    path: *const c_char,
    error_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe {
        entry(error_message, || {
            let h = handle::get(handle)?;
            let path = arg(path, "path")?;
            let key = PublicKey::from_file(Path::new(path))
                .map_err(|e| Failure::invalid(deltaapply::update::error_chain(&e)))?;
            let mut settings = h.settings();
            if !settings.keys.contains(&key) {
                settings.keys.push(key);
            }
            Ok(())
        })
    }
}

/// Sets the limits; 0 keeps each one's default.
///
/// # Safety
/// `error_message` is NULL or valid for a write of one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deltaapply_set_limits(
    handle: u64,
    max_memory: u64,
    max_download: u64,
    max_chain: u32,
    error_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe {
        entry(error_message, || {
            let h = handle::get(handle)?;
            let mut s = h.settings();
            s.max_memory = (max_memory > 0).then_some(max_memory);
            s.max_download = (max_download > 0).then_some(max_download);
            s.max_chain = (max_chain > 0).then_some(max_chain as usize);
            Ok(())
        })
    }
}

/// Sets (or with a NULL callback, removes) the progress callback.
///
/// # Safety
/// `callback` is NULL or a function of the declared type, callable with `user` from
/// any thread that runs a job on this handle; `error_message` as everywhere.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deltaapply_set_progress(
    handle: u64,
    callback: Option<ProgressFn>,
    user: *mut c_void,
    error_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe {
        entry(error_message, || {
            let h = handle::get(handle)?;
            h.settings().progress = callback.map(|callback| Progress { callback, user });
            Ok(())
        })
    }
}

/// Cancels the job running on the handle (from any thread); no effect when none runs.
///
/// # Safety
/// `error_message` is NULL or valid for a write of one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deltaapply_cancel(handle: u64, error_message: *mut *mut c_char) -> i32 {
    // SAFETY: the caller's contract.
    unsafe {
        entry(error_message, || {
            handle::get(handle)?.cancel();
            Ok(())
        })
    }
}

/// Checks for an update of `target` from `sources` (mirrors, one a line).
///
/// # Safety
/// The strings are NULL or NUL-terminated; the output pointers NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deltaapply_check(
    handle: u64,
    sources: *const c_char,
    target: *const c_char,
    result_json: *mut *mut c_char,
    error_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe {
        job(handle, result_json, error_message, |settings, progress| {
            let sources = arg(sources, "sources")?;
            let target = arg(target, "target")?;
            jobs::check(settings, progress, sources, Path::new(target))
        })
    }
}

/// Updates `target` (a file or a tree) from `sources` (mirrors, one a line).
///
/// # Safety
/// The strings are NULL or NUL-terminated; the output pointers NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deltaapply_update(
    handle: u64,
    sources: *const c_char,
    target: *const c_char,
    result_json: *mut *mut c_char,
    error_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe {
        job(handle, result_json, error_message, |settings, progress| {
            let sources = arg(sources, "sources")?;
            let target = arg(target, "target")?;
            jobs::update(settings, progress, sources, Path::new(target))
        })
    }
}

/// Applies one patch from `old_path` (NULL for a full image) to `dest_path`.
///
/// # Safety
/// The strings are NULL or NUL-terminated; the output pointers NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deltaapply_apply(
    handle: u64,
    old_path: *const c_char,
    patch_path: *const c_char,
    dest_path: *const c_char,
    expected_sha256: *const c_char,
    result_json: *mut *mut c_char,
    error_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe {
        job(handle, result_json, error_message, |settings, progress| {
            let old = opt_arg(old_path, "old_path")?;
            let patch = arg(patch_path, "patch_path")?;
            let dest = arg(dest_path, "dest_path")?;
            let expect = match opt_arg(expected_sha256, "expected_sha256")? {
                None => None,
                Some(hex) => Some(Sha256Digest::from_hex(hex.trim()).ok_or_else(|| {
                    Failure::invalid(format!(
                        "expected_sha256 {hex:?} is not a SHA-256 (64 hexadecimal digits)"
                    ))
                })?),
            };
            jobs::apply(
                settings,
                progress,
                old.map(Path::new),
                Path::new(patch),
                Path::new(dest),
                expect,
            )
        })
    }
}

/// Reads and checks a patch's header; the result is JSON.
///
/// # Safety
/// The string is NULL or NUL-terminated; the output pointers NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn deltaapply_inspect(
    handle: u64,
    patch_path: *const c_char,
    result_json: *mut *mut c_char,
    error_message: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe {
        job(handle, result_json, error_message, |settings, _| {
            let patch = arg(patch_path, "patch_path")?;
            jobs::inspect(settings, Path::new(patch))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_internal_code_with_its_message() {
        let mut message: *mut c_char = std::ptr::null_mut();
        let code = unsafe { entry(&mut message, || panic!("boom")) };
        assert_eq!(code, E_INTERNAL);
        let text = unsafe { CStr::from_ptr(message) }
            .to_str()
            .unwrap()
            .to_string();
        assert!(text.contains("boom"), "{text}");
        unsafe { deltaapply_string_free(message) };
        // Freed: a second free is ignored.
        unsafe { deltaapply_string_free(message) };
    }

    #[test]
    fn a_handle_stays_usable_after_a_panic_in_a_job() {
        let mut h = 0;
        assert_eq!(unsafe { deltaapply_open(&mut h, std::ptr::null_mut()) }, OK);
        let code = unsafe {
            job(h, std::ptr::null_mut(), std::ptr::null_mut(), |_, _| {
                panic!("in a job")
            })
        };
        assert_eq!(code, E_INTERNAL);
        let code = unsafe {
            job(h, std::ptr::null_mut(), std::ptr::null_mut(), |_, _| {
                Ok(Value::Null)
            })
        };
        assert_eq!(code, OK, "the handle was left marked busy");
        assert_eq!(unsafe { deltaapply_close(h, std::ptr::null_mut()) }, OK);
    }
}
