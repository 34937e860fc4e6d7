//! Accepting a manifest: every mirror asked, the signature checked before parsing, and
//! the product, channel, rollback (state file) and expiry checks; then the check of the
//! installed target against the manifest accepted.

use super::keys::{KeyChain, Walked};
use super::{
    Check, Event, Installed, MirrorProblem, State, UpdateError, Updater, hash_installed, plan, tree,
};
use deltaapply_apply::key::KeyId;
use deltaapply_fetch::source::Source;
use deltaapply_format::Sha256Digest;
use deltaapply_format::container::FileId;
use deltaapply_format::manifest::{
    ArtifactKind, MANIFEST_FILE, MAX_MANIFEST_SIZE, Manifest, RelPath, SIGNATURE_FILE, Timestamp,
};
use deltaapply_format::rotation::KeysDocument;
use deltaapply_format::signature::{MAX_SIGNATURE_FILE, SignatureError, verify_manifest};

/// How far (seconds) the clock may lag behind a manifest's creation time before it is
/// taken to be wrong: a day of skew between the publisher's clock and the device's.
pub const CLOCK_SKEW: u64 = 86_400;

/// The manifest accepted, and where from.
pub(super) struct Accepted {
    pub(super) manifest: Manifest,
    pub(super) from: String,
    pub(super) signed_by: Vec<KeyId>,
    pub(super) expired: bool,
    /// Where the key chain ended, when the updater follows one.
    pub(super) keys: Option<Walked>,
    /// The SHA-256 of the manifest's bytes.
    pub(super) digest: Sha256Digest,
}

