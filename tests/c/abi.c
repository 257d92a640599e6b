/*
 * abi URL DEST: checks the C ABI's edge cases from real C (run by tests/ffi.rs,
 * also under valgrind): NULL arguments, status classes, the owned error
 * object, cancelling from the progress callback, re-entry from the callback,
 * and the report of a deploy and of its no-op repeat. DEST must not exist.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s URL DEST\n", argv[0]);
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
    CHECK(strcmp(zipdeploy_status_str(ZIPDEPLOY_CANCELLED), "cancelled") == 0);

    /* NULL everywhere: a status or a neutral value, never a crash. */
    zipdeploy_deploy_free(NULL);
    zipdeploy_report_free(NULL);
    zipdeploy_error_free(NULL);
    CHECK(zipdeploy_deploy_set_url(NULL, url) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_set_max_entries(NULL, 1) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_run(NULL, NULL, NULL) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(zipdeploy_deploy_last_status(NULL) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(strcmp(zipdeploy_deploy_last_error(NULL), "") == 0);
    CHECK(strcmp(zipdeploy_report_digest(NULL), "") == 0);
    CHECK(zipdeploy_report_total_ms(NULL) == 0);
    CHECK(zipdeploy_error_code(NULL) == ZIPDEPLOY_INVALID_ARGUMENT);
    CHECK(strcmp(zipdeploy_error_message(NULL), "") == 0);

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

    /* Running without a URL is a configuration error, as an owned error. */
    zipdeploy_error *error = NULL;
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
    CHECK(zipdeploy_report_bytes_downloaded(report) == zipdeploy_report_package_size(report));
    CHECK(exists(dest));
    char digest[65];
    snprintf(digest, sizeof digest, "%s", zipdeploy_report_digest(report));
    zipdeploy_report_free(report);
    report = NULL;

    CHECK(zipdeploy_deploy_set_sha256(deploy, digest) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_set_progress(deploy, NULL, NULL) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_deploy_run(deploy, &report, NULL) == ZIPDEPLOY_OK);
    CHECK(zipdeploy_report_noop(report) == 1);
    CHECK(zipdeploy_report_bytes_downloaded(report) == 0);
    CHECK(strcmp(zipdeploy_report_digest(report), digest) == 0);
    zipdeploy_report_free(report);

    zipdeploy_deploy_free(deploy);
    if (failures != 0) {
        fprintf(stderr, "abi: %d checks failed\n", failures);
        return 1;
    }
    puts("abi: all checks passed");
    return 0;
}
