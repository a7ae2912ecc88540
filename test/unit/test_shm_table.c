/* Unit tests: the shared-memory session table (open addressing, tombstones, compaction) and
 * the worker<->daemon frame reader. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "xb_ipc.h"
#include "xb_shm_table.h"

static apr_pool_t *pool;
static apr_global_mutex_t *mutex;

static xb_shm_table_t *new_table(unsigned slots)
{
    apr_size_t size = xb_shm_table_size(slots);
    void *base = apr_pcalloc(pool, size);
    return xb_shm_table_create(pool, base, size, slots, mutex);
}

static void make_sid(char sid[XB_SID_HEX_LEN + 1], unsigned n)
{
    snprintf(sid, XB_SID_HEX_LEN + 1, "%032x", n * 2654435761u);
}

static xb_shm_session_t row_for(unsigned n)
{
    xb_shm_session_t row;
    memset(&row, 0, sizeof(row));
    make_sid(row.sid, n);
    row.rid_hi = 1000 + n;
    row.rid_lo = 1000 + n;
    row.requests = 2;
    return row;
}

static void test_insert_lookup_remove(void **state)
{
    xb_shm_table_t *t = new_table(8);
    xb_shm_session_t row = row_for(1), got;
    xb_shm_stats_t st;

    (void)state;
    assert_int_equal(xb_shm_table_insert(t, &row), APR_SUCCESS);
    assert_int_equal(xb_shm_table_insert(t, &row), APR_EEXIST);
    assert_int_equal(xb_shm_table_lookup(t, row.sid, &got), APR_SUCCESS);
    assert_string_equal(got.sid, row.sid);
    assert_int_equal(got.rid_hi, 1001);
    assert_int_equal(xb_shm_table_update_window(t, row.sid, 1005, 1003, 2, 1, 42), APR_SUCCESS);
    xb_shm_table_lookup(t, row.sid, &got);
    assert_int_equal(got.rid_hi, 1005);
    assert_int_equal(got.rid_lo, 1003);
    assert_int_equal(got.held, 1);
    assert_int_equal(xb_shm_table_remove(t, row.sid), APR_SUCCESS);
    assert_int_equal(xb_shm_table_lookup(t, row.sid, &got), APR_NOTFOUND);
    assert_int_equal(xb_shm_table_remove(t, row.sid), APR_NOTFOUND);
    xb_shm_table_stats(t, &st);
    assert_int_equal(st.live, 0);
    assert_int_equal(st.sessions_created, 1);
    assert_int_equal(st.sessions_ended, 1);
}

static void test_full_table(void **state)
{
    xb_shm_table_t *t = new_table(16);
    xb_shm_session_t row;
    unsigned i;

    (void)state;
    for (i = 0; i < 16; i++) {
        row = row_for(i);
        assert_int_equal(xb_shm_table_insert(t, &row), APR_SUCCESS);
    }
    row = row_for(99);
    assert_int_equal(xb_shm_table_insert(t, &row), APR_ENOSPC);
    for (i = 0; i < 16; i++) {
        xb_shm_session_t got;
        row = row_for(i);
        assert_int_equal(xb_shm_table_lookup(t, row.sid, &got), APR_SUCCESS);
    }
}

/* Many inserts and removes leave tombstones; every live row must stay reachable through the
 * compactions, and freed slots must be reusable. */
static void test_churn_keeps_rows_reachable(void **state)
{
    xb_shm_table_t *t = new_table(64);
    unsigned round, i;

    (void)state;
    for (round = 0; round < 200; round++) {
        for (i = 0; i < 40; i++) {
            xb_shm_session_t row = row_for(round * 100 + i);
            assert_int_equal(xb_shm_table_insert(t, &row), APR_SUCCESS);
        }
        for (i = 0; i < 40; i += 2) {
            xb_shm_session_t row = row_for(round * 100 + i);
            assert_int_equal(xb_shm_table_remove(t, row.sid), APR_SUCCESS);
        }
        for (i = 1; i < 40; i += 2) {
            xb_shm_session_t row = row_for(round * 100 + i), got;
            assert_int_equal(xb_shm_table_lookup(t, row.sid, &got), APR_SUCCESS);
            assert_int_equal(got.rid_hi, row.rid_hi);
        }
        for (i = 1; i < 40; i += 2) {
            xb_shm_session_t row = row_for(round * 100 + i);
            assert_int_equal(xb_shm_table_remove(t, row.sid), APR_SUCCESS);
        }
    }
}