impl Updater {
    /// The check, given the manifest accepted.
    pub(super) fn check_accepted(
        &self,
        accepted: Accepted,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<(Check, Manifest), UpdateError> {
        let manifest = &accepted.manifest;
        events(Event::Manifest {
            from: &accepted.from,
            version: &manifest.version,
            sequence: manifest.sequence,
        });
        let artifact = self.choose_artifact(manifest)?;
        let (target, installed, plan) = if artifact.kind == ArtifactKind::Tree {
            let target = self.target.clone();
            let identified = tree::identify(manifest, artifact, &target, events)?;
            let plan = tree::plan(manifest, artifact, &identified, &self.policy)?;
            (target, identified.installed, plan)
        } else {
            let target = self.resolved_target()?;
            let file = hash_installed(&target, events)?;
            let installed = Installed::identify(manifest, &artifact.name, file);
            let plan = plan::plan(manifest, artifact, &installed, &self.policy)?;
            (target, installed, plan)
        };
        let check = Check {
            manifest_from: accepted.from,
            signed_by: accepted.signed_by,
            keys_version: accepted.keys.as_ref().map(|w| w.document.version),
            manifest_sha256: accepted.digest,
            product: manifest.product.clone(),
            channel: manifest.channel.clone(),
            newest_version: manifest.version.clone(),
            sequence: manifest.sequence,
            expires: manifest.expires,
            expired: accepted.expired,
            artifact: artifact.name.clone(),
            newest: FileId {
                size: artifact.size,
                sha256: artifact.sha256,
            },
            target,
            installed,
            full_image: plan::full_step(manifest, artifact),
            plan,
        };
        Ok((check, accepted.manifest))
    }

    /// The first mirror's manifest that verifies and is acceptable.
    pub(super) fn accept_manifest(&self, state: &State) -> Result<Accepted, UpdateError> {
        let start = match &self.chain {
            Some(chain) => Some(chain.start(&self.keys_path())?),
            None => None,
        };
        let mut problems = Vec::new();
        let mut best: Option<Accepted> = None;
        // Every mirror is asked: one that lags (or withholds a release) must not hold
        // the device back while another serves a newer manifest that verifies.
        for mirror in self.source.mirrors() {
            let one = Source::new(vec![mirror.clone()]).expect("one mirror is a source");
            match self.manifest_from(&one, &mirror.to_string(), state, start.as_ref()) {
                Ok(accepted) => {
                    if best
                        .as_ref()
                        .is_none_or(|b| accepted.manifest.sequence > b.manifest.sequence)
                    {
                        best = Some(accepted);
                    }
                }
                Err(error) => problems.push(MirrorProblem {
                    mirror: mirror.to_string(),
                    error,
                }),
            }
        }
        if let Some(best) = best {
            return Ok(best);
        }
        match problems.len() {
            1 => Err(problems.pop().expect("one").error),
            _ => Err(UpdateError::NoManifest(problems)),
        }
    }

    fn manifest_from(
        &self,
        one: &Source,
        mirror: &str,
        state: &State,
        keys_from: Option<&KeysDocument>,
    ) -> Result<Accepted, UpdateError> {
        let walked = match keys_from {
            Some(start) => Some(self.walk_keys(start, one, mirror)?),
            None => None,
        };
        let chain_keys = walked.as_ref().map(|w| w.document.trusted());
        let trusted = chain_keys.as_ref().unwrap_or(&self.trusted);
        let manifest_path = RelPath::new(MANIFEST_FILE).expect("valid");
        let signature_path = RelPath::new(SIGNATURE_FILE).expect("valid");
        let fetch = |rel: &RelPath, cap| {
            self.fetcher
                .fetch_small(one, rel, cap)
                .map_err(|source| UpdateError::Fetch {
                    file: rel.to_string(),
                    source,
                })
        };
        // The manifest and its signature are replaced one after the other when a
        // release is published: a signature that does not match may be that moment,
        // so both are fetched once more before giving up.
        let mut retried = false;
        let (bytes, signed_by) = loop {
            let bytes = fetch(&manifest_path, MAX_MANIFEST_SIZE)?;
            let signature = fetch(&signature_path, MAX_SIGNATURE_FILE)?;
            match verify_manifest(&bytes, &signature, trusted) {
                Ok(keys) => break (bytes, keys),
                Err(SignatureError::BadSignature { .. }) if !retried => retried = true,
                Err(source) => {
                    return Err(UpdateError::Signature {
                        mirror: mirror.to_string(),
                        source,
                    });
                }
            }
        };
        let manifest = Manifest::parse(&bytes).map_err(|source| UpdateError::Manifest {
            mirror: mirror.to_string(),
            source,
        })?;
        if let Some(w) = &walked
            && w.document.product != manifest.product
        {
            return Err(UpdateError::WrongProduct {
                mirror: mirror.to_string(),
                got: manifest.product,
                expected: format!(
                    "the trusted keys (version {}) sign for product {:?}",
                    w.document.version, w.document.product
                ),
            });
        }
        if manifest.sequence < self.policy.min_sequence {
            return Err(UpdateError::BelowFloor {
                mirror: mirror.to_string(),
                product: manifest.product,
                got: manifest.sequence,
                floor: self.policy.min_sequence,
            });
        }
        self.check_product(&manifest, mirror, state)?;
        self.check_channel(&manifest, mirror, state)?;
        // After a rotation that revoked a key, the floors recorded under the old keys
        // are void (fast-forward recovery): `update` forgets them.
        let revoked = walked.as_ref().is_some_and(|w| w.revoked);
        if let Some(accepted) = state.accepted(&manifest.product, &manifest.channel)
            && !revoked
            && manifest.sequence < accepted
        {
            return Err(UpdateError::Rollback {
                mirror: mirror.to_string(),
                product: manifest.product,
                channel: manifest.channel,
                got: manifest.sequence,
                accepted,
                state: self.state_path().to_path_buf(),
            });
        }
        // The same sequence with other bytes: two different releases under one number
        // (a replay of a compromised key's or an equivocating publisher's manifest).
        let digest = Sha256Digest::of(&bytes);
        if !revoked
            && state.accepted(&manifest.product, &manifest.channel) == Some(manifest.sequence)
            && state
                .accepted_digest(&manifest.product, &manifest.channel)
                .is_some_and(|d| d != digest)
        {
            return Err(UpdateError::SameSequence {
                mirror: mirror.to_string(),
                product: manifest.product,
                channel: manifest.channel,
                sequence: manifest.sequence,
                state: self.state_path().to_path_buf(),
            });
        }
        let now = Timestamp::now();
        // A clock far behind the manifest's own creation (a device booted without its
        // time, at 1970) would take any expired manifest as fresh: it cannot judge
        // expiry at all, so it is refused as an expired one is.
        if now.0.saturating_add(CLOCK_SKEW) < manifest.created.0 && !self.policy.allow_expired {
            return Err(UpdateError::ClockBehind {
                mirror: mirror.to_string(),
                created: manifest.created,
                now,
            });
        }
        let expired = manifest.is_expired(now);
        if expired && !self.policy.allow_expired {
            return Err(UpdateError::Expired {
                mirror: mirror.to_string(),
                expires: manifest.expires,
                now,
            });
        }
        Ok(Accepted {
            manifest,
            from: mirror.to_string(),
            signed_by,
            expired,
            keys: walked,
            digest,
        })
    }

    /// Walks the mirror's key chain from `start`, and refuses an expired end unless
    /// the policy allows expired manifests.
    fn walk_keys(
        &self,
        start: &KeysDocument,
        one: &Source,
        mirror: &str,
    ) -> Result<Walked, UpdateError> {
        let walked = KeyChain::walk(start, &self.fetcher, one, mirror)?;
        let now = Timestamp::now();
        if let Some(expires) = walked.document.expires
            && walked.document.is_expired(now)
            && !self.policy.allow_expired
        {
            return Err(UpdateError::KeysExpired {
                mirror: mirror.to_string(),
                version: walked.document.version,
                expires,
                now,
            });
        }
        Ok(walked)
    }

    /// The product must be the one asked for, or else one the state file has accepted
    /// before (a state file binds a target to its product; channels may change).
    fn check_product(
        &self,
        manifest: &Manifest,
        mirror: &str,
        state: &State,
    ) -> Result<(), UpdateError> {
        let expected = match &self.product {
            Some(p) if *p != manifest.product => format!("product {p:?} was asked for"),
            Some(_) => return Ok(()),
            None => {
                let products = state.products();
                if products.is_empty() || products.contains(&manifest.product.as_str()) {
                    return Ok(());
                }
                format!(
                    "the state file {} has accepted only {products:?} for this target (name \
                     the product to switch products)",
                    self.state_path().display()
                )
            }
        };
        Err(UpdateError::WrongProduct {
            mirror: mirror.to_string(),
            got: manifest.product.clone(),
            expected,
        })
    }

    /// The channel must be the one asked for, or else one the state file has accepted
    /// before for the manifest's product: a mirror cannot move a device from `stable`
    /// to `beta` (or back, to an older manifest of another channel) on its own.
    fn check_channel(
        &self,
        manifest: &Manifest,
        mirror: &str,
        state: &State,
    ) -> Result<(), UpdateError> {
        let expected = match &self.channel {
            Some(c) if *c != manifest.channel => format!("channel {c:?} was asked for"),
            Some(_) => return Ok(()),
            None => {
                let channels = state.channels(&manifest.product);
                if channels.is_empty() || channels.contains(&manifest.channel.as_str()) {
                    return Ok(());
                }
                format!(
                    "the state file {} has accepted only {channels:?} of {} for this target \
                     (name the channel to switch channels)",
                    self.state_path().display(),
                    manifest.product
                )
            }
        };
        Err(UpdateError::WrongChannel {
            mirror: mirror.to_string(),
            got: manifest.channel.clone(),
            expected,
        })
    }
}
