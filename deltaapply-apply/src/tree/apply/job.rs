//! One update of a tree, whatever asked for it: the [`Job`] the entry points build
//! from a [`TreeApply`] or a [`TreeRepair`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{TreeApply, TreeRepair};
use crate::apply::Limits;
use crate::digest::Sha256Digest;
use crate::tree::format::{Listing, Recipe};
use crate::tree::patch::TreePatch;
use crate::tree::path::TreePath;

/// One update of a tree, whatever asked for it (a tree patch, a full tree image, a
/// repair): the listings, how each new file is made, and the options.
pub(super) struct Job<'a> {
    /// Where blobs come from (`None` for a repair, whose files are copies or
    /// substitutes only).
    pub(super) patch: Option<&'a TreePatch>,
    /// The tree patch's payload digest, recorded in the journal (`None`: a repair).
    pub(super) id: Option<Sha256Digest>,
    pub(super) old: &'a Listing,
    /// The new tree, each file with how it is made.
    pub(super) new: Cow<'a, Listing<Recipe>>,
    pub(super) old_root: Option<&'a Path>,
    pub(super) dest: &'a Path,
    pub(super) substitutes: &'a BTreeMap<TreePath, PathBuf>,
    pub(super) limits: Limits,
    pub(super) replace_unlisted: bool,
    pub(super) drop: Option<&'a Listing>,
}

impl<'a> Job<'a> {
    pub(super) fn of_patch(req: &TreeApply<'a>) -> Job<'a> {
        let index = req.patch.index();
        Job {
            patch: Some(req.patch),
            id: Some(req.patch.header().payload.sha256),
            old: &index.old,
            new: Cow::Borrowed(&index.new),
            old_root: req.old,
            dest: req.dest,
            substitutes: req.substitutes,
            limits: req.limits,
            replace_unlisted: req.replace_unlisted,
            drop: req.drop,
        }
    }

    pub(super) fn of_repair(req: &TreeRepair<'a>) -> Job<'a> {
        Job {
            patch: None,
            id: None,
            old: req.listing,
            new: Cow::Owned(req.listing.with_recipes(|from, _| Recipe::Copy { from })),
            old_root: Some(req.root),
            dest: req.root,
            substitutes: req.files,
            limits: Limits::default(),
            replace_unlisted: false,
            drop: None,
        }
    }
}
