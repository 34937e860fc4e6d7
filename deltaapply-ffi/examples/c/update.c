/*
 * update: bring a file (or a tree) to the newest release of a publish directory,
 * through libdeltaapply_ffi.
 *
 *   update KEY_FILE TARGET SOURCE...
 *
 * KEY_FILE is the publisher's public key file (`deltapack keygen --public-key`),
 * TARGET the installed file or tree, each SOURCE a mirror: a directory, a file:// or
 * an http(s):// URL, tried in turn. Prints the result's JSON on stdout and progress on
 * stderr; exits with the library's code (0 on success, the `deltaapply` binary's exit
 * codes otherwise).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deltaapply.h"

static const char *phase_name(int phase) {
    switch (phase) {
    case DELTAAPPLY_PHASE_MANIFEST: return "manifest";
    case DELTAAPPLY_PHASE_HASH_INSTALLED: return "hashing installed";
    case DELTAAPPLY_PHASE_DOWNLOAD: return "downloading";
    case DELTAAPPLY_PHASE_CHECK_SOURCE: return "checking old file";
    case DELTAAPPLY_PHASE_CHECK_PATCH: return "checking patch";
    case DELTAAPPLY_PHASE_WRITE: return "writing";
    case DELTAAPPLY_PHASE_TREE_STAGE: return "making files";
    case DELTAAPPLY_PHASE_TREE_COMMIT: return "committing";
    default: return "?";
    }
}

/* Prints a line when the phase changes; never cancels. */
static int progress(void *user, int phase, uint64_t done, uint64_t total) {
    int *last = user;
    if (*last != phase) {
        *last = phase;
        fprintf(stderr, "update: %s (%llu of %llu)\n", phase_name(phase),
                (unsigned long long)done, (unsigned long long)total);
    }
    return 0;
}

/* Reports a failed call and returns its code. */
static int fail(const char *what, int code, char *message) {
    fprintf(stderr, "update: %s: %s (%d): %s\n", what, deltaapply_code_name(code), code,
            message ? message : "");
    deltaapply_string_free(message);
    return code;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s KEY_FILE TARGET SOURCE...\n", argv[0]);
        return DELTAAPPLY_E_USAGE;
    }
    /* The mirrors, one a line, as deltaapply_update takes them. */
    size_t len = 1;
    for (int i = 3; i < argc; i++) len += strlen(argv[i]) + 1;
    char *sources = calloc(len, 1);
    if (!sources) return DELTAAPPLY_E_FAILURE;
    for (int i = 3; i < argc; i++) {
        strcat(sources, argv[i]);
        strcat(sources, "\n");
    }

    fprintf(stderr, "update: libdeltaapply %s\n", deltaapply_version());
    char *message = NULL;
    deltaapply_handle handle = 0;
    int code = deltaapply_open(&handle, &message);
    if (code != DELTAAPPLY_OK) return fail("open", code, message);
    int last_phase = 0;
    code = deltaapply_add_trusted_key_file(handle, argv[1], &message);
    if (code == DELTAAPPLY_OK) code = deltaapply_set_limits(handle, 256u << 20, 0, 0, &message);
    if (code == DELTAAPPLY_OK) code = deltaapply_set_progress(handle, progress, &last_phase, &message);
    if (code != DELTAAPPLY_OK) {
        fail("settings", code, message);
        deltaapply_close(handle, NULL);
        return code;
    }

    char *check = NULL;
    code = deltaapply_check(handle, sources, argv[2], &check, &message);
    if (code != DELTAAPPLY_OK) {
        fail("check", code, message);
        deltaapply_close(handle, NULL);
        free(sources);
        return code;
    }
    fprintf(stderr, "update: check: %s\n", check);
    deltaapply_string_free(check);

    char *result = NULL;
    code = deltaapply_update(handle, sources, argv[2], &result, &message);
    free(sources);
    if (code != DELTAAPPLY_OK) {
        fail("update", code, message);
    } else {
        printf("%s\n", result);
        deltaapply_string_free(result);
    }
    deltaapply_close(handle, NULL);
    return code;
}
