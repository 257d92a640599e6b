/*
 * abi URL DEST: checks the C ABI's edge cases from real C (run by tests/ffi.rs,
 * also under valgrind): NULL arguments, status classes, the owned error
 * object, cancelling from the progress callback, re-entry from the callback,
 * the report of a deploy and of its no-op repeat, the fleet setters (mirrors,
 * sidecar, minisign key, cache), status and rollback. DEST must not exist.
 *
 * abi URL DEST STALLED_URL: also cancels, from the callback, a download from
 * a server that has stalled mid-body, and checks it ends within a second.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "zipdeploy.h"

static int failures = 0;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "abi.c:%d: check failed: %s\n", __LINE__, #cond);     \
            failures++;                                                            \
        }                                                                          \
    } while (0)

struct seen {
    zipdeploy_deploy *deploy;
    int events;
    int cancel_at;
    int reentry_status;
    int first_stage;
};

static int on_progress(void *userdata, const zipdeploy_progress *p) {
    struct seen *seen = userdata;
    seen->events++;
    if (seen->events == 1) {
        seen->first_stage = p->stage;
    }
    /* Calls on the running handle are refused, not executed. */
    seen->reentry_status = zipdeploy_deploy_set_retries(seen->deploy, 0);
    return seen->events >= seen->cancel_at;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Cancels once `cancel_after` seconds have passed since `started`. */
struct timed_cancel {
    double started;
    double cancel_after;
    double cancelled_at;
    int calls;
};

static int cancel_later(void *userdata, const zipdeploy_progress *p) {
    struct timed_cancel *t = userdata;
    (void)p;
    t->calls++;
    if (now_s() - t->started < t->cancel_after) {
        return 0;
    }
    if (t->cancelled_at == 0) {
        t->cancelled_at = now_s();
    }
    return 1;
}

/* A server that sends a little of the body, then nothing: the callback is
 * still called (heartbeats), and its cancel ends the deploy promptly. */
static void cancel_a_stalled_download(const char *stalled_url, const char *dest) {
    char stalled_dest[4096];
    snprintf(stalled_dest, sizeof stalled_dest, "%s-stalled", dest);
    zipdeploy_deploy *deploy = zipdeploy_deploy_new();
    CHECK(zipdeploy_deploy_set_url(deploy, stalled_url) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_dest(deploy, stalled_dest) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_retries(deploy, 0) == ZIPDEPLOY_OK);
    struct timed_cancel t = {now_s(), 0.4, 0, 0};
    CHECK(zipdeploy_deploy_set_progress(deploy, cancel_later, &t) == ZIPDEPLOY_OK);
    zipdeploy_error *error = NULL;
    CHECK(zipdeploy_deploy_run(deploy, NULL, &error) == ZIPDEPLOY_CANCELLED);
    double took = now_s() - t.cancelled_at;
    CHECK(t.cancelled_at > 0);
    CHECK(took < 1.0);
    if (took >= 1.0) {
        fprintf(stderr, "abi: the cancel took %.2f s\n", took);
    }
    CHECK(t.calls >= 3); /* heartbeats while the server was silent */
    CHECK(zipdeploy_error_code(error) == ZIPDEPLOY_CANCELLED);
    CHECK(!exists(stalled_dest));
    zipdeploy_error_free(error);
    zipdeploy_deploy_free(deploy);
}


