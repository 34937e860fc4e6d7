//! Pieces both command-line tools share: byte sizes, progress bars, JSON and error
//! printing. Compiled only with the `cli` feature.

use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Parses a byte size: a whole number with an optional unit `K`, `M`, `G`, `T`
/// (powers of 1024, with or without `iB`/`B`), e.g. `32MiB`, `512k`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 32MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Formats a byte count for people: `18.0 MiB`, `950 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A progress bar on stderr, shown only when stderr is a terminal and `--json` is off.
pub struct Bar {
    bar: Option<indicatif::ProgressBar>,
}

impl Bar {
    /// A byte-counting bar, or a hidden one when not on a terminal.
    pub fn bytes(enabled: bool) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template(
            "{msg:>17} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        Bar { bar: Some(bar) }
    }

    /// A spinner for work of unknown length.
    pub fn spinner(enabled: bool, msg: &str) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = indicatif::ProgressBar::new_spinner().with_message(msg.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar { bar: Some(bar) }
    }

    /// A bar counting items (e.g. patches made), or a hidden one when not on a terminal.
    pub fn count(enabled: bool, what: &str) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = indicatif::ProgressBar::new(0).with_message(what.to_string());
        let style = indicatif::ProgressStyle::with_template(
            "{msg:>10} [{wide_bar}] {pos}/{len} {elapsed_precise}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(250));
        Bar { bar: Some(bar) }
    }

    /// Whether the bar is drawn (stderr is a terminal and it was enabled).
    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Sets the number of items.
    pub fn set_length(&self, len: u64) {
        if let Some(b) = &self.bar {
            b.set_length(len);
        }
    }

    /// Counts one item done.
    pub fn inc(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    /// Prints a line on stderr above the bar (or plainly without one), unless `quiet`.
    pub fn println(&self, line: &str, quiet: bool) {
        match &self.bar {
            Some(b) => b.println(line),
            None if !quiet => eprintln!("{line}"),
            None => {}
        }
    }

    /// Sets what the bar shows.
    pub fn set(&self, msg: &'static str, done: u64, total: u64) {
        if let Some(b) = &self.bar {
            if b.message() != msg {
                b.set_message(msg);
                b.reset_elapsed();
            }
            b.set_length(total);
            b.set_position(done);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Writes `text` to stdout. A closed pipe (the reader went away, as with `| head`) is
/// not an error; any other failure, such as a full disk, is.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to standard output"))
        }
        _ => Ok(()),
    }
}

/// Prints `value` as one line of JSON on stdout (see [`write_stdout`]).
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    write_stdout(&format!("{value}\n"))
}

/// Prints an error chain to stderr (`error: outer: inner: ...`), or as JSON on stdout
/// when `json` is set, and returns the exit code.
pub fn report_error(err: &anyhow::Error, code: i32, json: bool) -> i32 {
    if json {
        // Nothing more can be said if stdout itself fails; the exit code still tells.
        let _ = print_json(
            &serde_json::json!({ "ok": false, "error": format!("{err:#}"), "exit_code": code }),
        );
    } else {
        eprintln!("error: {err:#}");
    }
    code
}

/// Ratio `a / b` as a percentage with two decimals, or `-` when `b` is 0.
pub fn percent(a: u64, b: u64) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!("{:.2}%", a as f64 * 100.0 / b as f64)
    }
}

/// The `inspect` subcommand both tools share: validates the header (not the payload)
/// and prints it; returns the exit code.
pub fn inspect(patch: &std::path::Path, json: bool) -> i32 {
    match crate::Patch::open(patch) {
        Ok(p) => {
            let printed = if json {
                print_json(&header_json(p.header()))
            } else {
                write_stdout(&header_text(p.header()))
            };
            match printed {
                Ok(()) => 0,
                Err(e) => report_error(&e, crate::exit::FAILURE, false),
            }
        }
        Err(e) => {
            let code = e.exit_code();
            report_error(&e.into(), code, json)
        }
    }
}

/// Parses the command line, or prints clap's message and returns the exit code to
/// end with (0 for `--help` and `--version`, [`crate::exit::USAGE`] for errors).
pub fn parse_args<T: clap::Parser>() -> Result<T, std::process::ExitCode> {
    T::try_parse().map_err(|e| {
        let _ = e.print();
        std::process::ExitCode::from(if e.use_stderr() {
            crate::exit::USAGE as u8
        } else {
            0
        })
    })
}

/// A patch header as JSON (the fields `inspect --json` prints).
pub fn header_json(h: &crate::Header) -> serde_json::Value {
    let signature = match h.signature {
        crate::container::SignatureSlot::Unsigned => serde_json::Value::Null,
        crate::container::SignatureSlot::Ed25519 { public_key, .. } => serde_json::json!({
            "algorithm": "ed25519",
            "public_key": crate::Sha256Digest(public_key).to_string(),
        }),
    };
    serde_json::json!({
        "format_version": crate::container::VERSION,
        "method": h.method,
        "window_log": h.window_log,
        "source": h.source,
        "target": h.target,
        "payload": h.payload,
        "streams": h.streams,
        "apply_memory": h.apply_memory,
        "signature": signature,
    })
}

/// A patch header for people, one field a line.
pub fn header_text(h: &crate::Header) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<14} {v}\n"));
    line(
        "format",
        format!("deltapack patch v{}", crate::container::VERSION),
    );
    line("method", h.method.to_string());
    match h.source {
        Some(src) => line(
            "source",
            format!("{} bytes, sha256 {}", src.size, src.sha256),
        ),
        None => line("source", "none (full image)".into()),
    }
    line(
        "target",
        format!("{} bytes, sha256 {}", h.target.size, h.target.sha256),
    );
    line(
        "payload",
        format!("{} bytes, sha256 {}", h.payload.size, h.payload.sha256),
    );
    if let Some(st) = h.streams {
        let coding = match st.diff_coding {
            crate::container::DiffCoding::Plain => "plain",
            crate::container::DiffCoding::ZeroRun => "zero-run coded",
        };
        line(
            "streams",
            format!(
                "control {} + diff {} ({coding}) + extra {} bytes",
                st.control, st.diff, st.extra
            ),
        );
    }
    line(
        "window",
        format!("2^{} ({})", h.window_log, human_bytes(1 << h.window_log)),
    );
    line(
        "apply memory",
        format!("{} ({} bytes)", human_bytes(h.apply_memory), h.apply_memory),
    );
    let sig = match h.signature {
        crate::container::SignatureSlot::Unsigned => "none".to_string(),
        crate::container::SignatureSlot::Ed25519 { public_key, .. } => {
            format!("ed25519, key {}", crate::Sha256Digest(public_key))
        }
    };
    line("signature", sig);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("7"), Ok(7));
        assert_eq!(parse_size(" 8 GiB "), Ok(8 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
