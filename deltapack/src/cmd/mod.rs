//! One module per subcommand, each with its own arguments and `run`.

pub mod build;
pub mod diff;
pub mod docs;
pub mod fanout;
pub mod inspect;
pub mod key;
pub mod keygen;
pub mod keys;
pub mod keysrc;
pub mod prune;
pub mod verify;
