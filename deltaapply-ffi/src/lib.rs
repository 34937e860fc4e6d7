//! The C ABI of `deltaapply`: check for an update, update a file or a tree, apply one
//! patch (deltapack or a foreign format), inspect a patch, from any language that can
//! call C. The header is `include/deltaapply.h`; `README.md` is the reference (every
//! function, who owns each pointer, the codes, threading, memory, progress phases).
//!
//! Built as `libdeltaapply_ffi.so` and `libdeltaapply_ffi.a` with
//! `cargo build --profile ffi -p deltaapply-ffi`. Nothing Rust crosses the boundary:
//! handles are numbers looked up in a registry, strings are UTF-8 C strings, results
//! are JSON, errors are a code and a message. Every entry point catches panics.
//!
//! The Rust side is usable from Rust too, which is how the tests reach it:
//!
//! ```
//! let mut handle = 0u64;
//! let code = unsafe { deltaapply_ffi::abi::deltaapply_open(&mut handle, std::ptr::null_mut()) };
//! assert_eq!(code, deltaapply_ffi::failure::OK);
//! let code = unsafe { deltaapply_ffi::abi::deltaapply_close(handle, std::ptr::null_mut()) };
//! assert_eq!(code, deltaapply_ffi::failure::OK);
//! ```

pub mod abi;
pub mod failure;
mod handle;
pub mod jobs;
