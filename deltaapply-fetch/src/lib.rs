//! Where the files of a publish directory come from and how they are downloaded: the
//! mirrors of a [`Source`] (directories, `file://`, and behind the default `http`
//! feature `http(s)://`), and the [`Fetcher`] that brings each file, checked against the
//! size and SHA-256 the signed manifest declares, with limits, resume and retries.
//! Installers depend on the `deltaapply` facade, which re-exports this crate under the
//! paths it always had.

#![forbid(unsafe_code)]

pub mod fetch;
pub mod source;

pub use fetch::{FetchError, Fetched, Fetcher};
pub use source::{Mirror, Source, SourceError};