static void test_clear_and_attach(void **state)
{
    apr_size_t size = xb_shm_table_size(8);
    void *base = apr_pcalloc(pool, size);
    xb_shm_table_t *t = xb_shm_table_create(pool, base, size, 8, mutex), *t2;
    xb_shm_session_t row = row_for(3), got;
    char junk[64];

    (void)state;
    xb_shm_table_insert(t, &row);
    t2 = xb_shm_table_attach(pool, base, mutex);
    assert_non_null(t2);
    assert_int_equal(xb_shm_table_lookup(t2, row.sid, &got), APR_SUCCESS);
    xb_shm_table_clear(t2);
    assert_int_equal(xb_shm_table_lookup(t, row.sid, &got), APR_NOTFOUND);
    memset(junk, 0x5a, sizeof(junk));
    assert_null(xb_shm_table_attach(pool, junk, mutex));
    assert_int_equal(xb_shm_table_lookup(t, "short", &got), APR_NOTFOUND);
}

/* A BOSH request frame (meta + body) followed by a response frame ("ok", status 200), in one
 * buffer of *total bytes; *len1: where the second frame starts, *len2: its length. */
static char *two_frames(const char *body, apr_size_t body_len, apr_size_t *len1,
                        apr_size_t *len2, apr_size_t *total)
{
    char *f1 = xb_ipc_frame(pool, XB_IPC_BOSH_REQUEST, 7, "meta", 4, body, body_len, len1);
    char *f2 = xb_ipc_frame(pool, XB_IPC_RESPONSE, 200, "ok", 2, NULL, 0, len2);
    char *both = apr_palloc(pool, *len1 + *len2);

    memcpy(both, f1, *len1);
    memcpy(both + *len1, f2, *len2);
    *total = *len1 + *len2;
    return both;
}

static void test_ipc_frames_split_anywhere(void **state)
{
    const char body[] = "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'/>";
    apr_size_t len1, len2, total, cut;
    char *both = two_frames(body, sizeof(body) - 1, &len1, &len2, &total);

    (void)state;
    for (cut = 0; cut <= total; cut++) {
        xb_ipc_reader_t *r = xb_ipc_reader_create(pool, 1024);
        xb_ipc_header_t hdr;
        const char *payload;
        int frames = 0;
        xb_ipc_read_status_t st;

        assert_int_equal(xb_ipc_reader_feed(r, both, cut), APR_SUCCESS);
        while ((st = xb_ipc_reader_next(r, &hdr, &payload)) == XB_IPC_FRAME) {
            frames++;
        }
        assert_int_equal(xb_ipc_reader_feed(r, both + cut, total - cut), APR_SUCCESS);
        while ((st = xb_ipc_reader_next(r, &hdr, &payload)) == XB_IPC_FRAME) {
            frames++;
            if (hdr.type == XB_IPC_RESPONSE) {
                assert_int_equal(hdr.aux, 200);
                assert_memory_equal(payload, "ok", 2);
            }
            else {
                assert_int_equal(hdr.length, 4 + sizeof(body) - 1);
                assert_memory_equal(payload + 4, body, sizeof(body) - 1);
            }
        }
        assert_int_equal(st, XB_IPC_NEED_MORE);
        assert_int_equal(frames, 2);
        xb_ipc_reader_destroy(r);
    }
}

/* The daemon's readers (malloc'd) give their buffer back whenever no partial frame is left:
 * a frame cut anywhere must survive that. */
