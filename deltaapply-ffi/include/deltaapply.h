/*
 * deltaapply.h: the C ABI of deltaapply (libdeltaapply_ffi.so / libdeltaapply_ffi.a).
 *
 * Check for an update, update a file or a tree, apply one patch, inspect a patch.
 * The reference is deltaapply-ffi/README.md: who owns each pointer, the codes,
 * threading, memory, the progress phases. Hand-written; deltaapply-ffi/tests/header.rs
 * fails if it and the library's entry points differ.
 *
 * Every function returns a code (DELTAAPPLY_OK or one of DELTAAPPLY_E_*), except
 * deltaapply_version, deltaapply_code_name and deltaapply_string_free. Strings passed
 * in are UTF-8 and NUL-terminated, borrowed for the call only. Strings handed out
 * (*error_message, *result_json) belong to the caller, who frees each with
 * deltaapply_string_free. Any `char **` output may be NULL when not wanted.
 */
#ifndef DELTAAPPLY_H
#define DELTAAPPLY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Codes. 0-10 are the `deltaapply` binary's exit codes. */
#define DELTAAPPLY_OK 0
#define DELTAAPPLY_E_FAILURE 1          /* I/O error or other failure */
#define DELTAAPPLY_E_USAGE 2            /* the request does not fit the patch */
#define DELTAAPPLY_E_BAD_PATCH 3        /* patch or manifest invalid or corrupt */
#define DELTAAPPLY_E_WRONG_SOURCE 4     /* the old file is not the patch's */
#define DELTAAPPLY_E_LIMIT 5            /* memory or download limit */
#define DELTAAPPLY_E_UNTRUSTED 6        /* origin check failed */
#define DELTAAPPLY_E_REFUSED 7          /* verified manifest refused (rollback, expired...) */
#define DELTAAPPLY_E_NO_ROUTE 8         /* no allowed route */
#define DELTAAPPLY_E_NETWORK 9          /* a file could not be downloaded */
#define DELTAAPPLY_E_BUSY 10            /* another applier holds the target */
#define DELTAAPPLY_E_CANCELLED 11       /* cancelled; nothing was installed */
#define DELTAAPPLY_E_INVALID_ARGUMENT 12 /* NULL, not UTF-8, handle not open, bad key... */
#define DELTAAPPLY_E_INTERNAL 13        /* a bug in the library (a caught panic) */
#define DELTAAPPLY_E_HANDLE_BUSY 14     /* the handle is running a job on another thread */

/* Progress phases, the `phase` argument of the progress callback. */
#define DELTAAPPLY_PHASE_MANIFEST 1        /* a signed manifest was accepted (1 of 1) */
#define DELTAAPPLY_PHASE_HASH_INSTALLED 2  /* hashing the installed file (bytes) */
#define DELTAAPPLY_PHASE_DOWNLOAD 3        /* downloading a file of the route (bytes) */
#define DELTAAPPLY_PHASE_CHECK_SOURCE 4    /* hashing the old file (bytes) */
#define DELTAAPPLY_PHASE_CHECK_PATCH 5     /* hashing the patch payload (bytes) */
#define DELTAAPPLY_PHASE_WRITE 6           /* decoding and writing the new file (bytes) */
#define DELTAAPPLY_PHASE_TREE_STAGE 7      /* a tree: making its new files (files) */
#define DELTAAPPLY_PHASE_TREE_COMMIT 8     /* a tree: committing (operations); cannot be cancelled */

/* A handle: a number, never 0 once opened. A closed or unknown one is an error. */
typedef uint64_t deltaapply_handle;

/* Progress: called on the thread running the job. Return 0 to go on, non-zero to
 * cancel the job (it ends with DELTAAPPLY_E_CANCELLED, nothing installed). */
typedef int (*deltaapply_progress_fn)(void *user, int phase, uint64_t done, uint64_t total);

/* The library's version, e.g. "0.1.0". Static: do not free. */
const char *deltaapply_version(void);

/* The name of a code, e.g. "DELTAAPPLY_E_CANCELLED". Static: do not free. */
const char *deltaapply_code_name(int code);

/* Frees a string the library handed out. NULL, a string freed already and a pointer
 * the library did not hand out are ignored. */
void deltaapply_string_free(char *s);

/* Opens a handle with the default settings into *out_handle. */
int deltaapply_open(deltaapply_handle *out_handle, char **error_message);

/* Closes a handle. A job running on it on another thread finishes first. */
int deltaapply_close(deltaapply_handle handle, char **error_message);

/* Sets the trusted keys from public key file text: one or more `ed25519:...` keys
 * separated by newlines, commas or spaces; lines starting with '#' are ignored.
 * Replaces the keys set before; text with no key clears them. */
int deltaapply_set_trusted_keys(deltaapply_handle handle, const char *keys, char **error_message);

/* Adds the key in a public key file (as `deltapack keygen` writes it). */
int deltaapply_add_trusted_key_file(deltaapply_handle handle, const char *path, char **error_message);

/* Limits; 0 keeps a limit's default. max_memory: most memory an apply may declare
 * (default 1 GiB). max_download: most bytes one update downloads (default none).
 * max_chain: longest chain of patches an update considers (default the library's). */
int deltaapply_set_limits(deltaapply_handle handle, uint64_t max_memory, uint64_t max_download, uint32_t max_chain, char **error_message);

/* Sets the progress callback and the pointer it is given; a NULL callback removes it. */
int deltaapply_set_progress(deltaapply_handle handle, deltaapply_progress_fn callback, void *user, char **error_message);

/* Cancels the job running on the handle, from any thread; no effect if none runs. */
int deltaapply_cancel(deltaapply_handle handle, char **error_message);

/* What an update of target from sources (mirrors: directories, file:// or http(s)://
 * URLs, one a line) would do. Needs trusted keys. Changes nothing. */
int deltaapply_check(deltaapply_handle handle, const char *sources, const char *target, char **result_json, char **error_message);

/* Brings target (a file or a tree) to the newest release of sources. Needs trusted keys. */
int deltaapply_update(deltaapply_handle handle, const char *sources, const char *target, char **result_json, char **error_message);

/* Applies one patch: a deltapack file or tree patch, BSDIFF40, a zstd frame or VCDIFF.
 * old_path: the old file or tree (NULL for a full image; dest_path == old_path updates
 * in place). expected_sha256: 64 hex digits the new file must have (NULL allowed for a
 * deltapack patch; required for a foreign one, which carries no digest). */
int deltaapply_apply(deltaapply_handle handle, const char *old_path, const char *patch_path, const char *dest_path, const char *expected_sha256, char **result_json, char **error_message);

/* A patch's header and its origin under the handle's keys, as JSON. */
int deltaapply_inspect(deltaapply_handle handle, const char *patch_path, char **result_json, char **error_message);

#ifdef __cplusplus
}
#endif

#endif /* DELTAAPPLY_H */
