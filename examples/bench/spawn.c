/*
 * spawn RESULT_FILE COMMAND [ARGS...]
 *
 * Runs COMMAND (stdin/stdout/stderr inherited), waits for it with wait4 and writes one line to
 * RESULT_FILE: wall_ns user_us sys_us maxrss_kib exit_code (128+N when killed by signal N).
 *
 * Why not fork from Python directly: ru_maxrss is a high-water mark that survives exec, and a child
 * forked from the benchmark harness starts with the harness's resident set (~15-30 MiB), which would
 * be reported as the tool's peak RSS.  Forked from this ~1 MiB process, the figure is the tool's own.
 * run.py compiles this with `cc -O2` into <target>/bench/.
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: spawn RESULT_FILE COMMAND [ARGS...]\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("spawn: fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("spawn: wait4");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long wall = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    fprintf(f, "%lld %lld %lld %ld %d\n", wall,
            (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec,
            (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec, ru.ru_maxrss, code);
    return fclose(f) == 0 ? 0 : 2;
}
