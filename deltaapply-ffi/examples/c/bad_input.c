/*
 * bad_input: every entry point of libdeltaapply_ffi given what a careless or hostile
 * caller gives: NULL pointers, strings that are not UTF-8, closed and bogus handles, a
 * handle used from two threads at once, a progress callback that cancels at each
 * phase. Each must give a clear code, install nothing half-way, and not crash.
 *
 *   bad_input KEY_FILE SOURCE WORK_DIR OLD_FILE PATCH NEW_SHA256
 *
 * SOURCE is a publish directory whose newest release is NEW_SHA256 and that has a
 * patch from OLD_FILE; PATCH is that patch. The target is WORK_DIR/app.bin. Prints one
 * line per check ("ok ..." or "FAIL ..."), then "failures N"; exits 0 only if none
 * failed. The last step updates the target for real.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deltaapply.h"

static int failures = 0;
static const char *key_file, *source, *work_dir, *old_file, *patch, *new_sha;
static char target[4096];

#define EXPECT(what, got, want)                                                          \
    do {                                                                                 \
        int got_ = (got), want_ = (want);                                                \
        if (got_ == want_) {                                                             \
            printf("ok %s: %s\n", what, deltaapply_code_name(got_));                     \
        } else {                                                                         \
            printf("FAIL %s: got %s (%d), want %s (%d)\n", what, deltaapply_code_name(got_), \
                   got_, deltaapply_code_name(want_), want_);                            \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

#define TRUE(what, cond)                                                                 \
    do {                                                                                 \
        if (cond) {                                                                      \
            printf("ok %s\n", what);                                                     \
        } else {                                                                         \
            printf("FAIL %s\n", what);                                                   \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

static long read_all(const char *path, unsigned char **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *out = buf;
    return buf ? (long)len : -1;
}

static int copy_file(const char *from, const char *to) {
    unsigned char *bytes;
    long len = read_all(from, &bytes);
    if (len < 0) return -1;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(bytes, 1, (size_t)len, f) == (size_t)len;
    if (f) fclose(f);
    free(bytes);
    return ok ? 0 : -1;
}

static int same_file(const char *a, const char *b) {
    unsigned char *x, *y;
    long lx = read_all(a, &x), ly = read_all(b, &y);
    int same = lx >= 0 && lx == ly && memcmp(x, y, (size_t)lx) == 0;
    if (lx >= 0) free(x);
    if (ly >= 0) free(y);
    return same;
}

/* Whether WORK_DIR holds no temporary file of an apply. */
static int no_temp_files(void) {
    DIR *d = opendir(work_dir);
    if (!d) return 0;
    struct dirent *e;
    int clean = 1;
    while ((e = readdir(d))) {
        if (strstr(e->d_name, ".deltaapply-tmp")) clean = 0;
    }
    closedir(d);
    return clean;
}

/* The target is the old release, byte for byte, with nothing beside it. */
static void untouched(const char *what) {
    char line[256];
    snprintf(line, sizeof line, "%s: target untouched, no temporary file", what);
    TRUE(line, same_file(target, old_file) && no_temp_files());
}

static deltaapply_handle keyed_handle(void) {
    deltaapply_handle h = 0;
    if (deltaapply_open(&h, NULL) != DELTAAPPLY_OK ||
        deltaapply_add_trusted_key_file(h, key_file, NULL) != DELTAAPPLY_OK) {
        printf("FAIL cannot open a handle with the key\n");
        exit(2);
    }
    return h;
}

static void null_pointers(void) {
    char *msg = NULL;
    EXPECT("open(NULL)", deltaapply_open(NULL, &msg), DELTAAPPLY_E_INVALID_ARGUMENT);
    TRUE("open(NULL) gives a message", msg != NULL && strstr(msg, "out_handle") != NULL);
    deltaapply_string_free(msg);
    deltaapply_string_free(msg); /* a double free is ignored */
    deltaapply_string_free(NULL);
    deltaapply_string_free((char *)"not the library's"); /* ignored too */
    TRUE("code_name(-1)", strcmp(deltaapply_code_name(-1), "DELTAAPPLY_E_UNKNOWN") == 0);

    deltaapply_handle h = keyed_handle();
    const int bad = DELTAAPPLY_E_INVALID_ARGUMENT;
    EXPECT("set_trusted_keys(NULL)", deltaapply_set_trusted_keys(h, NULL, NULL), bad);
    EXPECT("add_trusted_key_file(NULL)", deltaapply_add_trusted_key_file(h, NULL, NULL), bad);
    EXPECT("check(NULL sources)", deltaapply_check(h, NULL, target, NULL, NULL), bad);
    EXPECT("check(NULL target)", deltaapply_check(h, source, NULL, NULL, NULL), bad);
    EXPECT("update(NULL sources)", deltaapply_update(h, NULL, target, NULL, NULL), bad);
    EXPECT("update(NULL target)", deltaapply_update(h, source, NULL, NULL, NULL), bad);
    EXPECT("apply(NULL patch)", deltaapply_apply(h, target, NULL, target, NULL, NULL, NULL), bad);
    EXPECT("apply(NULL dest)", deltaapply_apply(h, target, patch, NULL, NULL, NULL, NULL), bad);
    EXPECT("inspect(NULL)", deltaapply_inspect(h, NULL, NULL, NULL), bad);
    char *json = (char *)1; /* overwritten with NULL on failure */
    EXPECT("inspect(NULL) with outputs", deltaapply_inspect(h, NULL, &json, &msg), bad);
    TRUE("a failed job sets result_json to NULL", json == NULL && msg != NULL);
    deltaapply_string_free(msg);
    EXPECT("set_progress(NULL) removes it", deltaapply_set_progress(h, NULL, NULL, NULL), DELTAAPPLY_OK);
    untouched("NULL pointers");
    deltaapply_close(h, NULL);
}