int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s URL DEST [STALLED_URL]\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    const char *dest = argv[2];

    CHECK(strcmp(zipdeploy_version(), ZIPDEPLOY_VERSION) == 0);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_OK) == 0);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_PANIC) == 1);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_INVALID_ARGUMENT) == 2);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_HTTP_STATUS) == 3);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_DIGEST_MISMATCH) == 4);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_UNSAFE_ENTRY) == 5);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_LIMIT_EXCEEDED) == 6);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_NO_SPACE) == 7);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_HOOK) == 8);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_CANCELLED) == 9);
    CHECK(zipdeploy_status_class(99) == 1);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_MIRRORS_FAILED) == 3);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_SIGNATURE_INVALID) == 4);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_SIGNATURE_MISSING) == 4);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_DIGEST_SIDECAR) == 4);
    CHECK(zipdeploy_status_class(ZIPDEPLOY_NO_RELEASE) == 7);
    CHECK(strcmp(zipdeploy_status_str(ZIPDEPLOY_NO_RELEASE), "no release to roll back to") == 0);
    CHECK(strcmp(zipdeploy_status_str(ZIPDEPLOY_CANCELLED), "cancelled") == 0);
    /* The result-code helpers under their new names (the old ones above are
     * their deprecated aliases and must keep linking and answering). */
    CHECK(zipdeploy_code_class(ZIPDEPLOY_OK) == 0);
    CHECK(zipdeploy_code_class(ZIPDEPLOY_BUSY) == 2);
    CHECK(zipdeploy_code_class(ZIPDEPLOY_DIGEST_SIDECAR) == 4);
    CHECK(zipdeploy_code_class(ZIPDEPLOY_NO_RELEASE) == 7);
    CHECK(zipdeploy_code_class(99) == 1);
    CHECK(strcmp(zipdeploy_code_str(ZIPDEPLOY_NO_RELEASE), "no release to roll back to") == 0);
    CHECK(strcmp(zipdeploy_code_str(12345), "unknown code") == 0);
    CHECK(strcmp(zipdeploy_status_str(12345), "unknown status") == 0);

    /* NULL everywhere: a status or a neutral value, never a crash. */
    zipdeploy_deploy_free(NULL);
    zipdeploy_report_free(NULL);
    zipdeploy_error_free(NULL);
    CHECK(zipdeploy_deploy_set_url(NULL, url) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_set_max_entries(NULL, 1) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_run(NULL, NULL, NULL) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_last_status(NULL) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_last_code(NULL) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(strcmp(zipdeploy_deploy_last_error(NULL), "") == 0);
    CHECK(strcmp(zipdeploy_report_digest(NULL), "") == 0);
    CHECK(zipdeploy_report_total_ms(NULL) == 0);
    CHECK(zipdeploy_error_code(NULL) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(strcmp(zipdeploy_error_message(NULL), "") == 0);
    CHECK(zipdeploy_deploy_add_mirror(NULL, url) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_set_minisign_key(NULL, NULL) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_rollback(NULL, NULL, NULL) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_status_read(NULL, NULL, NULL) == ZIPDEPLOY_INVALID_ARGUMENT);
    zipdeploy_status_free(NULL);
    CHECK(zipdeploy_status_installed(NULL) == 0);
    CHECK(strcmp(zipdeploy_status_digest(NULL), "") == 0);
    CHECK(zipdeploy_status_kept_count(NULL) == 0);
    CHECK(strcmp(zipdeploy_status_kept_digest(NULL, 0), "") == 0);
    CHECK(zipdeploy_report_cache_hit(NULL) == 0);
    CHECK(zipdeploy_report_not_modified(NULL) == 0);
    CHECK(strcmp(zipdeploy_report_signed_by(NULL), "") == 0);
    CHECK(zipdeploy_report_warning_count(NULL) == 0);
    CHECK(strcmp(zipdeploy_report_warning(NULL, 0), "") == 0);

    /* Nothing installed yet: a status saying so, not an error. */
    zipdeploy_error *error = NULL;
    zipdeploy_status *status = NULL;
    CHECK(zipdeploy_status_read(dest, &status, NULL) == ZIPDEPLOY_OK);
    CHECK(status != NULL);
    CHECK(zipdeploy_status_installed(status) == 0);
    CHECK(strcmp(zipdeploy_status_digest(status), "") == 0);
    CHECK(zipdeploy_status_kept_count(status) == 0);
    CHECK(strlen(zipdeploy_status_dest(status)) > 0);
    zipdeploy_status_free(status);
    status = NULL;

    zipdeploy_deploy *deploy = zipdeploy_deploy_new();
    CHECK(deploy != NULL);
    if (deploy == NULL) {
        return 1;
    }
    CHECK(zipdeploy_deploy_set_url(deploy, NULL) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(strcmp(zipdeploy_deploy_last_error(deploy), "url is NULL") == 0);
    CHECK(zipdeploy_deploy_set_url(deploy, "gopher://x/y.zip") == ZIPDEPLOY_INVALID_URL);
    CHECK(zipdeploy_deploy_set_url(deploy, "\xff\xfe") == ZIPDEPLOY_INVALID_UTF8);
    CHECK(zipdeploy_deploy_set_sha256(deploy, "not-a-digest") == ZIPDEPLOY_INVALID_DIGEST);
    CHECK(zipdeploy_deploy_add_header(deploy, "X-Bad", "a\r\nb: c") ==
          ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_set_stall_timeout_ms(deploy, 0) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_set_speed_limit(deploy, 1024, 0) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_set_speed_limit(deploy, 0, 0) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_speed_limit(deploy, 1024, 30000) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_speed_limit(NULL, 1024, 30000) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_add_header_for(deploy, "/not/an/origin", "X-Api-Key", "k") ==
          ZIPDEPLOY_INVALID_URL);
    CHECK(zipdeploy_deploy_add_header_for(deploy, "https://mirror.example", "X Bad", "k") ==
          ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_add_header_for(deploy, NULL, "X-Api-Key", "k") ==
          ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_add_header_for(deploy, "https://mirror.example", "X-Api-Key", "k") ==
          ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_add_mirror(deploy, "ftp://x/y.zip") == ZIPDEPLOY_INVALID_URL);
    CHECK(zipdeploy_deploy_add_mirror(deploy, NULL) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_clear_mirrors(deploy) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_sha256_from(deploy, "gopher://x") == ZIPDEPLOY_INVALID_URL);
    CHECK(zipdeploy_deploy_set_sha256_from(deploy, NULL) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_minisign_key(deploy, "RWQnotakey") == ZIPDEPLOY_IO);
    CHECK(zipdeploy_deploy_set_minisign_key(
              deploy, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") ==
          ZIPDEPLOY_CONFIG);
    CHECK(zipdeploy_deploy_set_minisign_key(deploy, NULL) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_minisign_sig(deploy, NULL) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_cache(deploy, "") == ZIPDEPLOY_CONFIG);
    CHECK(zipdeploy_deploy_set_cache(deploy, NULL) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_cache_max_size(deploy, 0) == ZIPDEPLOY_INVALID_ARGUMENT);

    /* Rolling back without a destination, then with nothing kept. */
    error = NULL;
    CHECK(zipdeploy_deploy_rollback(deploy, &status, &error) == ZIPDEPLOY_CONFIG);
    CHECK(status == NULL);
    zipdeploy_error_free(error);
    error = NULL;

    /* Running without a URL is a configuration error, as an owned error. */
    zipdeploy_report *report = NULL;
    CHECK(zipdeploy_deploy_run(deploy, &report, &error) == ZIPDEPLOY_CONFIG);
    CHECK(report == NULL);
    CHECK(zipdeploy_error_code(error) == ZIPDEPLOY_CONFIG);
    CHECK(zipdeploy_error_class(error) == 2);
    zipdeploy_error_free(error);
    error = NULL;

    CHECK(zipdeploy_deploy_set_url(deploy, url) == ZIPDEPLOY_OK);
    CHECK(strcmp(zipdeploy_deploy_last_error(deploy), "") == 0);
    CHECK(zipdeploy_deploy_set_dest(deploy, dest) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_add_header(deploy, "X-Test", "abi") == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_timeout_ms(deploy, 60000) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_connect_timeout_ms(deploy, 5000) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_retries(deploy, 1) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_keep(deploy, 2) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_durable(deploy, 0) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_max_download(deploy, 1 << 20) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_max_total_size(deploy, 1 << 20) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_max_entries(deploy, 100) == ZIPDEPLOY_OK);

    /* Cancel at the first event: status 90, DEST never created. */
    struct seen seen = {deploy, 0, 1, -1, 0};
    CHECK(zipdeploy_deploy_set_progress(deploy, on_progress, &seen) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_run(deploy, &report, &error) == ZIPDEPLOY_CANCELLED);
    CHECK(report == NULL);
    CHECK(seen.events == 1);
    CHECK(seen.first_stage == ZIPDEPLOY_STAGE_FETCH);
    CHECK(seen.reentry_status == ZIPDEPLOY_BUSY);
    CHECK(zipdeploy_error_code(error) == ZIPDEPLOY_CANCELLED);
    CHECK(zipdeploy_error_class(error) == 9);
    CHECK(strcmp(zipdeploy_error_message(error), "deploy cancelled") == 0);
    CHECK(zipdeploy_deploy_last_status(deploy) == ZIPDEPLOY_CANCELLED);
    CHECK(zipdeploy_deploy_last_code(deploy) == ZIPDEPLOY_CANCELLED);
    CHECK(!exists(dest));
    zipdeploy_error_free(error);
    error = NULL;

    /* Without cancelling: a report, then a no-op. */
    seen.cancel_at = 1 << 30;
    seen.events = 0;
    CHECK(zipdeploy_deploy_run(deploy, &report, &error) == ZIPDEPLOY_OK);
    CHECK(error == NULL);
    CHECK(seen.events >= 3);
    CHECK(strlen(zipdeploy_report_digest(report)) == 64);
    CHECK(zipdeploy_report_noop(report) == 0);
    CHECK(zipdeploy_report_files(report) > 0);
    /* What the cancelled run had downloaded was kept, and only the rest fetched. */
    CHECK(zipdeploy_report_bytes_downloaded(report) <= zipdeploy_report_package_size(report));
    CHECK(zipdeploy_report_not_modified(report) == 0);
    /* No leftover to warn about; out of range is "", never NULL. */
    CHECK(zipdeploy_report_warning_count(report) == 0);
    CHECK(strcmp(zipdeploy_report_warning(report, 0), "") == 0);
    CHECK(strcmp(zipdeploy_report_warning(report, UINT64_MAX), "") == 0);
    CHECK(exists(dest));
    char digest[65];
    snprintf(digest, sizeof digest, "%s", zipdeploy_report_digest(report));
    zipdeploy_report_free(report);
    report = NULL;

    CHECK(zipdeploy_deploy_set_sha256(deploy, digest) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_progress(deploy, NULL, NULL) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_run(deploy, &report, NULL) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_report_noop(report) == 1);
    CHECK(zipdeploy_report_not_modified(report) == 0); /* a pinned digest: no request */
    CHECK(zipdeploy_report_bytes_downloaded(report) == 0);
    CHECK(strcmp(zipdeploy_report_digest(report), digest) == 0);
    CHECK(zipdeploy_report_cache_hit(report) == 0);
    CHECK(strcmp(zipdeploy_report_signed_by(report), "") == 0);
    zipdeploy_report_free(report);

    /* Status of what is installed; a rollback has nothing to go back to. */
    CHECK(zipdeploy_status_read(dest, &status, &error) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_status_installed(status) == 1);
    CHECK(strcmp(zipdeploy_status_digest(status), digest) == 0);
    CHECK(strlen(zipdeploy_status_source(status)) > 0);
    CHECK(zipdeploy_status_installed_at(status) > 1600000000u);
    CHECK(zipdeploy_status_package_size(status) > 0);
    CHECK(zipdeploy_status_kept_count(status) == 0);
    CHECK(strcmp(zipdeploy_status_kept_digest(status, 5), "") == 0);
    CHECK(zipdeploy_status_kept_installed_at(status, 5) == 0);
    zipdeploy_status_free(status);
    status = NULL;
    CHECK(zipdeploy_deploy_rollback(deploy, &status, &error) == ZIPDEPLOY_NO_RELEASE);
    CHECK(status == NULL);
    CHECK(zipdeploy_error_code(error) == ZIPDEPLOY_NO_RELEASE);
    CHECK(zipdeploy_error_class(error) == 7);
    CHECK(strstr(zipdeploy_error_message(error), "nothing to roll back to") != NULL);
    zipdeploy_error_free(error);
    error = NULL;
    CHECK(exists(dest));

    zipdeploy_deploy_free(deploy);
    if (argc == 4) {
        cancel_a_stalled_download(argv[3], dest);
    }
    if (failures != 0) {
        fprintf(stderr, "abi: %d checks failed\n", failures);
        return 1;
    }
    puts("abi: all checks passed");
    return 0;
}
