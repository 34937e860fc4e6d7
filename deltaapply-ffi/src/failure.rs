//! The codes every entry point returns, and a failure as the C side sees it: a code
//! and a message.

use std::ffi::CStr;

use deltaapply::ErrorKind;

/// Success.
pub const OK: i32 = 0;
/// An I/O error or another failure (a file cannot be read or written).
pub const E_FAILURE: i32 = 1;
/// The request does not fit the patch (a foreign patch without the old file or its
/// expected SHA-256, a tree patch where a file belongs...).
pub const E_USAGE: i32 = 2;
/// The patch, or the signed manifest, is invalid or corrupt.
pub const E_BAD_PATCH: i32 = 3;
/// The old file is not the one the patch was made for.
pub const E_WRONG_SOURCE: i32 = 4;
/// A limit: memory, download bytes.
pub const E_LIMIT: i32 = 5;
/// An origin check failed (unsigned, untrusted key, bad signature).
pub const E_UNTRUSTED: i32 = 6;
/// A verified manifest was refused (rollback, expired, another product or channel).
pub const E_REFUSED: i32 = 7;
/// No allowed route.
pub const E_NO_ROUTE: i32 = 8;
/// A file could not be downloaded from any mirror.
pub const E_NETWORK: i32 = 9;
/// Another applier is updating the same target now.
pub const E_BUSY: i32 = 10;
/// The caller cancelled the job; nothing was installed.
pub const E_CANCELLED: i32 = 11;
/// An argument is invalid: a NULL pointer where one is required, a string that is not
/// UTF-8, a handle that is not open, a key or source that does not parse.
pub const E_INVALID_ARGUMENT: i32 = 12;
/// A bug in the library (a panic, caught at the boundary).
pub const E_INTERNAL: i32 = 13;
/// The handle is running a job on another thread.
pub const E_HANDLE_BUSY: i32 = 14;

/// The name of a code, as the header spells its constant (a C string, so that
/// `deltaapply_code_name` can hand it out as is).
pub fn name(code: i32) -> &'static CStr {
    match code {
        OK => c"DELTAAPPLY_OK",
        E_FAILURE => c"DELTAAPPLY_E_FAILURE",
        E_USAGE => c"DELTAAPPLY_E_USAGE",
        E_BAD_PATCH => c"DELTAAPPLY_E_BAD_PATCH",
        E_WRONG_SOURCE => c"DELTAAPPLY_E_WRONG_SOURCE",
        E_LIMIT => c"DELTAAPPLY_E_LIMIT",
        E_UNTRUSTED => c"DELTAAPPLY_E_UNTRUSTED",
        E_REFUSED => c"DELTAAPPLY_E_REFUSED",
        E_NO_ROUTE => c"DELTAAPPLY_E_NO_ROUTE",
        E_NETWORK => c"DELTAAPPLY_E_NETWORK",
        E_BUSY => c"DELTAAPPLY_E_BUSY",
        E_CANCELLED => c"DELTAAPPLY_E_CANCELLED",
        E_INVALID_ARGUMENT => c"DELTAAPPLY_E_INVALID_ARGUMENT",
        E_INTERNAL => c"DELTAAPPLY_E_INTERNAL",
        E_HANDLE_BUSY => c"DELTAAPPLY_E_HANDLE_BUSY",
        _ => c"DELTAAPPLY_E_UNKNOWN",
    }
}

/// The code of an error kind: the `deltaapply` binary's exit code for it.
pub fn code(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::Usage => E_USAGE,
        ErrorKind::BadInput => E_BAD_PATCH,
        ErrorKind::WrongSource => E_WRONG_SOURCE,
        ErrorKind::Limit => E_LIMIT,
        ErrorKind::Untrusted => E_UNTRUSTED,
        ErrorKind::Refused => E_REFUSED,
        ErrorKind::NoRoute => E_NO_ROUTE,
        ErrorKind::Network => E_NETWORK,
        ErrorKind::Busy => E_BUSY,
        ErrorKind::Cancelled => E_CANCELLED,
        _ => E_FAILURE,
    }
}

/// A job that did not succeed: its code and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One of the codes above, never [`OK`].
    pub code: i32,
    /// The error and its sources on one line.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// An invalid argument.
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(E_INVALID_ARGUMENT, message)
    }

    /// A library error, by its kind.
    pub fn of(kind: ErrorKind, err: &dyn std::error::Error) -> Failure {
        Failure::new(code(kind), deltaapply::update::error_chain(err))
    }
}
