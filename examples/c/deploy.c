/*
 * deploy URL DEST [SHA256]: deploys a ZIP package with the zipdeploy C ABI.
 *
 * Progress goes to stderr, the report to stdout (one "key: value" per line).
 * The exit status is the result code's class: 0 success, 2 usage, 3 network,
 * 4 digest, 5 archive, 6 limit, 7 filesystem, 8 hook, 9 cancelled, 1 internal.
 *
 * Build (from the repository root) against the installed library:
 *   ./install.sh --prefix "$HOME/.local"
 *   export PKG_CONFIG_PATH="$HOME/.local/lib/pkgconfig"
 *   cc -Wall -Wextra -std=c11 examples/c/deploy.c \
 *      $(pkg-config --cflags --libs zipdeploy) -o deploy
 *   ./deploy https://example.com/app.zip /srv/app
 * or statically (an install with --library-type static):
 *   cc -Wall -Wextra -std=c11 examples/c/deploy.c \
 *      $(pkg-config --static --cflags --libs zipdeploy) -o deploy
 */
#include <stdio.h>
#include <string.h>

#include <zipdeploy.h>

/* Userdata of the progress callback: the stage last shown. */
struct progress_state {
    int last_stage;
};

static const char *stage_name(int stage) {
    switch (stage) {
    case ZIPDEPLOY_STAGE_FETCH:
        return "fetch";
    case ZIPDEPLOY_STAGE_EXTRACT:
        return "extract";
    case ZIPDEPLOY_STAGE_INSTALL:
        return "install";
    default:
        return "?";
    }
}

static int on_progress(void *userdata, const zipdeploy_progress *p) {
    struct progress_state *state = userdata;
    if (state->last_stage != 0 && state->last_stage != p->stage) {
        fputc('\n', stderr);
    }
    state->last_stage = p->stage;
    fprintf(stderr, "\r%-7s %llu", stage_name(p->stage), (unsigned long long)p->bytes);
    if (p->total_bytes != 0) {
        fprintf(stderr, "/%llu", (unsigned long long)p->total_bytes);
    }
    fputs(" bytes", stderr);
    if (p->total_entries != 0) {
        fprintf(stderr, ", %llu/%llu entries", (unsigned long long)p->entries,
                (unsigned long long)p->total_entries);
    }
    return 0; /* non-zero would cancel the deploy */
}

/* Prints the result code and message of a failed call and returns its class. */
static int fail(const char *what, int code, const char *message) {
    fprintf(stderr, "deploy: %s failed: error %d (%s): %s\n", what, code, zipdeploy_code_str(code),
            message);
    return zipdeploy_code_class(code);
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s URL DEST [SHA256]\n", argv[0]);
        return 2;
    }
    if (strcmp(zipdeploy_version(), ZIPDEPLOY_VERSION) != 0) {
        fprintf(stderr, "deploy: header %s does not match library %s\n", ZIPDEPLOY_VERSION,
                zipdeploy_version());
        return 1;
    }

    zipdeploy_deploy *deploy = zipdeploy_deploy_new();
    if (deploy == NULL) {
        fputs("deploy: out of memory\n", stderr);
        return 1;
    }
    struct progress_state state = {0};
    int code = zipdeploy_deploy_set_url(deploy, argv[1]);
    if (code == ZIPDEPLOY_OK) {
        code = zipdeploy_deploy_set_dest(deploy, argv[2]);
    }
    if (code == ZIPDEPLOY_OK && argc == 4) {
        code = zipdeploy_deploy_set_sha256(deploy, argv[3]);
    }
    if (code == ZIPDEPLOY_OK) {
        code = zipdeploy_deploy_set_progress(deploy, on_progress, &state);
    }
    if (code != ZIPDEPLOY_OK) {
        /* Setters keep their error on the handle; copy before freeing it. */
        int class = fail("configuration", code, zipdeploy_deploy_last_error(deploy));
        zipdeploy_deploy_free(deploy);
        return class;
    }

    zipdeploy_report *report = NULL;
    zipdeploy_error *error = NULL;
    code = zipdeploy_deploy_run(deploy, &report, &error);
    if (state.last_stage != 0) {
        fputc('\n', stderr);
    }
    zipdeploy_deploy_free(deploy); /* report and error are owned separately */
    if (code != ZIPDEPLOY_OK) {
        int class = fail("deploy", zipdeploy_error_code(error), zipdeploy_error_message(error));
        zipdeploy_error_free(error);
        return class;
    }

    printf("digest: %s\n", zipdeploy_report_digest(report));
    printf("source: %s\n", zipdeploy_report_source(report));
    printf("dest: %s\n", zipdeploy_report_dest(report));
    printf("noop: %s\n", zipdeploy_report_noop(report) ? "true" : "false");
    printf("bytes_downloaded: %llu\n",
           (unsigned long long)zipdeploy_report_bytes_downloaded(report));
    printf("package_size: %llu\n", (unsigned long long)zipdeploy_report_package_size(report));
    printf("entries: %llu\n", (unsigned long long)zipdeploy_report_entries(report));
    printf("files: %llu\n", (unsigned long long)zipdeploy_report_files(report));
    printf("bytes_written: %llu\n", (unsigned long long)zipdeploy_report_bytes_written(report));
    printf("ms: fetch %llu, extract %llu, install %llu, total %llu\n",
           (unsigned long long)zipdeploy_report_fetch_ms(report),
           (unsigned long long)zipdeploy_report_extract_ms(report),
           (unsigned long long)zipdeploy_report_install_ms(report),
           (unsigned long long)zipdeploy_report_total_ms(report));
    zipdeploy_report_free(report);
    return 0;
}