static void not_utf8(void) {
    const char *bad_text = "\xff\xfe/app.bin";
    const int bad = DELTAAPPLY_E_INVALID_ARGUMENT;
    deltaapply_handle h = keyed_handle();
    char *msg = NULL;
    EXPECT("set_trusted_keys(not UTF-8)", deltaapply_set_trusted_keys(h, bad_text, &msg), bad);
    TRUE("the message says UTF-8", msg && strstr(msg, "UTF-8"));
    deltaapply_string_free(msg);
    EXPECT("add_trusted_key_file(not UTF-8)", deltaapply_add_trusted_key_file(h, bad_text, NULL), bad);
    EXPECT("check(sources not UTF-8)", deltaapply_check(h, bad_text, target, NULL, NULL), bad);
    EXPECT("update(target not UTF-8)", deltaapply_update(h, source, bad_text, NULL, NULL), bad);
    EXPECT("apply(patch not UTF-8)", deltaapply_apply(h, target, bad_text, target, NULL, NULL, NULL), bad);
    EXPECT("apply(sha256 not UTF-8)", deltaapply_apply(h, target, patch, target, bad_text, NULL, NULL), bad);
    EXPECT("apply(sha256 not hex)", deltaapply_apply(h, target, patch, target, "xyz", NULL, NULL), bad);
    EXPECT("inspect(not UTF-8)", deltaapply_inspect(h, bad_text, NULL, NULL), bad);
    EXPECT("set_trusted_keys(not a key)", deltaapply_set_trusted_keys(h, "ed25519:zz", NULL), bad);
    EXPECT("update(not a source)", deltaapply_update(h, "ftp://x", target, NULL, NULL), bad);
    untouched("strings not UTF-8");
    deltaapply_close(h, NULL);
}

static void closed_handles(void) {
    const int bad = DELTAAPPLY_E_INVALID_ARGUMENT;
    deltaapply_handle h = keyed_handle();
    EXPECT("close", deltaapply_close(h, NULL), DELTAAPPLY_OK);
    EXPECT("close again", deltaapply_close(h, NULL), bad);
    EXPECT("set_trusted_keys(closed)", deltaapply_set_trusted_keys(h, "", NULL), bad);
    EXPECT("add_trusted_key_file(closed)", deltaapply_add_trusted_key_file(h, key_file, NULL), bad);
    EXPECT("set_limits(closed)", deltaapply_set_limits(h, 0, 0, 0, NULL), bad);
    EXPECT("set_progress(closed)", deltaapply_set_progress(h, NULL, NULL, NULL), bad);
    EXPECT("cancel(closed)", deltaapply_cancel(h, NULL), bad);
    EXPECT("check(closed)", deltaapply_check(h, source, target, NULL, NULL), bad);
    EXPECT("update(closed)", deltaapply_update(h, source, target, NULL, NULL), bad);
    EXPECT("apply(closed)", deltaapply_apply(h, target, patch, target, NULL, NULL, NULL), bad);
    EXPECT("inspect(closed)", deltaapply_inspect(h, patch, NULL, NULL), bad);
    EXPECT("update(handle 0)", deltaapply_update(0, source, target, NULL, NULL), bad);
    EXPECT("update(bogus handle)", deltaapply_update(0x7fffffffffffULL, source, target, NULL, NULL), bad);
    untouched("closed handles");
}

/* Two threads on one handle: the job blocks in its first progress callback until the
 * other thread has tried the handle, cancelled the job and closed the handle. */
static atomic_int inside, release_job;
static int blocking(void *user, int phase, uint64_t done, uint64_t total) {
    (void)user, (void)phase, (void)done, (void)total;
    atomic_store(&inside, 1);
    struct timespec ms = {0, 1000000};
    while (!atomic_load(&release_job)) nanosleep(&ms, NULL);
    return 0;
}

struct job { deltaapply_handle h; int code; };
static void *run_update(void *arg) {
    struct job *j = arg;
    j->code = deltaapply_update(j->h, source, target, NULL, NULL);
    return NULL;
}

