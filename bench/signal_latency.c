/* Wake latency of oban_await_signal: one process, two connections, one clock.
 *
 * For each round trip: connection A calls oban_await_signal(job, NULL, '10 s') asynchronously, inside
 * a transaction block (so its result is sent when the call returns, not after A's own commit);
 * once A's backend is asleep (pg_stat_activity.wait_event_type = 'Extension', seen from B), B runs
 * BEGIN; SELECT oban_signal(job, ...); and then sends COMMIT. Both results are awaited together and
 * stamped with CLOCK_MONOTONIC as they arrive:
 *   commit->return  A's result arrived minus B's COMMIT result arrived: the wake latency as a client
 *                   sees it (both results leave the server after the commit; can be < 0);
 *   sent->return    A's result arrived minus the moment COMMIT was sent: an upper bound that also
 *                   counts the commit itself (its WAL flush under synchronous_commit = on).
 * Prints p50, p90, p99 and max of both, in microseconds. Usage: signal_latency ROUNDS (libpq env). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static PGresult *exec_ok(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
        exit(1);
    }
    return r;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *name, double *v, int n) {
    qsort(v, n, sizeof(double), cmp);
    printf("%-15s p50 %8.1f us  p90 %8.1f us  p99 %8.1f us  max %8.1f us  (n=%d)\n", name, v[n / 2],
           v[(int)(n * 0.9)], v[(int)(n * 0.99)], v[n - 1], n);
}

/* Reads whatever is available on c; returns 1 once its query has finished (results drained). */
static int finished(PGconn *c, const char *what) {
    if (!PQconsumeInput(c)) {
        fprintf(stderr, "%s: %s", what, PQerrorMessage(c));
        exit(1);
    }
    if (PQisBusy(c)) return 0;
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) == PGRES_FATAL_ERROR) {
            fprintf(stderr, "%s: %s", what, PQresultErrorMessage(r));
            exit(1);
        }
        if (PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(what, "await") == 0 &&
            strcmp(PQgetvalue(r, 0, 0), "received") != 0) {
            fprintf(stderr, "await returned %s\n", PQgetvalue(r, 0, 0));
            exit(1);
        }
        PQclear(r);
    }
    return 1;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 1000;
    PGconn *a = PQconnectdb(""), *b = PQconnectdb("");
    if (PQstatus(a) != CONNECTION_OK || PQstatus(b) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s%s", PQerrorMessage(a), PQerrorMessage(b));
        return 1;
    }
    char sql[256];
    PGresult *r = exec_ok(a, "SELECT pg_backend_pid()");
    int pid_a = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    double *lat = calloc(rounds, sizeof(double)), *upper = calloc(rounds, sizeof(double));
    for (int i = 0; i < rounds; i++) {
        r = exec_ok(b, "INSERT INTO oban_jobs (worker, queue, state, attempt, attempted_at) "
                       "VALUES ('Latency', 'latency', 'executing', 1, now()) RETURNING id");
        long job = atol(PQgetvalue(r, 0, 0));
        PQclear(r);
        PQclear(exec_ok(a, "BEGIN"));
        snprintf(sql, sizeof sql, "SELECT status FROM oban_await_signal(%ld, NULL, '10 s')", job);
        if (!PQsendQuery(a, sql)) return 1;
        snprintf(sql, sizeof sql,
                 "SELECT 1 FROM pg_stat_activity WHERE pid = %d AND wait_event_type = 'Extension'", pid_a);
        for (;;) { /* until A sleeps on its condition variable (or polls) */
            r = exec_ok(b, sql);
            int asleep = PQntuples(r) == 1;
            PQclear(r);
            if (asleep) break;
        }
        PQclear(exec_ok(b, "BEGIN"));
        snprintf(sql, sizeof sql, "SELECT oban_signal(%ld::bigint, '{\"go\": true}')", job);
        PQclear(exec_ok(b, sql));
        double sent = now_us(), committed = 0, returned = 0;
        if (!PQsendQuery(b, "COMMIT")) return 1;
        while (committed == 0 || returned == 0) {
            fd_set fds;
            FD_ZERO(&fds);
            if (committed == 0) FD_SET(PQsocket(b), &fds);
            if (returned == 0) FD_SET(PQsocket(a), &fds);
            int maxfd = PQsocket(a) > PQsocket(b) ? PQsocket(a) : PQsocket(b);
            if (select(maxfd + 1, &fds, NULL, NULL, NULL) < 0) return 1;
            if (committed == 0 && FD_ISSET(PQsocket(b), &fds) && finished(b, "commit")) committed = now_us();
            if (returned == 0 && FD_ISSET(PQsocket(a), &fds) && finished(a, "await")) returned = now_us();
        }
        PQclear(exec_ok(a, "COMMIT"));
        lat[i] = returned - committed;
        upper[i] = returned - sent;
        snprintf(sql, sizeof sql, "DELETE FROM oban_jobs WHERE id = %ld", job);
        PQclear(exec_ok(b, sql));
    }
    report("commit->return", lat, rounds);
    report("sent->return", upper, rounds);
    PQfinish(a);
    PQfinish(b);
    return 0;
}
