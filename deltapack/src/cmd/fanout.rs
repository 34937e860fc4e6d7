//! `deltapack build --plan FILE`, `--plan FILE --shard K/N` and `--plan FILE --merge`:
//! one build spread over CI jobs (`deltapack::build::fanout`).

use std::path::Path;

use anyhow::Context;
use deltaapply::{KeyFile as _, PublicKey};
use deltaapply_cli as cli;
use deltapack::build::BuildSpec;
use deltapack::build::fanout::{Plan, make_plan, run_shard};
use deltapack::keys::KeySource;
use serde_json::json;

/// What `build` was asked to do.
pub enum Mode {
    /// A whole build.
    Whole,
    /// Write the plan to this file.
    Plan(std::path::PathBuf),
    /// Make shard K of N of the plan.
    Shard(Box<Plan>, (usize, usize)),
    /// Publish the plan from the shards.
    Merge(Box<Plan>),
}

impl Mode {
    /// The mode the flags ask for; reads the plan file for --shard and --merge.
    pub fn of(
        plan: Option<&Path>,
        shard: Option<(usize, usize)>,
        merge: bool,
    ) -> anyhow::Result<Mode> {
        let Some(path) = plan else {
            return Ok(Mode::Whole);
        };
        if shard.is_none() && !merge {
            return Ok(Mode::Plan(path.to_path_buf()));
        }
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the plan {}", path.display()))?;
        let plan = Box::new(Plan::parse(&bytes).with_context(|| path.display().to_string())?);
        Ok(match shard {
            Some(kn) => Mode::Shard(plan, kn),
            None => Mode::Merge(plan),
        })
    }

    /// The plan carried out, for --shard and --merge.
    pub fn plan(&self) -> Option<&Plan> {
        match self {
            Mode::Shard(p, _) | Mode::Merge(p) => Some(p),
            Mode::Whole | Mode::Plan(_) => None,
        }
    }

    /// Whether this mode signs nothing (--plan, --shard).
    pub fn needs_no_key(&self) -> bool {
        matches!(self, Mode::Plan(_) | Mode::Shard(..))
    }
}

/// The keys --plan and --shard trust: --trust, and the secret key's public half if one
/// was given.
fn trusted(
    key: Option<&KeySource>,
    trust: &[String],
    json: bool,
) -> anyhow::Result<Vec<PublicKey>> {
    let mut keys = trust
        .iter()
        .map(|k| PublicKey::from_arg(k).with_context(|| format!("--trust {k}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(source) = key {
        keys.push(super::keysrc::load(source, json)?.public_key());
    }
    if keys.is_empty() {
        return Err(deltapack::build::BuildError::Settings(
            "--plan and --shard check the published manifest: give the publisher's public key \
             with --trust KEY (or a secret key)"
                .into(),
        )
        .into());
    }
    Ok(keys)
}

/// Runs --plan or --shard.
pub fn run_unsigned(
    mode: &Mode,
    spec: &BuildSpec,
    key: Option<&KeySource>,
    trust: &[String],
    json: bool,
) -> anyhow::Result<()> {
    let keys = trusted(key, trust, json)?;
    match mode {
        Mode::Plan(path) => {
            let plan = make_plan(spec, &keys)
                .with_context(|| format!("cannot plan release {} of {}", spec.version, spec.out))?;
            deltapack::store::write_file(path, &plan.to_bytes())?;
            if json {
                return cli::print_json(&json!({
                    "ok": true,
                    "plan": plan.id(),
                    "file": path,
                    "jobs": plan.jobs.len(),
                    "version": plan.version,
                }));
            }
            let mut text = format!(
                "plan {} for {} {} into {}: {} patch job(s), written to {}\n",
                plan.id(),
                plan.product,
                plan.version,
                spec.out,
                plan.jobs.len(),
                path.display()
            );
            for j in &plan.jobs {
                text.push_str(&format!(
                    "  job {}: {} from {}\n",
                    j.job, j.artifact, j.base_version
                ));
            }
            cli::write_stdout(&text)
        }
        Mode::Shard(plan, (k, n)) => {
            let report = run_shard(spec, &keys, plan, (*k, *n), &mut |_| {})
                .with_context(|| format!("cannot make shard {k}/{n} of plan {}", plan.id()))?;
            if json {
                let mut value = serde_json::to_value(&report)?;
                value["ok"] = true.into();
                value["shard"] = format!("{k}/{n}").into();
                return cli::print_json(&value);
            }
            cli::write_stdout(&format!(
                "shard {k}/{n} of plan {}: made job(s) {:?} ({} bytes of patches) into {}\n",
                report.plan, report.jobs, report.patch_bytes, spec.out
            ))
        }
        Mode::Whole | Mode::Merge(_) => unreachable!("signed builds are run by cmd::build"),
    }
}
