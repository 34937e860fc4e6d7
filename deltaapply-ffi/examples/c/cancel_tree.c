/*
 * cancel_tree: apply a tree patch through libdeltaapply_ffi with a progress callback
 * that cancels when a given phase is reported.
 *
 *   cancel_tree PHASE OLD_DIR PATCH DEST_DIR
 *
 * DEST_DIR equal to OLD_DIR updates the tree in place. Prints the phases seen and the
 * code, and exits with the code: DELTAAPPLY_E_CANCELLED for a cancel while the files
 * are made (the tree untouched), DELTAAPPLY_OK for one during the commit, which runs
 * to its end.
 */
#include <stdio.h>
#include <stdlib.h>

#include "deltaapply.h"

struct canceller { int at; unsigned seen; };

static int cancel_at(void *user, int phase, uint64_t done, uint64_t total) {
    struct canceller *c = user;
    (void)done, (void)total;
    c->seen |= 1u << phase;
    return phase == c->at;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s PHASE OLD_DIR PATCH DEST_DIR\n", argv[0]);
        return DELTAAPPLY_E_USAGE;
    }
    struct canceller c = {atoi(argv[1]), 0};
    deltaapply_handle h = 0;
    char *message = NULL;
    if (deltaapply_open(&h, NULL) != DELTAAPPLY_OK) return DELTAAPPLY_E_FAILURE;
    deltaapply_set_progress(h, cancel_at, &c, NULL);
    int code = deltaapply_apply(h, argv[2], argv[3], argv[4], NULL, NULL, &message);
    for (int phase = 1; phase < 32; phase++) {
        if (c.seen & (1u << phase)) printf("seen %d\n", phase);
    }
    printf("code %s\n", deltaapply_code_name(code));
    if (message) printf("message %s\n", message);
    deltaapply_string_free(message);
    deltaapply_close(h, NULL);
    return code;
}
