#!/bin/sh
# Regenerates the tree-patch vectors (format-spec/tree-v1.md §9) in this directory.
# Deterministic: the input trees come from vectors.json, the valid patches from
# `deltapack diff` with fixed settings (zstd level 19, one thread, unsigned), the
# hostile ones from deltaapply-cli/tests/tree_vectors.rs (`make_vectors`). After running
# it, fill in any listing digest or method that changed in vectors.json and run
# `cargo test -p deltaapply --test tree_vectors`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"

# 1. The old and new trees of vectors.json, modes exact whatever the umask.
TREE_VECTORS_WORK="$work" cargo test -q -p deltaapply --test tree_vectors -- \
    --ignored --exact write_input_trees
mkdir "$work/empty"

# 2. The producer's tree patch and full tree image.
diff() {
    cargo run -q -p deltapack -- diff --threads 1 --level 19 "$1" "$2" -o "$3" >/dev/null
}
rm -f "$here"/*.dpatch
diff "$work/old" "$work/new" "$here/valid.dpatch"
diff "$work/empty" "$work/new" "$here/full-image.dpatch"

# 3. The hostile vectors: hand-made indexes, and edits of valid.dpatch.
cargo test -q -p deltaapply --test tree_vectors -- --ignored --exact make_vectors
ls -l "$here"
