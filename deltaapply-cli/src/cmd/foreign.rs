//! `deltaapply apply` and `inspect` for patches in a foreign format (BSDIFF40, a zstd
//! frame, VCDIFF): which format a file is in, the `--expect-sha256` rule, the output.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate as cli;
use deltaapply::foreign::{Check, Described, ForeignApply, Format, apply_foreign, describe};
use deltaapply::{Phase, Sha256Digest};

/// The format of the patch at `path`, if its first bytes are one's magic (`None` also
/// when it cannot be read: the deltapack path then reports that, as it always has).
pub fn detect(path: &Path) -> Option<Format> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(deltaapply::foreign::DETECT_LEN as u64)
                .read_to_end(&mut head)
        })
        .ok()?;
    Format::detect(&head)
}

/// A command-line mistake or a refused expectation found before anything is read, with
/// the exit code it gets.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The arguments do not fit the patch (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The patch does not make the file `--expect-sha256` names (exit 3).
    #[error("{0}")]
    NotExpected(String),
}

impl Refused {
    /// The exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Refused::Usage(_) => crate::exit::USAGE,
            Refused::NotExpected(_) => crate::exit::BAD_PATCH,
        }
    }
}

/// Parses `--expect-sha256`.
pub fn parse_sha256(s: &str) -> Result<Sha256Digest, String> {
    Sha256Digest::from_hex(s.trim())
        .ok_or_else(|| format!("{s:?} is not a SHA-256 (64 hexadecimal digits)"))
}

/// What `apply` was asked to do with a foreign patch.
pub struct Request {
    /// The old file (none given is an error: every foreign format needs one).
    pub old: Option<PathBuf>,
    /// The patch.
    pub patch: PathBuf,
    /// Where to write.
    pub dest: PathBuf,
    /// `--expect-sha256`.
    pub expect_sha256: Option<Sha256Digest>,
    /// `--expect-size`.
    pub expect_size: Option<u64>,
    /// `--unverified`.
    pub unverified: bool,
    /// `--max-memory`.
    pub max_memory: u64,
    /// `--json`.
    pub json: bool,
}

/// Applies a foreign patch of `format`.
pub fn apply(req: Request, format: Format) -> anyhow::Result<()> {
    let started = Instant::now();
    let Some(old) = req.old else {
        return Err(Refused::Usage(format!(
            "{} is a {format} patch, which needs the old file it was made from: \
             deltaapply apply OLD PATCH -o NEW",
            req.patch.display()
        ))
        .into());
    };
    let check = match (req.expect_sha256, req.unverified) {
        (Some(sha256), _) => Check::Sha256(sha256),
        (None, true) => Check::Unverified,
        (None, false) => {
            return Err(Refused::Usage(format!(
                "{} is a {format} patch, which carries no digest of the file it makes: give \
                 that file's digest with --expect-sha256 HEX (or --unverified to install \
                 whatever it produces, unchecked)",
                req.patch.display()
            ))
            .into());
        }
    };
    if !req.json {
        cli::output::step(format_args!("{}: {format} patch", req.patch.display()));
    }
    let bar = cli::Bar::bytes(!req.json);
    let result = apply_foreign(
        &ForeignApply {
            old: &old,
            patch: &req.patch,
            dest: &req.dest,
            check,
            expected_size: req.expect_size,
            max_memory: req.max_memory,
        },
        &mut |p| {
            if p.phase == Phase::Write {
                bar.set("writing", p.done, p.total);
            }
        },
    );
    bar.finish();
    let report = result?;
    let seconds = started.elapsed().as_secs_f64();
    if !report.verified {
        eprintln!(
            "warning: {} was installed UNVERIFIED: a {format} patch carries no digest of the \
             file it makes and --unverified was given, so nothing checked that it is the \
             intended file (its sha256 is {}); pass --expect-sha256 HEX to check it",
            report.dest.display(),
            report.target.sha256
        );
    }
    if req.json {
        cli::print_json(&serde_json::json!({
            "ok": true,
            "format": report.format,
            "target": report.target,
            "output": report.dest,
            "verified": report.verified,
            "apply_memory": report.apply_memory,
            "seconds": seconds,
        }))
    } else {
        let checked = if report.verified {
            ", matching --expect-sha256"
        } else {
            ""
        };
        cli::output::info(format_args!(
            "wrote {} ({} bytes, sha256 {}{checked}) from a {format} patch in {seconds:.2} s",
            report.dest.display(),
            report.target.size,
            report.target.sha256,
        ));
        Ok(())
    }
}

