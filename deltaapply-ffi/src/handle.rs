//! Handles: the registry that maps the numbers the C side holds to live handles, a
//! handle's settings, and running one job at a time on it.
//!
//! A handle is a number, never a pointer: a closed, bogus or never-opened one is looked
//! up, not dereferenced, and gives `DELTAAPPLY_E_INVALID_ARGUMENT`. A job holds its own
//! reference to the handle, so closing it from another thread while the job runs is
//! safe (the job finishes, then the handle is gone). A second job on a handle that is
//! running one gets `DELTAAPPLY_E_HANDLE_BUSY`; settings and cancellation may be
//! changed from any thread at any time (settings take effect at the next job).

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use deltaapply::PublicKey;
use deltaapply::cancel::Token;

use crate::failure::{E_HANDLE_BUSY, Failure};

/// The caller's progress callback: `(user, phase, done, total)`, non-zero to cancel.
pub type ProgressFn = extern "C" fn(*mut c_void, i32, u64, u64) -> i32;

/// The progress callback and the caller's pointer it is given back.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The function.
    pub callback: ProgressFn,
    /// The caller's pointer, passed through untouched.
    pub user: *mut c_void,
}

// SAFETY: the pointer is never dereferenced here, only handed back to the caller's
// callback, on the thread that runs the job; the header documents that the callback
// and its user data must be usable from any thread the caller runs jobs on.
unsafe impl Send for Progress {}
// SAFETY: as above; sharing only copies the pointer value.
unsafe impl Sync for Progress {}

/// What a handle's setters set.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The trusted keys (threshold 1); none set: unsigned patches apply (unverified),
    /// and check/update refuse to run.
    pub keys: Vec<PublicKey>,
    /// Most memory one apply may declare (`None`: the library's default, 1 GiB).
    pub max_memory: Option<u64>,
    /// Most bytes one update may download (`None`: no limit).
    pub max_download: Option<u64>,
    /// Longest chain of patches an update considers (`None`: the library's default).
    pub max_chain: Option<usize>,
    /// The progress callback.
    pub progress: Option<Progress>,
}

/// One open handle.
#[derive(Debug, Default)]
pub struct Handle {
    settings: Mutex<Settings>,
    running: AtomicBool,
    token: Token,
}

impl Handle {
    /// The settings, for changing them.
    pub fn settings(&self) -> MutexGuard<'_, Settings> {
        // A panic while the lock was held is caught at the boundary; the settings are
        // plain values and stay usable.
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cancels the job running on this handle, if any.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Runs `job` with a copy of the settings, with cancellation watched, unless a job
    /// is already running on this handle (on another thread, or from a callback).
    pub fn run<T>(
        &self,
        job: impl FnOnce(&Settings, &Token) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        if self
            .running
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(Failure::new(
                E_HANDLE_BUSY,
                "this handle is running a job on another thread; use one handle per thread",
            ));
        }
        /// Marks the handle idle again, also when the job unwinds.
        struct Idle<'a>(&'a AtomicBool);
        impl Drop for Idle<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        let _idle = Idle(&self.running);
        self.token.reset();
        let settings = self.settings().clone();
        self.token.scope(|| job(&settings, &self.token))
    }
}

/// The open handles by number.
static HANDLES: Mutex<BTreeMap<u64, Arc<Handle>>> = Mutex::new(BTreeMap::new());
/// The next number to give out; 0 is never one.
static NEXT: AtomicU64 = AtomicU64::new(1);

fn handles() -> MutexGuard<'static, BTreeMap<u64, Arc<Handle>>> {
    HANDLES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens a handle with the default settings; returns its number.
pub fn open() -> u64 {
    let id = NEXT.fetch_add(1, Ordering::SeqCst);
    handles().insert(id, Arc::new(Handle::default()));
    id
}

/// The handle numbered `id`, if it is open.
pub fn get(id: u64) -> Result<Arc<Handle>, Failure> {
    handles()
        .get(&id)
        .cloned()
        .ok_or_else(|| Failure::invalid(format!("handle {id} is not open")))
}

/// Closes the handle numbered `id`; a job running on it finishes first.
pub fn close(id: u64) -> Result<(), Failure> {
    match handles().remove(&id) {
        Some(_) => Ok(()),
        None => Err(Failure::invalid(format!("handle {id} is not open"))),
    }
}