static void test_ipc_reader_release_keeps_partial_frames(void **state)
{
    const char body[] = "<body rid='2' xmlns='http://jabber.org/protocol/httpbind'/>";
    apr_size_t len1, len2, total, cut;
    char *both = two_frames(body, sizeof(body) - 1, &len1, &len2, &total);

    (void)state;
    for (cut = 0; cut <= total; cut++) {
        xb_ipc_reader_t *r = xb_ipc_reader_new(1024);
        xb_ipc_header_t hdr;
        const char *payload;
        int frames = 0;

        assert_non_null(r);
        xb_ipc_reader_release_idle(r); /* nothing allocated yet */
        assert_int_equal(xb_ipc_reader_feed(r, both, cut), APR_SUCCESS);
        while (xb_ipc_reader_next(r, &hdr, &payload) == XB_IPC_FRAME) {
            frames++;
        }
        xb_ipc_reader_release_idle(r);
        assert_int_equal(xb_ipc_reader_feed(r, both + cut, total - cut), APR_SUCCESS);
        while (xb_ipc_reader_next(r, &hdr, &payload) == XB_IPC_FRAME) {
            frames++;
            if (hdr.type == XB_IPC_RESPONSE) {
                assert_memory_equal(payload, "ok", 2);
            }
            else {
                assert_memory_equal(payload + 4, body, sizeof(body) - 1);
            }
        }
        xb_ipc_reader_release_idle(r);
        assert_int_equal(frames, 2);
        /* Emptied and released: the reader takes the next frame as a new one. */
        assert_int_equal(xb_ipc_reader_feed(r, both + len1, len2), APR_SUCCESS);
        assert_int_equal(xb_ipc_reader_next(r, &hdr, &payload), XB_IPC_FRAME);
        assert_int_equal(hdr.aux, 200);
        xb_ipc_reader_free(r);
    }
}

static void test_ipc_rejects_bad_frames(void **state)
{
    xb_ipc_reader_t *r = xb_ipc_reader_create(pool, 16);
    xb_ipc_header_t hdr, bad;
    const char *payload;
    apr_size_t len;
    char *big = xb_ipc_frame(pool, XB_IPC_RESPONSE, 200, "0123456789abcdefXYZ", 19, NULL, 0,
                             &len);

    (void)state;
    assert_int_equal(xb_ipc_reader_feed(r, big, sizeof(xb_ipc_header_t)), APR_SUCCESS);
    assert_int_equal(xb_ipc_reader_next(r, &hdr, &payload), XB_IPC_BAD);
    r = xb_ipc_reader_create(pool, 16);
    memset(&bad, 0, sizeof(bad));
    bad.magic = 0xdeadbeef;
    xb_ipc_reader_feed(r, (const char *)&bad, sizeof(bad));
    assert_int_equal(xb_ipc_reader_next(r, &hdr, &payload), XB_IPC_BAD);
    r = xb_ipc_reader_create(pool, 16);
    assert_int_equal(xb_ipc_reader_feed(r, big, len), APR_ENOSPC);
}

/* ---- look-ups without the mutex (seqlock) ---- */

typedef struct {
    xb_shm_table_t *t;
    const char *sid;
    volatile int done;
    volatile int stop;
    apr_status_t rv;
} lookup_job_t;

static void *APR_THREAD_FUNC lookup_thread(apr_thread_t *th, void *data)
{
    lookup_job_t *job = data;
    xb_shm_session_t got;

    job->rv = xb_shm_table_lookup(job->t, job->sid, &got);
    job->done = 1;
    (void)th; /* a plain return, as writer_thread (which says why) */
    return NULL;
}

/* A child's look-up must not wait for the mutex: while the daemon (or a status page) holds it,
 * BOSH requests still find their row. With a locking look-up this thread never finishes. */
