//! How an installer embeds the applier: bring one installed file to the newest release
//! with [`deltaapply::Updater`], report progress, and act on the structured result.
//!
//! ```text
//! cargo run -p deltaapply --example installer -- SOURCE PUBLIC_KEY TARGET
//! cargo run -p deltaapply --example installer -- \
//!     target/example/publish target/example/keys/release.pub /tmp/app.bin
//! ```
//!
//! SOURCE is an https:// or http:// URL, a file:// URL or a directory. A real installer
//! would embed its publisher's key (`PublicKey::parse("ed25519:…")`) rather than read
//! it from a file, and would pass its own state file and limits.

use deltaapply::KeyFile as _;
use std::process::ExitCode;

use deltaapply::update::{Event, Policy, Route, Updater};
use deltaapply::{PublicKey, Source, TrustedKeys};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, key, target] = args.as_slice() else {
        eprintln!("usage: installer SOURCE PUBLIC_KEY TARGET");
        return ExitCode::from(2);
    };
    let setup = (|| -> Result<Updater, Box<dyn std::error::Error>> {
        let key = PublicKey::from_arg(key)?;
        let source = Source::parse(source)?;
        Ok(
            Updater::new(source, TrustedKeys::single(key), target).policy(Policy {
                // Say, a metered link: never more than 64 MiB per update.
                max_download: Some(64 << 20),
                ..Policy::default()
            }),
        )
    })();
    let updater = match setup {
        Ok(u) => u,
        Err(e) => {
            eprintln!("installer: {e}");
            return ExitCode::from(2);
        }
    };

    // Progress arrives as events; an installer would drive its own progress bar.
    let mut last_percent = None;
    let mut progress = |event: Event<'_>| match event {
        Event::Manifest {
            version, sequence, ..
        } => println!("newest release: {version} (manifest sequence {sequence})"),
        Event::Download {
            step,
            steps,
            file,
            done,
            total,
        } => {
            let percent = done * 100 / total.max(1);
            if last_percent != Some((step, percent / 25)) {
                last_percent = Some((step, percent / 25));
                println!("download {}/{steps} {}: {percent}%", step + 1, file.path);
            }
        }
        Event::Fallback { reason } => println!("patch not usable ({reason}); using the full image"),
        _ => {}
    };

    match updater.update(&mut progress) {
        Ok(outcome) => {
            match &outcome.route {
                Route::UpToDate => println!("already up to date"),
                route => println!(
                    "updated to {} by {} ({} bytes downloaded; the full image is {})",
                    outcome.check.newest_version,
                    route.kind(),
                    outcome.downloaded,
                    outcome.check.plan.full_size
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The error names the file and the problem; its kind says what to do about
            // it (network: retry later; untrusted or refused: alert).
            eprintln!("update failed: {}", deltaapply::update::error_chain(&e));
            match e.kind() {
                deltaapply::ErrorKind::Network | deltaapply::ErrorKind::Busy => {
                    eprintln!("will retry at the next check");
                }
                deltaapply::ErrorKind::Untrusted | deltaapply::ErrorKind::Refused => {
                    eprintln!("alert: the update source may be compromised");
                }
                _ => {}
            }
            ExitCode::FAILURE
        }
    }
}
