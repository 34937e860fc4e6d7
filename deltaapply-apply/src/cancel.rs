//! Cancelling a job that is running: a [`Token`] shared with another thread (or a
//! progress callback) and checked by the loops that read, hash, decode, write and
//! download, between chunks.
//!
//! A token covers the work done on the thread that runs [`Token::scope`]; every loop
//! of `deltaapply` runs on the caller's thread, so a job started inside the scope
//! stops at its next chunk once [`Token::cancel`] is called from anywhere. A cancelled
//! job fails with a cancelled error (`ErrorKind::Cancelled`) and leaves what the
//! failure of any other check leaves: the destination untouched, its temporary file
//! removed, an update's partial download kept for the next attempt to resume.

use std::cell::RefCell;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A cancellation flag, cheap to clone and to share between threads.
#[derive(Debug, Clone, Default)]
pub struct Token(Arc<AtomicBool>);

thread_local! {
    /// The tokens of the scopes this thread is in, innermost last.
    static CURRENT: RefCell<Vec<Token>> = const { RefCell::new(Vec::new()) };
}

impl Token {
    /// A token not cancelled.
    pub fn new() -> Token {
        Token::default()
    }

    /// Asks every job running in this token's scope to stop at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`Token::cancel`] was called (since the last [`Token::reset`]).
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Clears the flag, for the next job.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// Runs `job` on this thread with this token watched by every check inside it.
    pub fn scope<R>(&self, job: impl FnOnce() -> R) -> R {
        /// Leaves the scope also when `job` unwinds.
        struct Leave;
        impl Drop for Leave {
            fn drop(&mut self) {
                CURRENT.with(|c| c.borrow_mut().pop());
            }
        }
        CURRENT.with(|c| c.borrow_mut().push(self.clone()));
        let _leave = Leave;
        job()
    }
}

/// Whether a token of a scope this thread is in was cancelled.
pub fn requested() -> bool {
    CURRENT.with(|c| c.borrow().iter().any(Token::is_cancelled))
}

/// The reason an I/O error made by [`Reader`] carries.
#[derive(Debug, thiserror::Error)]
#[error("cancelled by the caller")]
pub struct Cancelled;

/// Whether `e` is the error [`Reader`] fails with once cancelled.
pub fn is_cancelled(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Cancelled>())
}

/// A reader that fails with a [`Cancelled`] I/O error once cancellation is
/// [`requested`], for loops that read through a function that cannot stop on its own
/// (hashing a file).
#[derive(Debug)]
pub struct Reader<R>(pub R);

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if requested() {
            return Err(io::Error::other(Cancelled));
        }
        self.0.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_seen_only_inside_its_scope() {
        let token = Token::new();
        token.cancel();
        assert!(!requested());
        assert!(token.scope(requested));
        assert!(!requested());
        token.reset();
        assert!(!token.scope(requested));
    }

    #[test]
    fn a_cancelled_reader_fails_with_the_marker() {
        let token = Token::new();
        let mut r = Reader(&b"abc"[..]);
        let mut buf = [0; 3];
        assert_eq!(token.scope(|| r.read(&mut buf)).unwrap(), 3);
        token.cancel();
        let err = token.scope(|| r.read(&mut buf)).unwrap_err();
        assert!(is_cancelled(&err));
        assert!(!is_cancelled(&io::Error::other("x")));
    }

    #[test]
    fn cancel_from_another_thread_is_seen() {
        let token = Token::new();
        let other = token.clone();
        std::thread::spawn(move || other.cancel()).join().unwrap();
        assert!(token.scope(requested));
    }
}