static void two_threads(void) {
    struct job j = {keyed_handle(), -1};
    deltaapply_set_progress(j.h, blocking, NULL, NULL);
    atomic_store(&inside, 0);
    atomic_store(&release_job, 0);
    pthread_t t;
    pthread_create(&t, NULL, run_update, &j);
    struct timespec ms = {0, 1000000};
    while (!atomic_load(&inside)) nanosleep(&ms, NULL);
    EXPECT("apply while another thread runs a job", deltaapply_apply(j.h, target, patch, target, NULL, NULL, NULL), DELTAAPPLY_E_HANDLE_BUSY);
    EXPECT("update while another thread runs a job", deltaapply_update(j.h, source, target, NULL, NULL), DELTAAPPLY_E_HANDLE_BUSY);
    EXPECT("set_limits while a job runs", deltaapply_set_limits(j.h, 0, 0, 0, NULL), DELTAAPPLY_OK);
    EXPECT("cancel from another thread", deltaapply_cancel(j.h, NULL), DELTAAPPLY_OK);
    EXPECT("close while the job runs", deltaapply_close(j.h, NULL), DELTAAPPLY_OK);
    atomic_store(&release_job, 1);
    pthread_join(t, NULL);
    EXPECT("the cancelled job's code", j.code, DELTAAPPLY_E_CANCELLED);
    untouched("two threads");
    EXPECT("the closed handle afterwards", deltaapply_cancel(j.h, NULL), DELTAAPPLY_E_INVALID_ARGUMENT);
}

/* Cancels when the phase is the one asked for; records the phases seen. */
struct canceller { int at; unsigned seen; };
static int cancel_at(void *user, int phase, uint64_t done, uint64_t total) {
    struct canceller *c = user;
    (void)done, (void)total;
    c->seen |= 1u << phase;
    return phase == c->at;
}

static void cancel_each_phase(void) {
    static const int update_phases[] = {
        DELTAAPPLY_PHASE_MANIFEST, DELTAAPPLY_PHASE_HASH_INSTALLED, DELTAAPPLY_PHASE_DOWNLOAD,
        DELTAAPPLY_PHASE_CHECK_SOURCE, DELTAAPPLY_PHASE_CHECK_PATCH, DELTAAPPLY_PHASE_WRITE};
    char what[128];
    for (size_t i = 0; i < sizeof update_phases / sizeof *update_phases; i++) {
        struct canceller c = {update_phases[i], 0};
        deltaapply_handle h = keyed_handle();
        deltaapply_set_progress(h, cancel_at, &c, NULL);
        snprintf(what, sizeof what, "update cancelled at phase %d", c.at);
        char *msg = NULL;
        EXPECT(what, deltaapply_update(h, source, target, NULL, &msg), DELTAAPPLY_E_CANCELLED);
        TRUE("the message says cancelled", msg && strstr(msg, "cancelled"));
        deltaapply_string_free(msg);
        TRUE("the phase was reached", c.seen & (1u << c.at));
        untouched(what);
        deltaapply_close(h, NULL);
    }
    static const int apply_phases[] = {
        DELTAAPPLY_PHASE_CHECK_SOURCE, DELTAAPPLY_PHASE_CHECK_PATCH, DELTAAPPLY_PHASE_WRITE};
    for (size_t i = 0; i < sizeof apply_phases / sizeof *apply_phases; i++) {
        struct canceller c = {apply_phases[i], 0};
        deltaapply_handle h = keyed_handle();
        deltaapply_set_progress(h, cancel_at, &c, NULL);
        snprintf(what, sizeof what, "apply in place cancelled at phase %d", c.at);
        EXPECT(what, deltaapply_apply(h, target, patch, target, new_sha, NULL, NULL), DELTAAPPLY_E_CANCELLED);
        TRUE("the phase was reached", c.seen & (1u << c.at));
        untouched(what);
        deltaapply_close(h, NULL);
    }
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s KEY_FILE SOURCE WORK_DIR OLD_FILE PATCH NEW_SHA256\n", argv[0]);
        return 2;
    }
    key_file = argv[1], source = argv[2], work_dir = argv[3];
    old_file = argv[4], patch = argv[5], new_sha = argv[6];
    snprintf(target, sizeof target, "%s/app.bin", work_dir);
    if (copy_file(old_file, target) != 0) {
        fprintf(stderr, "cannot copy %s to %s\n", old_file, target);
        return 2;
    }
    null_pointers();
    not_utf8();
    closed_handles();
    two_threads();
    cancel_each_phase();

    /* After all that, the same handle settings still update for real. */
    deltaapply_handle h = keyed_handle();
    char *json = NULL, *msg = NULL;
    EXPECT("update at last", deltaapply_update(h, source, target, &json, &msg), DELTAAPPLY_OK);
    TRUE("the result says updated", json && strstr(json, "\"outcome\":\"updated\""));
    if (msg) printf("message: %s\n", msg);
    deltaapply_string_free(json);
    deltaapply_string_free(msg);
    deltaapply_close(h, NULL);
    TRUE("no temporary file after the update", no_temp_files());
    printf("failures %d\n", failures);
    return failures ? 1 : 0;
}