/// `inspect` of a foreign patch: its format and header; returns the exit code.
pub fn inspect(path: &Path, format: Format, json: bool) -> i32 {
    let described = match describe(path) {
        Ok(d) => d,
        Err(e) => {
            let code = crate::exit_code(e.kind());
            return cli::report_error(&e.into(), code, json);
        }
    };
    let printed = if json {
        let mut value = serde_json::to_value(&described).unwrap_or_default();
        value["ok"] = true.into();
        value["format"] = serde_json::to_value(format).unwrap_or_default();
        cli::print_json(&value)
    } else {
        let mut s = String::new();
        let mut line = |k: &str, v: String| s.push_str(&format!("{k:<14} {v}\n"));
        line("format", format.name().to_string());
        match described {
            Described::Bsdiff40 {
                header,
                apply_memory,
            } => {
                line("target", format!("{} bytes", header.new_size));
                line(
                    "streams",
                    format!(
                        "control {} + diff {} + extra {} bytes (bzip2)",
                        header.control_len, header.diff_len, header.extra_len
                    ),
                );
                line(
                    "apply memory",
                    format!("{} ({apply_memory} bytes)", cli::human_bytes(apply_memory)),
                );
            }
            Described::ZstdFrame { header } => {
                line(
                    "target",
                    match header.content_size {
                        Some(n) => format!("{n} bytes"),
                        None => "size not declared".into(),
                    },
                );
                line(
                    "window",
                    format!(
                        "{} ({} bytes); applying holds the old file plus the window",
                        cli::human_bytes(header.window_size),
                        header.window_size
                    ),
                );
                let checksum = if header.checksum { "XXH64" } else { "none" };
                line("checksum", checksum.to_string());
            }
            Described::Vcdiff {
                header,
                window_count,
                target_size,
                apply_memory,
                windows,
            } => {
                line("target", format!("{target_size} bytes"));
                let mut flags = Vec::new();
                if let Some(id) = header.compressor {
                    flags.push(format!(
                        "VCD_DECOMPRESS (secondary compressor {id}, {})",
                        deltaapply::vcdiff::compressor_name(id)
                    ));
                }
                if let Some(n) = header.app_header_len {
                    flags.push(format!("VCD_APPHEADER ({n} bytes)"));
                }
                if flags.is_empty() {
                    flags.push("none".into());
                }
                line(
                    "header",
                    format!(
                        "Hdr_Indicator {:#04x}: {}",
                        header.indicator,
                        flags.join(", ")
                    ),
                );
                line("windows", window_count.to_string());
                for (i, w) in windows.iter().enumerate().take(20) {
                    let seg = match w.segment {
                        Some(s) => format!(
                            "{} {}..{}",
                            match s.file {
                                deltaapply::vcdiff::SegmentIn::Source => "VCD_SOURCE",
                                deltaapply::vcdiff::SegmentIn::Target => "VCD_TARGET",
                            },
                            s.pos,
                            s.pos + s.len
                        ),
                        None => "no source segment".into(),
                    };
                    let mut sum = match w.adler32 {
                        Some(a) => format!(", adler32 {a:08x}"),
                        None => String::new(),
                    };
                    if w.delta_indicator != 0 {
                        let kinds: Vec<&str> = deltaapply::vcdiff::secondary::Section::ALL
                            .into_iter()
                            .filter(|&k| w.is_compressed(k))
                            .map(|k| match k {
                                deltaapply::vcdiff::secondary::Section::Data => "data",
                                deltaapply::vcdiff::secondary::Section::Inst => "inst",
                                deltaapply::vcdiff::secondary::Section::Addr => "addr",
                            })
                            .collect();
                        sum.push_str(&format!(
                            ", compressed: {} (Delta_Indicator {:#04x})",
                            kinds.join(", "),
                            w.delta_indicator
                        ));
                    }
                    line(
                        &format!("window {i}"),
                        format!(
                            "{} bytes from {seg}; data {} + inst {} + addr {} bytes{sum}",
                            w.target_len, w.data_len, w.inst_len, w.addr_len
                        ),
                    );
                }
                if window_count > 20 {
                    line("", format!("... {} more windows", window_count - 20));
                }
                line(
                    "apply memory",
                    format!(
                        "{} ({apply_memory} bytes): the largest window's target and sections, the \
                         LZMA decoders",
                        cli::human_bytes(apply_memory)
                    ),
                );
            }
        }
        line(
            "verification",
            "none in the patch: applying needs --expect-sha256 (or --unverified)".into(),
        );
        cli::write_stdout(&s)
    };
    match printed {
        Ok(()) => crate::exit::OK,
        Err(e) => cli::report_error(&e, crate::exit::FAILURE, false),
    }
}
