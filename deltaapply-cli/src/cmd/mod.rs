//! One module per subcommand, each with its own arguments and `run`.

pub mod apply;
pub mod foreign;
pub mod inspect;
pub mod network;
pub mod update;

/// The exit code for an error chain: the code of the first `deltaapply::Error`, tree
/// apply error or foreign-patch error in it.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| {
            e.downcast_ref::<deltaapply::tree::TreeApplyError>()
                .map(|e| crate::exit_code(e.kind()))
                .or_else(|| {
                    e.downcast_ref::<foreign::Refused>()
                        .map(foreign::Refused::exit_code)
                })
                .or_else(|| {
                    e.downcast_ref::<deltaapply::foreign::ForeignError>()
                        .map(|e| crate::exit_code(e.kind()))
                })
                .or_else(|| {
                    e.downcast_ref::<deltaapply::Error>()
                        .map(|e| crate::exit_code(e.kind()))
                })
        })
        .unwrap_or(crate::exit::FAILURE)
}