static void test_lookup_takes_no_lock(void **state)
{
    xb_shm_table_t *t = new_table(8);
    xb_shm_session_t row = row_for(7);
    lookup_job_t job;
    apr_thread_t *th;
    apr_status_t rv;
    int i, done_while_locked;

    (void)state;
    assert_int_equal(xb_shm_table_insert(t, &row), APR_SUCCESS);
    memset(&job, 0, sizeof(job));
    job.t = t;
    job.sid = row.sid;
    assert_int_equal(apr_global_mutex_lock(mutex), APR_SUCCESS);
    assert_int_equal(apr_thread_create(&th, NULL, lookup_thread, &job, pool), APR_SUCCESS);
    for (i = 0; i < 500 && !job.done; i++) {
        apr_sleep(apr_time_from_msec(10));
    }
    done_while_locked = job.done;
    apr_global_mutex_unlock(mutex);
    assert_true(done_while_locked);
    apr_thread_join(&rv, th);
    assert_int_equal(job.rv, APR_SUCCESS);
}

static void *APR_THREAD_FUNC writer_thread(apr_thread_t *th, void *data)
{
    lookup_job_t *job = data;
    uint64_t k;
    unsigned n = 100;

    for (k = 1; !job->stop && k < 400000; k++) {
        xb_shm_table_update_window(job->t, job->sid, k, k, (uint32_t)k, (uint32_t)k,
                                   (apr_time_t)k);
        if (k % 64 == 0) {
            /* Churn on other rows: tombstones, then compactions that move every row. */
            xb_shm_session_t other = row_for(n++);
            xb_shm_table_insert(job->t, &other);
            xb_shm_table_remove(job->t, other.sid);
        }
    }
    job->done = 1;
    /* A plain return, not apr_thread_exit: pthread_exit leaves the loop's dead locals
     * poisoned on this stack, and ASan's own thread teardown then trips over them. */
    (void)th;
    return NULL;
}

/* While the daemon rewrites a row and moves rows, a reader sees every copy whole: all fields
 * from the same update, never a torn mix, and the row always found. */
static void test_lookup_sees_whole_rows(void **state)
{
    xb_shm_table_t *t = new_table(16);
    xb_shm_session_t row = row_for(3), got;
    lookup_job_t job;
    apr_thread_t *th;
    apr_status_t rv;
    unsigned reads = 0;

    (void)state;
    assert_int_equal(xb_shm_table_insert(t, &row), APR_SUCCESS);
    memset(&job, 0, sizeof(job));
    job.t = t;
    job.sid = row.sid;
    assert_int_equal(apr_thread_create(&th, NULL, writer_thread, &job, pool), APR_SUCCESS);
    while (!job.done && reads < 2000000) {
        assert_int_equal(xb_shm_table_lookup(t, row.sid, &got), APR_SUCCESS);
        assert_string_equal(got.sid, row.sid);
        if (got.rid_hi != 1003) { /* 1003: before the first update */
            assert_true(got.rid_lo == got.rid_hi && got.requests == (uint32_t)got.rid_hi
                        && got.held == (uint32_t)got.rid_hi
                        && got.last_activity == (apr_time_t)got.rid_hi);
        }
        reads++;
    }
    job.stop = 1;
    apr_thread_join(&rv, th);
    assert_true(reads > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_lookup_remove),
        cmocka_unit_test(test_full_table),
        cmocka_unit_test(test_churn_keeps_rows_reachable),
        cmocka_unit_test(test_clear_and_attach),
        cmocka_unit_test(test_ipc_frames_split_anywhere),
        cmocka_unit_test(test_ipc_reader_release_keeps_partial_frames),
        cmocka_unit_test(test_ipc_rejects_bad_frames),
        cmocka_unit_test(test_lookup_takes_no_lock),
        cmocka_unit_test(test_lookup_sees_whole_rows),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    apr_global_mutex_create(&mutex, NULL, APR_LOCK_DEFAULT, pool);
    rc = cmocka_run_group_tests_name("shm_table_and_ipc", tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}
