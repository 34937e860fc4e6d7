//! One module per subcommand, each with its own arguments and `run`.

pub mod diff;
pub mod inspect;
pub mod key;
pub mod keygen;
