/* Unit tests for the BOSH session state machine (src/xb_bosh_session.c).
 *
 * The io callbacks record into arrays; the tests drive the session with hand-built request
 * bodies (no parser) and a fake clock, and assert on what was answered, sent, restarted and
 * closed. Every test also checks that no request id is ever answered twice.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include <ctype.h>

#include "xb_bosh_key.h"
#include "xb_bosh_session.h"
#include "xb_log.h"

#define RID0 UINT64_C(1000)
#define T0 apr_time_from_sec(1700000000)
#define SEC(n) apr_time_from_sec(n)
#define MAX_REQ_IDS (1u << 16)

typedef struct answer {
    xb_request_id_t req;
    int status;
    char *body; /* NUL-terminated copy */
    apr_size_t len;
} answer_t;

typedef struct recorder {
    answer_t *answers;
    size_t n_answers, cap_answers;
    char **sent;
    unsigned *sent_stream; /* which stream each went to */
    size_t n_sent, cap_sent;
    unsigned restarts;
    unsigned closes;
    size_t sent_at_close; /* n_sent when close_stream came (bounces go before it) */
    unsigned notes[8]; /* by xb_bosh_note_t */
    unsigned stream_restarts[8], stream_closes[8];
    unsigned opened[8];          /* open_stream calls per index */
    xb_bosh_condition_t refuse;  /* what open_stream answers */
    unsigned char answered[MAX_REQ_IDS]; /* never respond twice to one request id */
} recorder_t;

typedef struct fixture {
    apr_pool_t *pool;
    recorder_t rec;
    xb_bosh_session_limits_t limits;
    xb_bosh_io_t io;
    xb_bosh_session_t *s;
    xb_request_id_t next_req;
} fixture_t;

/* ------------------------------------------------------------------------------------------ */
/* Recording callbacks */

static char *copy_bytes(const char *data, apr_size_t len)
{
    char *c = malloc(len + 1);

    assert_non_null(c);
    if (len) {
        memcpy(c, data, len);
    }
    c[len] = '\0';
    return c;
}

static void rec_respond(void *baton, xb_request_id_t req, int status, const char *body,
                        apr_size_t len)
{
    recorder_t *r = baton;
    answer_t *a;

    assert_true(req != 0);
    assert_true(req < MAX_REQ_IDS);
    if (r->answered[req]) {
        fail_msg("request %lu answered twice", (unsigned long)req);
    }
    r->answered[req] = 1;
    if (r->n_answers == r->cap_answers) {
        r->cap_answers = r->cap_answers ? 2 * r->cap_answers : 16;
        r->answers = realloc(r->answers, r->cap_answers * sizeof(*r->answers));
        assert_non_null(r->answers);
    }
    a = &r->answers[r->n_answers++];
    a->req = req;
    a->status = status;
    a->body = copy_bytes(body, len);
    a->len = len;
}

static void rec_send(void *baton, unsigned stream, const char *data, apr_size_t len)
{
    recorder_t *r = baton;

    if (r->n_sent == r->cap_sent) {
        r->cap_sent = r->cap_sent ? 2 * r->cap_sent : 16;
        r->sent = realloc(r->sent, r->cap_sent * sizeof(*r->sent));
        r->sent_stream = realloc(r->sent_stream, r->cap_sent * sizeof(*r->sent_stream));
        assert_non_null(r->sent);
        assert_non_null(r->sent_stream);
    }
    r->sent_stream[r->n_sent] = stream;
    r->sent[r->n_sent++] = copy_bytes(data, len);
}

static void rec_restart(void *baton, unsigned stream)
{
    assert_true(stream < 8);
    ((recorder_t *)baton)->restarts++;
    ((recorder_t *)baton)->stream_restarts[stream]++;
}

static xb_bosh_condition_t rec_open(void *baton, unsigned stream, const char *to,
                                    const char *xml_lang)
{
    recorder_t *r = baton;

    (void)xml_lang;
    assert_true(stream > 0 && stream < 8);
    assert_non_null(to);
    r->opened[stream]++;
    return r->refuse;
}

static void rec_close(void *baton, unsigned stream)
{
    assert_true(stream < 8);
    ((recorder_t *)baton)->stream_closes[stream]++;
    ((recorder_t *)baton)->closes++;
    ((recorder_t *)baton)->sent_at_close = ((recorder_t *)baton)->n_sent;
}

static void rec_note(void *baton, xb_bosh_note_t what)
{
    assert_true((unsigned)what < 8);
    ((recorder_t *)baton)->notes[what]++;
}

/* Forgets what was recorded (not which ids were answered). */
static void rec_clear(recorder_t *r)
{
    size_t i;

    for (i = 0; i < r->n_answers; i++) {
        free(r->answers[i].body);
    }
    for (i = 0; i < r->n_sent; i++) {
        free(r->sent[i]);
    }
    r->n_answers = 0;
    r->n_sent = 0;
}

static void rec_free(recorder_t *r)
{
    rec_clear(r);
    free(r->answers);
    free(r->sent);
    free(r->sent_stream);
}

/* ------------------------------------------------------------------------------------------ */
/* Log: silent unless XB_TEST_LOG is set, but every message is formatted. */

static void log_print(void *baton, const char *file, int line, int level, const char *msg)
{
    (void)baton;
    if (getenv("XB_TEST_LOG")) {
        fprintf(stderr, "[%d] %s:%d %s\n", level, file, line, msg);
    }
}

static int log_is_level(void *baton, int level)
{
    (void)baton;
    (void)level;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Fixture and helpers */

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(apr_pool_create(&f->pool, NULL), APR_SUCCESS);
    f->limits.max_wait = 60;
    f->limits.max_hold = 1;
    f->limits.inactivity = 60;
    f->limits.polling = 2;
    f->limits.response_cache = 5;
    f->limits.max_queued_bytes = 1024 * 1024;
    f->io.respond = rec_respond;
    f->io.send_to_server = rec_send;
    f->io.restart_stream = rec_restart;
    f->io.close_stream = rec_close;
    f->io.note = rec_note;
    f->io.open_stream = rec_open;
    f->limits.max_replays = 10;
    f->limits.max_pause = 120;
    f->next_req = 1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    apr_pool_destroy(f->pool);
    rec_free(&f->rec);
    free(f);
    return 0;
}

static xb_bosh_body_t make_body(uint64_t rid, const char *payload)
{
    xb_bosh_body_t b;

    memset(&b, 0, sizeof(b));
    b.has_rid = 1;
    b.rid = rid;
    b.sid = "sid-1";
    b.payload = payload ? payload : "";
    b.payload_len = payload ? strlen(payload) : 0;
    b.child_count = payload && *payload ? 1 : 0;
    return b;
}

static xb_bosh_body_t creation_body(void)
{
    xb_bosh_body_t b = make_body(RID0, NULL);

    b.sid = NULL;
    b.to = "example.com";
    b.xml_lang = "en";
    b.ver = "1.11";
    b.has_wait = 1;
    b.wait = 30;
    b.has_hold = 1;
    b.hold = 1;
    return b;
}

static void create_with(fixture_t *f, const xb_bosh_body_t *creation, apr_time_t now)
{
    f->s = xb_bosh_session_create(f->pool, "sid-1", creation, f->next_req++, &f->limits, &f->io,
                                  &f->rec, now);
    assert_non_null(f->s);
}

static void create(fixture_t *f)
{
    xb_bosh_body_t c = creation_body();

    create_with(f, &c, T0);
}

/* A created session whose creation request was answered with the features. */
static void create_started(fixture_t *f)
{
    create(f);
    xb_bosh_session_server_data(f->s, "<stream:features/>", 18, T0);
    assert_int_equal(f->rec.n_answers, 1);
    assert_int_equal(xb_bosh_session_held_count(f->s), 0);
    rec_clear(&f->rec);
}

static xb_request_id_t send_body(fixture_t *f, const xb_bosh_body_t *b, apr_time_t now)
{
    xb_request_id_t req = f->next_req++;

    xb_bosh_session_request(f->s, req, b, now);
    return req;
}

static xb_request_id_t send_req(fixture_t *f, uint64_t rid, const char *payload, apr_time_t now)
{
    xb_bosh_body_t b = make_body(rid, payload);

    return send_body(f, &b, now);
}

static void server(fixture_t *f, const char *data, apr_time_t now)
{
    xb_bosh_session_server_data(f->s, data, strlen(data), now);
}

static const answer_t *answer_for(const fixture_t *f, xb_request_id_t req)
{
    size_t i;

    for (i = 0; i < f->rec.n_answers; i++) {
        if (f->rec.answers[i].req == req) {
            return &f->rec.answers[i];
        }
    }
    return NULL;
}

/* A body with no children, no text: <body .../> */
static int is_empty_body(const answer_t *a)
{
    return a->len > 2 && strchr(a->body + 1, '<') == NULL
           && strcmp(a->body + a->len - 2, "/>") == 0;
}

static int is_plain(const answer_t *a)
{
    return a->status == 200 && strstr(a->body, "type=") == NULL
           && strstr(a->body, "sid=") == NULL;
}

#define assert_contains(hay, needle) assert_non_null(strstr((hay), (needle)))
#define assert_not_contains(hay, needle) assert_null(strstr((hay), (needle)))

/* ------------------------------------------------------------------------------------------ */
/* Creation */

static void test_creation_held_until_features(void **state)
{
    fixture_t *f = *state;
    const answer_t *a;

    create(f);
    assert_int_equal(f->rec.n_answers, 0);
    assert_int_equal(f->rec.n_sent, 0);
    assert_int_equal(xb_bosh_session_held_count(f->s), 1);
    assert_true(xb_bosh_session_has_ver(f->s));
    assert_true(xb_bosh_session_next_deadline(f->s) == T0 + SEC(30));

    server(f, "<stream:features><mechanisms/></stream:features>", T0 + SEC(1));
    assert_int_equal(f->rec.n_answers, 1);
    a = answer_for(f, 1);
    assert_non_null(a);
    assert_int_equal(a->status, 200);
    assert_contains(a->body, "sid='sid-1'");
    assert_contains(a->body, "wait='30'");
    assert_contains(a->body, "requests='2'");
    assert_contains(a->body, "hold='1'");
    assert_contains(a->body, "inactivity='60'");
    assert_contains(a->body, "polling='2'");
    assert_contains(a->body, "ver='1.11'");
    assert_contains(a->body, "from='example.com'");
    assert_contains(a->body, "xmpp:restartlogic='true'");
    assert_contains(a->body, "><stream:features><mechanisms/></stream:features></body>");
    assert_int_equal(xb_bosh_session_held_count(f->s), 0);
    assert_false(xb_bosh_session_is_finished(f->s));
}

static void test_creation_payload_forwarded(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body();

    c.payload = "<presence/>";
    c.payload_len = 11;
    create_with(f, &c, T0);
    assert_int_equal(f->rec.n_sent, 1);
    assert_string_equal(f->rec.sent[0], "<presence/>");
}

static void test_creation_empty_at_wait(void **state)
{
    fixture_t *f = *state;
    const answer_t *a;
    xb_request_id_t r;

    create(f);
    xb_bosh_session_tick(f->s, T0 + SEC(29));
    assert_int_equal(f->rec.n_answers, 0);
    xb_bosh_session_tick(f->s, T0 + SEC(30));
    assert_int_equal(f->rec.n_answers, 1);
    a = answer_for(f, 1);
    assert_contains(a->body, "sid='sid-1'");
    assert_contains(a->body, "requests='2'");
    assert_true(is_empty_body(a));
    assert_int_equal(xb_bosh_session_held_count(f->s), 0);

    /* The features arrive later: queued, then given to the next request without the creation
     * attributes. */
    server(f, "<stream:features/>", T0 + SEC(31));
    assert_int_equal(f->rec.n_answers, 1);
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(32));
    a = answer_for(f, r);
    assert_non_null(a);
    assert_true(is_plain(a));
    assert_contains(a->body, "<stream:features/></body>");
}

/* Creates a throwaway session from `c`, lets its wait run out, returns its creation answer. */
static char *creation_answer(fixture_t *f, const xb_bosh_body_t *c, int *status)
{
    char *out;

    create_with(f, c, T0);
    xb_bosh_session_tick(f->s, T0 + SEC(3600));
    assert_int_equal(f->rec.n_answers, 1);
    out = strdup(f->rec.answers[0].body);
    *status = f->rec.answers[0].status;
    rec_clear(&f->rec);
    return out;
}

static void test_negotiated_limits(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c;
    char *body;
    int status;

    /* wait and hold above the caps */
    c = creation_body();
    c.wait = 300;
    c.hold = 5;
    body = creation_answer(f, &c, &status);
    assert_contains(body, "wait='60'");
    assert_contains(body, "hold='1'");
    assert_contains(body, "requests='2'");
    free(body);

    /* neither wait nor hold sent */
    c = creation_body();
    c.has_wait = 0;
    c.has_hold = 0;
    body = creation_answer(f, &c, &status);
    assert_contains(body, "wait='60'");
    assert_contains(body, "hold='1'");
    free(body);

    /* below the caps: taken as asked */
    f->limits.max_hold = 4;
    c = creation_body();
    c.wait = 10;
    c.hold = 2;
    body = creation_answer(f, &c, &status);
    assert_contains(body, "wait='10'");
    assert_contains(body, "hold='2'");
    assert_contains(body, "requests='3'");
    free(body);

    /* ver compared as major.minor integers */
    c = creation_body();
    c.ver = "1.9";
    body = creation_answer(f, &c, &status);
    assert_contains(body, "ver='1.9'");
    free(body);
    c.ver = "1.6";
    body = creation_answer(f, &c, &status);
    assert_contains(body, "ver='1.6'");
    free(body);
    c.ver = "1.12";
    body = creation_answer(f, &c, &status);
    assert_contains(body, "ver='1.11'");
    free(body);
    c.ver = "2.0";
    body = creation_answer(f, &c, &status);
    assert_contains(body, "ver='1.11'");
    free(body);
}

static void test_polling_session(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body();
    const answer_t *a;
    xb_request_id_t r;

    c.hold = 0;
    create_with(f, &c, T0);
    /* The creation request still waits for the features. */
    assert_int_equal(f->rec.n_answers, 0);
    server(f, "<stream:features/>", T0);
    a = answer_for(f, 1);
    assert_contains(a->body, "hold='0'");
    assert_contains(a->body, "requests='1'");

    /* Every later request is answered at once. */
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(2));
    a = answer_for(f, r);
    assert_non_null(a);
    assert_true(is_empty_body(a));
    assert_int_equal(xb_bosh_session_held_count(f->s), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Holding and answering */

static void test_hold1_new_request_answers_older(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, r2;
    const answer_t *a;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    assert_int_equal(f->rec.n_answers, 0);
    assert_int_equal(xb_bosh_session_held_count(f->s), 1);

    r2 = send_req(f, RID0 + 2, "<message to='a@b'/>", T0 + SEC(2));
    assert_int_equal(f->rec.n_sent, 1);
    assert_string_equal(f->rec.sent[0], "<message to='a@b'/>");
    assert_int_equal(f->rec.n_answers, 1);
    a = answer_for(f, r1);
    assert_non_null(a);
    assert_true(is_plain(a));
    assert_true(is_empty_body(a));
    assert_null(answer_for(f, r2));
    assert_int_equal(xb_bosh_session_held_count(f->s), 1);

    server(f, "<message from='a@b'/>", T0 + SEC(3));
    a = answer_for(f, r2);
    assert_non_null(a);
    assert_contains(a->body, "><message from='a@b'/></body>");
}

static void test_data_while_held(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;
    const answer_t *a;

    create_started(f);
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    server(f, "<iq type='result' id='1'/>", T0 + SEC(2));
    a = answer_for(f, r);
    assert_non_null(a);
    assert_int_equal(a->status, 200);
    assert_contains(a->body, "><iq type='result' id='1'/></body>");
    assert_int_equal(xb_bosh_session_held_count(f->s), 0);
}

static void test_data_queued_until_next_request(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;
    const answer_t *a;

    create_started(f);
    server(f, "<message id='1'/>", T0 + SEC(1));
    server(f, "<message id='2'/>", T0 + SEC(1));
    assert_int_equal(f->rec.n_answers, 0);

    r = send_req(f, RID0 + 1, "<presence/>", T0 + SEC(2));
    assert_int_equal(f->rec.n_sent, 1);
    a = answer_for(f, r);
    assert_non_null(a);
    assert_contains(a->body, "><message id='1'/><message id='2'/></body>");
    assert_int_equal(xb_bosh_session_held_count(f->s), 0);
}

static void test_wait_expiry(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;

    create_started(f);
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(10));
    assert_true(xb_bosh_session_next_deadline(f->s) == T0 + SEC(40));
    xb_bosh_session_tick(f->s, T0 + SEC(39));
    assert_int_equal(f->rec.n_answers, 0);
    xb_bosh_session_tick(f->s, T0 + SEC(40));
    assert_non_null(answer_for(f, r));
    assert_true(is_empty_body(answer_for(f, r)));
    /* Nothing held now: the next deadline is inactivity. */
    assert_true(xb_bosh_session_next_deadline(f->s) == T0 + SEC(100));
}

static void test_hold2_data_answers_oldest(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body();
    xb_request_id_t r1, r2, r3;

    f->limits.max_hold = 2;
    c.hold = 2;
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    rec_clear(&f->rec);

    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    r2 = send_req(f, RID0 + 2, NULL, T0 + SEC(2));
    assert_int_equal(xb_bosh_session_held_count(f->s), 2);
    assert_int_equal(f->rec.n_answers, 0);

    server(f, "<message/>", T0 + SEC(3));
    assert_int_equal(f->rec.n_answers, 1);
    assert_contains(answer_for(f, r1)->body, "<message/>");
    assert_int_equal(xb_bosh_session_held_count(f->s), 1);

    /* A third request brings the held count back to 2, still within hold: nothing answered. */
    r3 = send_req(f, RID0 + 3, NULL, T0 + SEC(4));
    assert_int_equal(xb_bosh_session_held_count(f->s), 2);
    assert_null(answer_for(f, r2));
    assert_null(answer_for(f, r3));
}

/* ------------------------------------------------------------------------------------------ */
/* RID order and window */

static void test_out_of_order_processed_in_rid_order(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, r2;

    create_started(f);
    r2 = send_req(f, RID0 + 2, "<b/>", T0 + SEC(1));
    assert_int_equal(f->rec.n_sent, 0);
    assert_int_equal(f->rec.n_answers, 0);
    assert_int_equal(xb_bosh_session_held_count(f->s), 0);

    r1 = send_req(f, RID0 + 1, "<a/>", T0 + SEC(2));
    assert_int_equal(f->rec.n_sent, 2);
    assert_string_equal(f->rec.sent[0], "<a/>");
    assert_string_equal(f->rec.sent[1], "<b/>");
    /* REFERENCES point 6: rid+1 is answered at once because rid+2 is already there. */
    assert_int_equal(f->rec.n_answers, 1);
    assert_true(is_empty_body(answer_for(f, r1)));
    assert_int_equal(xb_bosh_session_held_count(f->s), 1);

    server(f, "<message/>", T0 + SEC(3));
    assert_contains(answer_for(f, r2)->body, "<message/>");
}

/* An early request whose wait runs out is closed unanswered (any answer would let the client
 * move past it); the client's re-send takes its slot once the gap fills. */
static void test_early_request_wait_is_abandoned(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r2, r1, r2b;
    const answer_t *a;

    create_started(f);
    r2 = send_req(f, RID0 + 2, "<b/>", T0 + SEC(1));
    assert_true(xb_bosh_session_next_deadline(f->s) == T0 + SEC(31));
    xb_bosh_session_tick(f->s, T0 + SEC(31));
    a = answer_for(f, r2);
    assert_non_null(a);
    assert_int_equal(a->status, XB_BOSH_ABANDON);
    assert_int_equal(a->len, 0);

    /* The gap fills: rid+2's kept body is processed too, its slot waits for the re-send. */
    r1 = send_req(f, RID0 + 1, "<a/>", T0 + SEC(32));
    assert_int_equal(f->rec.n_sent, 2);
    assert_true(is_empty_body(answer_for(f, r1)));
    r2b = send_req(f, RID0 + 2, "<b/>", T0 + SEC(33));
    assert_int_equal(f->rec.n_sent, 2);
    server(f, "<message/>", T0 + SEC(34));
    assert_contains(answer_for(f, r2b)->body, "<message/>");
}

static void test_early_request_sent_twice(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r2, r2b, r1;

    create_started(f);
    r2 = send_req(f, RID0 + 2, "<b/>", T0 + SEC(1));
    r2b = send_req(f, RID0 + 2, "<b/>", T0 + SEC(2));
    assert_contains(answer_for(f, r2)->body, "type='error'");
    assert_null(answer_for(f, r2b));
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(3));
    assert_int_equal(f->rec.n_sent, 1); /* <b/> once */
    assert_true(is_empty_body(answer_for(f, r1)));
    server(f, "<message/>", T0 + SEC(4));
    assert_contains(answer_for(f, r2b)->body, "<message/>");
}

static void test_out_of_window_item_not_found(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, r4;
    const answer_t *a;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    r4 = send_req(f, RID0 + 4, "<x/>", T0 + SEC(2)); /* requests = 2: window ends at +3 */
    assert_int_equal(f->rec.n_sent, 0);
    assert_int_equal(f->rec.n_answers, 2);
    /* The held one first (RID order), told another request ended the session (§17.2); then
     * the culprit. */
    assert_int_equal(f->rec.answers[0].req, r1);
    assert_contains(f->rec.answers[0].body, "condition='other-request'");
    a = &f->rec.answers[1];
    assert_int_equal(a->req, r4);
    assert_int_equal(a->status, 200);
    assert_contains(a->body, "type='terminate'");
    assert_contains(a->body, "condition='item-not-found'");
    assert_int_equal(f->rec.closes, 1);
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_false(xb_bosh_session_wants_server_data(f->s));
    assert_true(xb_bosh_session_next_deadline(f->s) == 0);
}

static void test_replay_cached_identical(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, r1b, c2;
    const answer_t *a, *b;
    xb_bosh_body_t c = creation_body();

    create(f);
    server(f, "<stream:features/>", T0);
    r1 = send_req(f, RID0 + 1, "<iq/>", T0 + SEC(1));
    server(f, "<iq type='result'/>", T0 + SEC(2));
    r1b = send_req(f, RID0 + 1, "<iq/>", T0 + SEC(3));
    assert_int_equal(f->rec.n_sent, 1); /* the replayed request is not forwarded again */
    a = answer_for(f, r1);
    b = answer_for(f, r1b);
    assert_non_null(b);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->body, b->body, a->len);

    /* The creation answer, creation attributes and all, replays the same way. */
    c.sid = "sid-1";
    c2 = send_body(f, &c, T0 + SEC(4));
    assert_string_equal(answer_for(f, c2)->body, answer_for(f, 1)->body);
    assert_false(xb_bosh_session_is_finished(f->s));
}

static void test_replay_below_cache_item_not_found(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;
    uint64_t hi, lo, rid;
    unsigned requests;

    create_started(f);
    for (rid = RID0 + 1; rid <= RID0 + 10; rid++) {
        send_req(f, rid, NULL, T0 + SEC(1));
        server(f, "<m/>", T0 + SEC(1));
    }
    xb_bosh_session_window(f->s, &hi, &lo, &requests);
    assert_true(hi == RID0 + 10);
    assert_true(lo == RID0 + 6); /* response_cache = 5 */
    assert_int_equal(requests, 2);

    r = send_req(f, RID0 + 6, NULL, T0 + SEC(2)); /* still cached */
    assert_contains(answer_for(f, r)->body, "<m/>");
    assert_false(xb_bosh_session_is_finished(f->s));

    r = send_req(f, RID0 + 5, NULL, T0 + SEC(2)); /* evicted */
    assert_contains(answer_for(f, r)->body, "condition='item-not-found'");
    assert_int_equal(f->rec.closes, 1);
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_resend_of_held_rid(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, r1b;
    const answer_t *a;

    create_started(f);
    r1 = send_req(f, RID0 + 1, "<a/>", T0 + SEC(1));
    r1b = send_req(f, RID0 + 1, "<a/>", T0 + SEC(40));
    assert_int_equal(f->rec.n_sent, 1);
    a = answer_for(f, r1);
    assert_non_null(a);
    assert_int_equal(a->status, 200);
    assert_contains(a->body, "type='error'");
    assert_not_contains(a->body, "terminate");
    assert_null(answer_for(f, r1b));
    assert_int_equal(xb_bosh_session_held_count(f->s), 1);
    /* The re-send's own wait counts from its arrival. */
    assert_true(xb_bosh_session_next_deadline(f->s) == T0 + SEC(70));

    server(f, "<message/>", T0 + SEC(41));
    assert_contains(answer_for(f, r1b)->body, "<message/>");
    assert_false(xb_bosh_session_is_finished(f->s));
}

/* Strophe may run a window ahead of a request it is re-sending: the undelivered answer must
 * outlive the ordinary cache (5 here) until the re-send comes. */
static void test_undelivered_answer_outlives_cache(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, r1b;
    uint64_t hi, lo, rid;
    unsigned requests;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    xb_bosh_session_request_gone(f->s, r1, T0 + SEC(1));
    server(f, "<message id='for-the-resend'/>", T0 + SEC(2));
    assert_int_equal(f->rec.n_answers, 0);
    for (rid = RID0 + 2; rid < RID0 + 12; rid++) {
        send_req(f, rid, "<presence/>", T0 + SEC(3));   /* answered at once (hold 1) */
    }
    xb_bosh_session_window(f->s, &hi, &lo, &requests);
    assert_true(lo <= RID0 + 1);        /* the shared table lets the re-send through */
    r1b = send_req(f, RID0 + 1, NULL, T0 + SEC(4));
    assert_contains(answer_for(f, r1b)->body, "<message id='for-the-resend'/>");
}

static void test_resend_after_request_gone(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, r1b, r2, r2b;

    create_started(f);
    /* The answer falls due while the request is gone: it is cached, the re-send replays it. */
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    xb_bosh_session_request_gone(f->s, r1, T0 + SEC(2));
    server(f, "<message id='lost'/>", T0 + SEC(3));
    assert_int_equal(f->rec.n_answers, 0);
    r1b = send_req(f, RID0 + 1, NULL, T0 + SEC(4));
    assert_contains(answer_for(f, r1b)->body, "<message id='lost'/>");

    /* The re-send comes before any data: it takes the held slot. */
    r2 = send_req(f, RID0 + 2, NULL, T0 + SEC(5));
    xb_bosh_session_request_gone(f->s, r2, T0 + SEC(6));
    assert_int_equal(xb_bosh_session_held_count(f->s), 1);
    r2b = send_req(f, RID0 + 2, NULL, T0 + SEC(7));
    assert_null(answer_for(f, r2));
    assert_null(answer_for(f, r2b));
    server(f, "<message id='2'/>", T0 + SEC(8));
    assert_null(answer_for(f, r2));
    assert_contains(answer_for(f, r2b)->body, "<message id='2'/>");
}

static void test_release(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    xb_bosh_session_release(f->s, r1, T0 + SEC(2));
    assert_true(is_empty_body(answer_for(f, r1)));
    assert_int_equal(xb_bosh_session_held_count(f->s), 0);
    /* Released and answered: a later gone/release for it is ignored. */
    xb_bosh_session_request_gone(f->s, r1, T0 + SEC(3));
    xb_bosh_session_release(f->s, r1, T0 + SEC(3));
    assert_int_equal(f->rec.n_answers, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Restart and terminate */

static void test_restart(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t b;
    xb_request_id_t r;

    create_started(f);
    b = make_body(RID0 + 1, "<ignored/>");
    b.restart = 1;
    b.to = "example.com";
    r = send_body(f, &b, T0 + SEC(1));
    assert_int_equal(f->rec.restarts, 1);
    assert_int_equal(f->rec.n_sent, 0);
    assert_int_equal(xb_bosh_session_held_count(f->s), 1);
    server(f, "<stream:features><bind/></stream:features>", T0 + SEC(2));
    assert_contains(answer_for(f, r)->body, "<stream:features><bind/></stream:features>");
}

static void test_client_terminate(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t b;
    xb_request_id_t r1, r2;
    const answer_t *a;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    b = make_body(RID0 + 2, "<presence type='unavailable'/>");
    b.type = "terminate";
    r2 = send_body(f, &b, T0 + SEC(2));
    assert_int_equal(f->rec.n_sent, 1);
    assert_string_equal(f->rec.sent[0], "<presence type='unavailable'/>");
    assert_int_equal(f->rec.n_answers, 2);
    /* §13: the oldest held request gets type='terminate' too. */
    assert_int_equal(f->rec.answers[0].req, r1);
    assert_true(is_empty_body(&f->rec.answers[0]));
    assert_contains(f->rec.answers[0].body, "type='terminate'");
    assert_not_contains(f->rec.answers[0].body, "condition=");
    a = &f->rec.answers[1];
    assert_int_equal(a->req, r2);
    assert_int_equal(a->status, 200);
    assert_contains(a->body, "type='terminate'");
    assert_not_contains(a->body, "condition=");
    assert_int_equal(f->rec.closes, 1);
    assert_true(xb_bosh_session_is_finished(f->s));
}

/* ------------------------------------------------------------------------------------------ */
/* Inactivity and server close */

static void test_inactivity(void **state)
{
    fixture_t *f = *state;

    create(f);
    server(f, "<stream:features/>", T0 + SEC(1));
    assert_true(xb_bosh_session_next_deadline(f->s) == T0 + SEC(61));
    xb_bosh_session_tick(f->s, T0 + SEC(60));
    assert_false(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.closes, 0);
    xb_bosh_session_tick(f->s, T0 + SEC(61));
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.closes, 1);
    assert_int_equal(f->rec.n_answers, 1); /* only the creation answer: terminated silently */
    assert_true(xb_bosh_session_next_deadline(f->s) == 0);
}

static void test_inactivity_restarts_with_each_request(void **state)
{
    fixture_t *f = *state;

    create_started(f);
    send_req(f, RID0 + 1, NULL, T0 + SEC(50));
    xb_bosh_session_tick(f->s, T0 + SEC(80)); /* wait ends: answered, idle from here */
    assert_int_equal(f->rec.n_answers, 1);
    assert_true(xb_bosh_session_next_deadline(f->s) == T0 + SEC(140));
    xb_bosh_session_tick(f->s, T0 + SEC(139));
    assert_false(xb_bosh_session_is_finished(f->s));
    xb_bosh_session_tick(f->s, T0 + SEC(140));
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_server_closed_with_held_request(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1;
    const answer_t *a;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    xb_bosh_session_server_closed(f->s, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, T0 + SEC(2));
    a = answer_for(f, r1);
    assert_non_null(a);
    assert_int_equal(a->status, 200);
    assert_contains(a->body, "type='terminate'");
    assert_contains(a->body, "condition='remote-connection-failed'");
    assert_int_equal(f->rec.closes, 1);
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_server_closed_two_held(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body();
    xb_request_id_t r1, r2;

    f->limits.max_hold = 2;
    c.hold = 2;
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    rec_clear(&f->rec);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    r2 = send_req(f, RID0 + 2, NULL, T0 + SEC(1));
    xb_bosh_session_server_closed(f->s, XB_COND_SYSTEM_SHUTDOWN, NULL, 0, T0 + SEC(2));
    assert_int_equal(f->rec.n_answers, 2);
    assert_int_equal(f->rec.answers[0].req, r1);
    assert_contains(f->rec.answers[0].body, "condition='system-shutdown'");
    assert_int_equal(f->rec.answers[1].req, r2);
    assert_true(is_empty_body(&f->rec.answers[1]));
    assert_true(is_plain(&f->rec.answers[1]));
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_server_closed_nobody_held(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;
    const answer_t *a;

    create_started(f);
    server(f, "<message id='q'/>", T0 + SEC(1));
    xb_bosh_session_server_closed(f->s, XB_COND_SYSTEM_SHUTDOWN, NULL, 0, T0 + SEC(2));
    assert_int_equal(f->rec.closes, 1);
    assert_int_equal(f->rec.n_answers, 0);
    assert_false(xb_bosh_session_is_finished(f->s));
    assert_false(xb_bosh_session_wants_server_data(f->s));
    /* A second close report changes nothing and closes nothing twice. */
    xb_bosh_session_server_closed(f->s, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, T0 + SEC(2));
    assert_int_equal(f->rec.closes, 1);

    r = send_req(f, RID0 + 1, "<message/>", T0 + SEC(3));
    assert_int_equal(f->rec.n_sent, 0); /* the stream is gone */
    a = answer_for(f, r);
    assert_non_null(a);
    assert_contains(a->body, "condition='system-shutdown'");
    assert_contains(a->body, "><message id='q'/></body>");
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.closes, 1);
}

static void test_server_closed_nobody_then_inactivity(void **state)
{
    fixture_t *f = *state;

    create_started(f);
    /* Idle since the creation answer at T0; the stream ending is no client activity. */
    xb_bosh_session_server_closed(f->s, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, T0 + SEC(1));
    assert_true(xb_bosh_session_next_deadline(f->s) == T0 + SEC(60));
    xb_bosh_session_tick(f->s, T0 + SEC(59));
    assert_false(xb_bosh_session_is_finished(f->s));
    xb_bosh_session_tick(f->s, T0 + SEC(60));
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.closes, 1);
    assert_int_equal(f->rec.n_answers, 0);
}

static const char stream_error[] =
    "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>";

static void test_remote_stream_error_queued(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;
    const char *m, *e;
    const answer_t *a;

    create_started(f);
    server(f, "<message>hi</message>", T0 + SEC(1));
    xb_bosh_session_server_closed(f->s, XB_COND_REMOTE_STREAM_ERROR, stream_error,
                                  strlen(stream_error), T0 + SEC(2));
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(3));
    a = answer_for(f, r);
    assert_contains(a->body, "condition='remote-stream-error'");
    assert_contains(a->body, "xmlns:stream='http://etherx.jabber.org/streams'");
    m = strstr(a->body, "<message>hi</message>");
    e = strstr(a->body, stream_error);
    assert_non_null(m);
    assert_non_null(e);
    assert_true(m < e);
    assert_contains(a->body, "</stream:error></body>");
}

static void test_remote_stream_error_held(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;
    const answer_t *a;

    create_started(f);
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    xb_bosh_session_server_closed(f->s, XB_COND_REMOTE_STREAM_ERROR, stream_error,
                                  strlen(stream_error), T0 + SEC(2));
    a = answer_for(f, r);
    assert_non_null(a);
    assert_contains(a->body, "condition='remote-stream-error'");
    assert_contains(a->body, stream_error);
    assert_int_equal(f->rec.closes, 1);
    assert_true(xb_bosh_session_is_finished(f->s));
}

/* ------------------------------------------------------------------------------------------ */
/* Legacy clients, backpressure, memory */

static void test_legacy_client_http_404(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body();
    xb_request_id_t r1, r9;
    const answer_t *a;

    c.ver = NULL;
    create_with(f, &c, T0);
    assert_false(xb_bosh_session_has_ver(f->s));
    server(f, "<stream:features/>", T0);
    a = answer_for(f, 1);
    assert_int_equal(a->status, 200);
    assert_not_contains(a->body, "ver=");

    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    r9 = send_req(f, RID0 + 9, NULL, T0 + SEC(2));
    assert_int_equal(answer_for(f, r1)->status, 200);
    a = answer_for(f, r9);
    assert_non_null(a);
    assert_int_equal(a->status, 404);
    assert_int_equal(a->len, 0);
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_legacy_client_server_condition_is_200(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body();
    xb_request_id_t r1;

    c.ver = NULL;
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    xb_bosh_session_server_closed(f->s, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, T0 + SEC(2));
    assert_int_equal(answer_for(f, r1)->status, 200);
    assert_contains(answer_for(f, r1)->body, "condition='remote-connection-failed'");
}

static void test_request_without_rid_bad_request(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body(), b;
    xb_request_id_t r;

    c.ver = NULL; /* legacy: HTTP 400, no body */
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    b = make_body(0, NULL);
    b.has_rid = 0;
    r = send_body(f, &b, T0 + SEC(1));
    assert_int_equal(answer_for(f, r)->status, 400);
    assert_int_equal(answer_for(f, r)->len, 0);
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.closes, 1);
}

static void test_backpressure(void **state)
{
    fixture_t *f = *state;
    char chunk[61];
    xb_request_id_t r;

    f->limits.max_queued_bytes = 100;
    create_started(f);
    memset(chunk, 'x', 60);
    chunk[0] = '<';
    chunk[58] = '/';
    chunk[59] = '>';
    chunk[60] = '\0';
    assert_true(xb_bosh_session_wants_server_data(f->s));
    server(f, chunk, T0 + SEC(1));
    assert_true(xb_bosh_session_wants_server_data(f->s)); /* 60 <= 100 */
    server(f, chunk, T0 + SEC(1));
    assert_false(xb_bosh_session_wants_server_data(f->s)); /* 120 > 100 */
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(2));
    assert_int_equal(answer_for(f, r)->len > 120, 1);
    assert_true(xb_bosh_session_wants_server_data(f->s));
}

static void test_request_after_finish(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;

    create_started(f);
    xb_bosh_session_tick(f->s, T0 + SEC(3600));
    assert_true(xb_bosh_session_is_finished(f->s));
    r = send_req(f, RID0 + 1, "<message/>", T0 + SEC(3601));
    assert_int_equal(f->rec.n_sent, 0);
    assert_contains(answer_for(f, r)->body, "condition='item-not-found'");
    server(f, "<message/>", T0 + SEC(3602));
    assert_int_equal(f->rec.n_answers, 1);
    assert_int_equal(f->rec.closes, 1);
}

/* 10,000 RIDs with data both ways, with re-sends and out-of-order pairs mixed in: the heap must
 * not grow after warm-up (the cache and the queue free what they drop). */
static void test_long_run_memory_bounded(void **state)
{
    fixture_t *f = *state;
    size_t before = 0, after;
    uint64_t rid = RID0 + 1, hi, lo;
    unsigned requests, i;
    xb_request_id_t r;

    create_started(f);
    for (i = 0; i < 10000; i++) {
        apr_time_t now = T0 + SEC(1) + i;

        if (i % 7 == 3) {
            /* rid+1 and rid+2 cross on the wire */
            send_req(f, rid + 1, "<message>b</message>", now);
            send_req(f, rid, "<message>a</message>", now);
            server(f, "<message from='x'>reply</message>", now);
            rid += 2;
        }
        else {
            r = send_req(f, rid, "<message>hello</message>", now);
            server(f, "<message from='x'>a reply of some length</message>", now);
            if (i % 5 == 1) {
                xb_request_id_t again = send_req(f, rid, "<message>hello</message>", now);
                assert_string_equal(answer_for(f, again)->body, answer_for(f, r)->body);
            }
            rid++;
        }
        assert_int_equal(xb_bosh_session_held_count(f->s), 0);
        rec_clear(&f->rec);
        if (f->next_req > MAX_REQ_IDS - 8) {
            memset(f->rec.answered, 0, sizeof(f->rec.answered));
            f->next_req = 2;
        }
        if (i == 1000) {
            before = mallinfo2().uordblks;
        }
    }
    after = mallinfo2().uordblks;
    assert_false(xb_bosh_session_is_finished(f->s));
    xb_bosh_session_window(f->s, &hi, &lo, &requests);
    assert_true(hi == rid - 1);
    assert_true(hi - lo + 1 == 5); /* exactly response_cache answers kept */
    if (after > before + 16 * 1024) {
        fail_msg("heap grew from %zu to %zu bytes over 9,000 RIDs", before, after);
    }
}

/* ------------------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    apr_initialize();
    xb_log_bind(log_print, log_is_level, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    apr_terminate();
    return 0;
}

/* Prebind: no creation request; the browser's first request carries next_rid; until it comes
 * the attach grace (here 120 s) applies instead of inactivity (60 s). */
static void test_prebound_attach_grace_then_inactivity(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1;
    const answer_t *a;
    uint64_t hi, lo;
    unsigned requests;

    f->s = xb_bosh_session_create_prebound(f->pool, "sid-p", "example.test", RID0, 120,
                                           &f->limits, &f->io, &f->rec, T0);
    assert_non_null(f->s);
    xb_bosh_session_window(f->s, &hi, &lo, &requests);
    assert_true(hi == RID0 - 1);
    assert_int_equal(requests, 2);
    assert_true(xb_bosh_session_next_deadline(f->s) == T0 + SEC(120));
    xb_bosh_session_tick(f->s, T0 + SEC(61));
    assert_false(xb_bosh_session_is_finished(f->s));
    /* Stanzas that arrive before the browser attaches wait for it. */
    server(f, "<message xmlns='jabber:client'><body>early</body></message>", T0 + SEC(70));
    r1 = send_req(f, RID0, NULL, T0 + SEC(100));
    a = answer_for(f, r1);
    assert_non_null(a);
    assert_non_null(strstr(a->body, "early"));
    assert_null(strstr(a->body, "sid="));   /* never a creation answer */
    assert_null(strstr(a->body, "type="));
    /* Attached: ordinary inactivity from now on. */
    xb_bosh_session_tick(f->s, T0 + SEC(100 + 61));
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_prebound_unattached_session_ends_at_grace(void **state)
{
    fixture_t *f = *state;

    f->s = xb_bosh_session_create_prebound(f->pool, "sid-q", "example.test", RID0, 90,
                                           &f->limits, &f->io, &f->rec, T0);
    xb_bosh_session_tick(f->s, T0 + SEC(89));
    assert_false(xb_bosh_session_is_finished(f->s));
    xb_bosh_session_tick(f->s, T0 + SEC(90));
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.closes, 1);
    assert_int_equal(f->rec.n_answers, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* §14.3 repeat limit, §15 keys, §10 pause, §11/§12 overactivity, §9 acks, §7.2 attributes */

#define K1 "e509dc2b2747d7f6100e2e059ad91a329fe77181"
#define K2 "dec2904f0f062f4eca2c5d367dc868c3bfeb90bd"
#define K3 "d583ba24c90d5c3eef28735c57d66a45088c32ca"

static int is_terminal(const answer_t *a, const char *cond)
{
    char want[64];

    snprintf(want, sizeof(want), "condition='%s'", cond);
    return a && a->status == 200 && strstr(a->body, "type='terminate'") && strstr(a->body, want);
}

static void test_replay_limit(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;
    unsigned i;

    f->limits.max_replays = 3;
    create_started(f);
    send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    server(f, "<message/>", T0 + SEC(1));
    for (i = 0; i < 3; i++) {
        r = send_req(f, RID0 + 1, NULL, T0 + SEC(2));
        assert_contains(answer_for(f, r)->body, "<message/>");
    }
    assert_false(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.notes[XB_NOTE_OVERACTIVITY], 0);
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(3));
    assert_true(is_terminal(answer_for(f, r), "policy-violation"));
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.notes[XB_NOTE_OVERACTIVITY], 1);
}

static void test_replay_limit_held_and_unlimited(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r = 0;
    unsigned i;

    /* A held RID sent again counts too. */
    f->limits.max_replays = 2;
    create_started(f);
    send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    for (i = 0; i < 3; i++) {
        r = send_req(f, RID0 + 1, NULL, T0 + SEC(2));
    }
    assert_true(is_terminal(answer_for(f, r), "policy-violation"));
    /* The request it replaced was told another request ended the session. */
    assert_true(is_terminal(answer_for(f, r - 1), "other-request"));
}

static void test_replay_unlimited(void **state)
{
    fixture_t *f = *state;
    unsigned i;

    f->limits.max_replays = 0;
    create_started(f);
    send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    server(f, "<message/>", T0 + SEC(1));
    for (i = 0; i < 50; i++) {
        send_req(f, RID0 + 1, NULL, T0 + SEC(2));
    }
    assert_false(xb_bosh_session_is_finished(f->s));
}

static void create_keyed(fixture_t *f, const char *newkey)
{
    xb_bosh_body_t c = creation_body();

    c.newkey = newkey;
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    rec_clear(&f->rec);
}

static xb_request_id_t send_keyed(fixture_t *f, uint64_t rid, const char *key, const char *newkey,
                                  const char *payload, apr_time_t now)
{
    xb_bosh_body_t b = make_body(rid, payload);

    b.key = key;
    b.newkey = newkey;
    return send_body(f, &b, now);
}

static void test_key_sequence_and_switch(void **state)
{
    fixture_t *f = *state;
    char k2b[41], k3b[41];
    xb_request_id_t r;

    /* A second sequence K'(1..3) from another seed, for the §15.5 switch. */
    xb_bosh_key_hash("another-seed", k2b); /* K'(1) */
    strcpy(k3b, k2b);
    xb_bosh_key_hash(k3b, k2b);            /* K'(2) */
    xb_bosh_key_hash(k2b, k3b);            /* K'(3) */

    create_keyed(f, K3);
    send_keyed(f, RID0 + 1, K2, NULL, "<a/>", T0 + SEC(1));
    send_keyed(f, RID0 + 2, K1, k3b, "<b/>", T0 + SEC(2)); /* last key + new sequence */
    send_keyed(f, RID0 + 3, k2b, NULL, "<c/>", T0 + SEC(3));
    assert_int_equal(f->rec.n_sent, 3);
    assert_false(xb_bosh_session_is_finished(f->s));
    /* The old sequence is spent. */
    r = send_keyed(f, RID0 + 4, K1, NULL, "<d/>", T0 + SEC(4));
    assert_int_equal(f->rec.n_sent, 3); /* not processed */
    assert_true(is_terminal(answer_for(f, r), "item-not-found"));
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_key_missing_or_wrong(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, r2;

    create_keyed(f, K3);
    r1 = send_keyed(f, RID0 + 1, K2, NULL, NULL, T0 + SEC(1));
    r2 = send_keyed(f, RID0 + 2, NULL, NULL, "<evil/>", T0 + SEC(2));
    assert_int_equal(f->rec.n_sent, 0);
    assert_true(is_terminal(answer_for(f, r1), "other-request"));
    assert_true(is_terminal(answer_for(f, r2), "item-not-found"));
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_key_wrong_value(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;

    create_keyed(f, K3);
    r = send_keyed(f, RID0 + 1, K3, NULL, "<evil/>", T0 + SEC(1)); /* newkey itself */
    assert_int_equal(f->rec.n_sent, 0);
    assert_true(is_terminal(answer_for(f, r), "item-not-found"));
}

static void test_key_case_insensitive(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;
    char upper[41];
    unsigned i;

    for (i = 0; i < 40; i++) {
        upper[i] = (char)toupper((unsigned char)K3[i]);
    }
    upper[40] = '\0';
    create_keyed(f, upper);
    r = send_keyed(f, RID0 + 1, K2, NULL, "<a/>", T0 + SEC(1));
    assert_int_equal(f->rec.n_sent, 1);
    assert_null(answer_for(f, r)); /* held, not refused */
    assert_false(xb_bosh_session_is_finished(f->s));
}

static void test_key_replay_not_checked_again(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;

    create_keyed(f, K3);
    send_keyed(f, RID0 + 1, K2, NULL, NULL, T0 + SEC(1));
    server(f, "<m/>", T0 + SEC(1));
    /* The identical re-send: K2 no longer hashes to the expected key, yet it is a replay. */
    r = send_keyed(f, RID0 + 1, K2, NULL, NULL, T0 + SEC(2));
    assert_contains(answer_for(f, r)->body, "<m/>");
    assert_false(xb_bosh_session_is_finished(f->s));
    send_keyed(f, RID0 + 2, K1, NULL, "<a/>", T0 + SEC(3));
    assert_int_equal(f->rec.n_sent, 1);
    assert_false(xb_bosh_session_is_finished(f->s));
}

static void test_key_out_of_order_checked_in_rid_order(void **state)
{
    fixture_t *f = *state;

    create_keyed(f, K3);
    send_keyed(f, RID0 + 2, K1, NULL, "<second/>", T0 + SEC(1)); /* early */
    assert_int_equal(f->rec.n_sent, 0);
    send_keyed(f, RID0 + 1, K2, NULL, "<first/>", T0 + SEC(1));
    assert_int_equal(f->rec.n_sent, 2);
    assert_string_equal(f->rec.sent[0], "<first/>");
    assert_string_equal(f->rec.sent[1], "<second/>");
    assert_false(xb_bosh_session_is_finished(f->s));
}

static xb_request_id_t send_pause(fixture_t *f, uint64_t rid, unsigned pause, apr_time_t now)
{
    xb_bosh_body_t b = make_body(rid, NULL);

    b.has_pause = 1;
    b.pause = pause;
    return send_body(f, &b, now);
}

static void test_pause(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, rp, r3;
    const answer_t *a;

    create(f);
    server(f, "<stream:features/>", T0);
    assert_contains(f->rec.answers[0].body, "maxpause='120'");
    rec_clear(&f->rec);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    rp = send_pause(f, RID0 + 2, 100, T0 + SEC(2));
    assert_int_equal(f->rec.n_answers, 2);
    assert_int_equal(f->rec.answers[0].req, r1);
    assert_int_equal(f->rec.answers[1].req, rp);
    assert_true(is_empty_body(&f->rec.answers[1]));
    assert_not_contains(f->rec.answers[1].body, "maxpause");
    /* Server data during the pause waits; the pause answer never carried it. */
    server(f, "<message>later</message>", T0 + SEC(3));
    xb_bosh_session_tick(f->s, T0 + SEC(2 + 99));
    assert_false(xb_bosh_session_is_finished(f->s)); /* inactivity (60) is not the limit now */
    r3 = send_req(f, RID0 + 3, NULL, T0 + SEC(2 + 99));
    a = answer_for(f, r3);
    assert_non_null(a);
    assert_contains(a->body, "later");
    /* The next request restored the ordinary inactivity. */
    xb_bosh_session_tick(f->s, T0 + SEC(2 + 99 + 60));
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.notes[XB_NOTE_OVERACTIVITY], 0);
}

static void test_pause_shorter_than_inactivity(void **state)
{
    fixture_t *f = *state;

    create_started(f);
    send_pause(f, RID0 + 1, 10, T0 + SEC(1));
    xb_bosh_session_tick(f->s, T0 + SEC(10));
    assert_false(xb_bosh_session_is_finished(f->s));
    xb_bosh_session_tick(f->s, T0 + SEC(11));
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_pause_too_long(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, rp;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    rp = send_pause(f, RID0 + 2, 121, T0 + SEC(2));
    assert_true(is_terminal(answer_for(f, r1), "other-request"));
    assert_true(is_terminal(answer_for(f, rp), "policy-violation"));
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_pause_not_offered(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t rp;

    f->limits.max_pause = 0;
    create(f);
    server(f, "<stream:features/>", T0);
    assert_not_contains(f->rec.answers[0].body, "maxpause");
    rec_clear(&f->rec);
    /* The client must not send pause; if it does, the request is an ordinary one. */
    rp = send_pause(f, RID0 + 1, 100, T0 + SEC(1));
    assert_null(answer_for(f, rp));
    assert_int_equal(xb_bosh_session_held_count(f->s), 1);
    xb_bosh_session_tick(f->s, T0 + SEC(31));
    assert_non_null(answer_for(f, rp));
    xb_bosh_session_tick(f->s, T0 + SEC(31 + 60));
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_overactivity_too_many_requests(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, r2, r3;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    r3 = send_req(f, RID0 + 3, "<c/>", T0 + SEC(1)); /* early */
    r2 = send_req(f, RID0 + 2, "<b/>", T0 + SEC(1)); /* three unanswered: requests is 2 */
    assert_true(is_terminal(answer_for(f, r2), "policy-violation"));
    assert_true(is_terminal(answer_for(f, r1), "other-request"));
    assert_true(is_terminal(answer_for(f, r3), "other-request"));
    assert_int_equal(f->rec.n_sent, 0);
    assert_int_equal(f->rec.notes[XB_NOTE_OVERACTIVITY], 1);
}

static void test_overactivity_terminate_may_exceed(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t b;
    xb_request_id_t r3;

    create_started(f);
    send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    b = make_body(RID0 + 3, "<presence type='unavailable'/>");
    b.type = "terminate";
    r3 = send_body(f, &b, T0 + SEC(1)); /* early, on top of `requests` */
    send_req(f, RID0 + 2, "<b/>", T0 + SEC(1));
    assert_int_equal(f->rec.n_sent, 2);
    assert_contains(answer_for(f, r3)->body, "type='terminate'");
    assert_not_contains(answer_for(f, r3)->body, "condition=");
    assert_int_equal(f->rec.notes[XB_NOTE_OVERACTIVITY], 0);
}

static void test_overactivity_empty_within_polling(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r2;

    create_started(f);
    send_req(f, RID0 + 1, NULL, T0 + SEC(10));
    r2 = send_req(f, RID0 + 2, NULL, T0 + SEC(11)); /* 2 unanswered, last empty, < polling */
    assert_true(is_terminal(answer_for(f, r2), "policy-violation"));
    assert_int_equal(f->rec.notes[XB_NOTE_OVERACTIVITY], 1);
}

static void test_empty_request_beside_data_request_is_fine(void **state)
{
    fixture_t *f = *state;

    /* A client keeping a poll open beside its data request (xbtest's BoshClient). */
    create_started(f);
    send_req(f, RID0 + 1, NULL, T0 + SEC(10));
    send_req(f, RID0 + 2, "<m/>", T0 + SEC(11));
    send_req(f, RID0 + 3, NULL, T0 + SEC(11));
    assert_false(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.notes[XB_NOTE_OVERACTIVITY], 0);
}

static void test_overactivity_empty_after_polling_ok(void **state)
{
    fixture_t *f = *state;

    create_started(f);
    send_req(f, RID0 + 1, NULL, T0 + SEC(10));
    send_req(f, RID0 + 2, NULL, T0 + SEC(12)); /* polling (2 s) apart: allowed */
    assert_false(xb_bosh_session_is_finished(f->s));
    assert_int_equal(xb_bosh_session_held_count(f->s), 1);
}

static void test_polling_session_too_fast(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body();
    xb_request_id_t r;

    c.hold = 0;
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    send_req(f, RID0 + 1, NULL, T0 + SEC(5));
    send_req(f, RID0 + 2, NULL, T0 + SEC(7)); /* polling apart: fine */
    assert_false(xb_bosh_session_is_finished(f->s));
    r = send_req(f, RID0 + 3, NULL, T0 + SEC(8)); /* 1 s after an empty answer */
    assert_true(is_terminal(answer_for(f, r), "policy-violation"));
}

static void test_short_wait_long_poll_is_not_polling(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body();
    xb_request_id_t r;

    /* wait (1) below polling (2): each empty answer comes at the wait, the next empty request
     * right after it (§10 wants it as soon as possible). Not a polling session: allowed. */
    c.wait = 1;
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    xb_bosh_session_tick(f->s, T0 + SEC(2));
    assert_true(is_empty_body(answer_for(f, r)));
    r = send_req(f, RID0 + 2, NULL, T0 + SEC(2));
    xb_bosh_session_tick(f->s, T0 + SEC(3));
    send_req(f, RID0 + 3, NULL, T0 + SEC(3));
    assert_false(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.notes[XB_NOTE_OVERACTIVITY], 0);
}

static void test_polling_session_data_resets(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body();

    c.hold = 0;
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    send_req(f, RID0 + 1, NULL, T0 + SEC(5));
    send_req(f, RID0 + 2, "<message/>", T0 + SEC(5)); /* data: not a poll */
    send_req(f, RID0 + 3, NULL, T0 + SEC(5));
    server(f, "<message/>", T0 + SEC(5));
    send_req(f, RID0 + 4, NULL, T0 + SEC(8));
    assert_false(xb_bosh_session_is_finished(f->s));
}

/* Strophe's BOSH loop (hold=1, requests=2): an empty request only when none is in flight,
 * at most two in flight, the second one carrying data. Hours of it never trip §11/§12. */
static void strophe_pattern(fixture_t *f, uint64_t rid, apr_time_t t)
{
    xb_request_id_t held, data;
    unsigned round;

    held = send_req(f, rid++, NULL, t);
    for (round = 0; round < 200; round++) {
        switch (round % 4) {
        case 0: /* a chat message from the user while the poll is held */
            data = send_req(f, rid++, "<message><body>hi</body></message>", t);
            assert_non_null(answer_for(f, held)); /* the held poll is answered at once */
            t += apr_time_from_msec(200);
            server(f, "<message><body>echo</body></message>", t);
            assert_non_null(answer_for(f, data));
            held = send_req(f, rid++, NULL, t); /* right after the answer */
            break;
        case 1: /* a stanza for the user answers the held poll; an empty one follows at once */
            t += SEC(3);
            server(f, "<presence/>", t);
            assert_non_null(answer_for(f, held));
            held = send_req(f, rid++, NULL, t + apr_time_from_msec(5));
            break;
        case 2: /* nothing happens: wait runs out, the next empty poll follows at once */
            t += SEC(31);
            xb_bosh_session_tick(f->s, t);
            assert_non_null(answer_for(f, held));
            held = send_req(f, rid++, NULL, t + apr_time_from_msec(30));
            break;
        default: /* two stanzas from the user in a row, the second while the first is held */
            data = send_req(f, rid++, "<iq type='get'/>", t + apr_time_from_msec(10));
            assert_non_null(answer_for(f, held));
            held = data;
            data = send_req(f, rid++, "<presence/>", t + apr_time_from_msec(20));
            assert_non_null(answer_for(f, held));
            t += SEC(1);
            server(f, "<iq type='result'/>", t);
            assert_non_null(answer_for(f, data));
            held = send_req(f, rid++, NULL, t);
            break;
        }
        assert_false(xb_bosh_session_is_finished(f->s));
    }
    assert_int_equal(f->rec.notes[XB_NOTE_OVERACTIVITY], 0);
}

static void test_strophe_pattern_never_overactive(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body();

    c.wait = 30;
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    strophe_pattern(f, RID0 + 1, T0 + apr_time_from_msec(50));
}

static void test_strophe_pattern_prebound(void **state)
{
    fixture_t *f = *state;

    f->limits.max_wait = 30;
    f->s = xb_bosh_session_create_prebound(f->pool, "sid-p", "example.test", RID0, 120,
                                           &f->limits, &f->io, &f->rec, T0);
    /* Page load: Strophe attaches seconds later and starts the same loop. */
    strophe_pattern(f, RID0, T0 + SEC(4));
}

static void test_acks(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body(), b;
    xb_request_id_t r1, r2;

    c.has_ack = 1;
    c.ack = 1;
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    assert_contains(f->rec.answers[0].body, "ack='1000'");
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    b = make_body(RID0 + 2, "<m/>");
    b.has_ack = 1;
    b.ack = RID0; /* it has not seen RID0+1's answer yet: that one is still held */
    r2 = send_body(f, &b, T0 + SEC(2));
    /* The held one tells the client RID0+2 arrived (§9.1); no report: nothing was behind. */
    assert_contains(answer_for(f, r1)->body, "ack='1002'");
    assert_null(answer_for(f, r2));
    server(f, "<reply/>", T0 + SEC(3));
    /* Answering the highest RID received: no ack attribute. */
    assert_not_contains(answer_for(f, r2)->body, "ack=");
    assert_not_contains(answer_for(f, r2)->body, "report=");
}

static void test_no_acks_without_ack_at_creation(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    send_req(f, RID0 + 2, "<m/>", T0 + SEC(2));
    assert_not_contains(answer_for(f, r1)->body, "ack=");
}

static void test_ack_report(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body(), b;
    xb_request_id_t r2;
    const answer_t *a;

    c.has_ack = 1;
    c.ack = 1;
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    server(f, "<lost/>", T0 + SEC(1)); /* answered at T0+1; the client never got it */
    b = make_body(RID0 + 2, NULL);
    b.has_ack = 1;
    b.ack = RID0;
    r2 = send_body(f, &b, T0 + SEC(3));
    a = answer_for(f, r2);
    assert_non_null(a); /* at once, not held */
    assert_contains(a->body, "report='1001'");
    assert_contains(a->body, "time='2000'");
    assert_int_equal(xb_bosh_session_held_count(f->s), 0);
    /* The unacked answer is still there for the re-send. */
    a = answer_for(f, send_req(f, RID0 + 1, NULL, T0 + SEC(4)));
    assert_contains(a->body, "<lost/>");
}

static void test_acks_keep_unacked_drop_acked(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body(), b;
    xb_request_id_t r;
    uint64_t rid;

    c.has_ack = 1;
    c.ack = 1;
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    /* Eight answers the client does not acknowledge: more than the cache (5) holds. */
    for (rid = RID0 + 1; rid <= RID0 + 8; rid++) {
        b = make_body(rid, NULL);
        b.has_ack = 1;
        b.ack = RID0;
        send_body(f, &b, T0 + SEC(1));
        server(f, "<x/>", T0 + SEC(1));
    }
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(2)); /* still there */
    assert_contains(answer_for(f, r)->body, "<x/>");
    /* A request without ack acknowledges everything before it (§9.2). */
    send_req(f, RID0 + 9, NULL, T0 + SEC(3));
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(3));
    assert_true(is_terminal(answer_for(f, r), "item-not-found"));
}

static void test_creation_attributes(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body();
    const char *body;
    xb_request_id_t r;

    f->limits.accept = "gzip";
    c.has_ack = 1;
    c.ack = 1;
    c.content = "text/xml; charset=utf-8";
    c.wait = 45;
    create_with(f, &c, T0);
    assert_string_equal(xb_bosh_session_content(f->s), "text/xml; charset=utf-8");
    server(f, "<stream:features/>", T0);
    body = f->rec.answers[0].body;
    assert_contains(body, "sid='sid-1'");
    assert_contains(body, "wait='45'");
    assert_contains(body, "requests='2'");
    assert_contains(body, "hold='1'");
    assert_contains(body, "ver='1.11'");
    assert_contains(body, "polling='2'");
    assert_contains(body, "inactivity='60'");
    assert_contains(body, "maxpause='120'");
    assert_contains(body, "accept='gzip'");
    assert_contains(body, "ack='1000'");
    assert_contains(body, "from='example.com'");
    assert_not_contains(body, "charsets=");
    /* None of them on later answers. */
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    send_req(f, RID0 + 2, "<m/>", T0 + SEC(2));
    server(f, "<m/>", T0 + SEC(3));
    body = answer_for(f, r)->body;
    assert_not_contains(body, "sid=");
    assert_not_contains(body, "wait=");
    assert_not_contains(body, "requests=");
    assert_not_contains(body, "hold=");
    assert_not_contains(body, "ver=");
    assert_not_contains(body, "polling=");
    assert_not_contains(body, "inactivity=");
    assert_not_contains(body, "maxpause=");
    assert_not_contains(body, "accept=");
    assert_not_contains(body, "from=");
    assert_not_contains(body, "restartlogic");
}

static void test_content_absent(void **state)
{
    fixture_t *f = *state;

    create(f);
    assert_null(xb_bosh_session_content(f->s));
    assert_not_contains(f->rec.n_answers ? f->rec.answers[0].body : "", "accept=");
}

static void test_terminate_hold2(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t c = creation_body(), b;
    xb_request_id_t r1, r2, r3;

    f->limits.max_hold = 2;
    c.hold = 2;
    create_with(f, &c, T0);
    server(f, "<stream:features/>", T0);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    r2 = send_req(f, RID0 + 2, NULL, T0 + SEC(4));
    b = make_body(RID0 + 3, "<presence type='unavailable'/>");
    b.type = "terminate";
    r3 = send_body(f, &b, T0 + SEC(5));
    assert_contains(answer_for(f, r1)->body, "type='terminate'");
    assert_true(is_empty_body(answer_for(f, r2)));
    assert_not_contains(answer_for(f, r2)->body, "type=");
    assert_contains(answer_for(f, r3)->body, "type='terminate'");
    assert_int_equal(f->rec.n_sent, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* XEP-0206 §7: undelivered stanzas are bounced when the session ends */

#define MSG_FROM_BOB "<message from='bob@x/r' to='alice@x/s' type='chat' id='m1'><body>hi</body></message>"
#define IQ_FROM_BOB "<iq from='bob@x/r' to='alice@x/s' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>"

static void test_bounce_queued_at_inactivity(void **state)
{
    fixture_t *f = *state;

    create_started(f);
    server(f, MSG_FROM_BOB, T0 + SEC(1));
    server(f, IQ_FROM_BOB, T0 + SEC(1));
    server(f, "<presence from='bob@x/r'/>", T0 + SEC(1));
    server(f, "<message from='bob@x/r' type='error' id='e'/>", T0 + SEC(1));
    server(f, "<iq from='bob@x/r' type='result' id='r'/>", T0 + SEC(1));
    assert_int_equal(f->rec.n_sent, 0);
    xb_bosh_session_tick(f->s, T0 + SEC(61));
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.n_sent, 2);
    assert_contains(f->rec.sent[0], "<message xmlns='jabber:client' type='error' id='m1' "
                                    "to='bob@x/r'>");
    assert_contains(f->rec.sent[0], "<recipient-unavailable");
    assert_contains(f->rec.sent[1], "<iq xmlns='jabber:client' type='error' id='q1' "
                                    "to='bob@x/r'>");
    assert_contains(f->rec.sent[1], "<service-unavailable");
    /* Before </stream:stream>, not after. */
    assert_int_equal(f->rec.closes, 1);
    assert_int_equal(f->rec.sent_at_close, 2);
}

static void test_no_bounce_for_delivered(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    server(f, MSG_FROM_BOB, T0 + SEC(2));
    assert_contains(answer_for(f, r1)->body, "id='m1'");
    xb_bosh_session_tick(f->s, T0 + SEC(100));
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.n_sent, 0);
}

/* An answer built for a request that had gone away is bounced unless a re-send fetched it. */
static void test_bounce_answer_never_fetched(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    xb_bosh_session_request_gone(f->s, r1, T0 + SEC(2));
    server(f, MSG_FROM_BOB, T0 + SEC(3)); /* into the answer for the gone request */
    server(f, IQ_FROM_BOB, T0 + SEC(3));  /* queued: nothing held */
    server(f, "<message from='carol@x/r' id='m2'/>", T0 + SEC(3));
    assert_int_equal(f->rec.n_answers, 0);
    xb_bosh_session_tick(f->s, T0 + SEC(100));
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.n_sent, 3);
    assert_contains(f->rec.sent[0], "id='m1' to='bob@x/r'"); /* the cached answer's first */
    assert_contains(f->rec.sent[1], "id='q1' to='bob@x/r'");
    assert_contains(f->rec.sent[2], "id='m2' to='carol@x/r'");
    assert_int_equal(f->rec.sent_at_close, f->rec.n_sent);
}

static void test_no_bounce_after_refetch(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, r1b;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    xb_bosh_session_request_gone(f->s, r1, T0 + SEC(2));
    server(f, MSG_FROM_BOB, T0 + SEC(3));
    r1b = send_req(f, RID0 + 1, NULL, T0 + SEC(4));
    assert_contains(answer_for(f, r1b)->body, "id='m1'");
    xb_bosh_session_tick(f->s, T0 + SEC(100));
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.n_sent, 0);
}

static void test_bounce_on_client_terminate_without_held(void **state)
{
    fixture_t *f = *state;
    xb_bosh_body_t b;

    create_started(f);
    server(f, MSG_FROM_BOB, T0 + SEC(1)); /* queued: no request held */
    b = make_body(RID0 + 1, NULL);
    b.type = "terminate";
    send_body(f, &b, T0 + SEC(2));
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.n_sent, 1);
    assert_contains(f->rec.sent[0], "<recipient-unavailable");
}

/* The gateway ends the session: with a live request the stanzas go to it (delivered), without
 * one they are bounced and the client's next request gets the condition without them. */
static void test_gateway_end_bounces_without_live_request(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;

    create_started(f);
    server(f, MSG_FROM_BOB, T0 + SEC(1));
    xb_bosh_session_end(f->s, XB_COND_SYSTEM_SHUTDOWN, T0 + SEC(2));
    assert_int_equal(f->rec.n_sent, 1);
    assert_contains(f->rec.sent[0], "<recipient-unavailable");
    assert_int_equal(f->rec.closes, 1);
    assert_int_equal(f->rec.sent_at_close, 1);
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(3));
    assert_contains(answer_for(f, r)->body, "condition='system-shutdown'");
    assert_not_contains(answer_for(f, r)->body, "id='m1'");
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_gateway_end_delivers_to_live_request(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, r2;

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    /* after `polling`: two empty requests closer together are overactivity (§11) */
    r2 = send_req(f, RID0 + 2, NULL, T0 + SEC(5)); /* r1 answered empty (hold 1) */
    assert_non_null(answer_for(f, r1));
    assert_null(answer_for(f, r2)); /* held: the condition below comes from the gateway */
    xb_bosh_session_end(f->s, XB_COND_POLICY_VIOLATION, T0 + SEC(6));
    assert_contains(answer_for(f, r2)->body, "condition='policy-violation'");
    assert_int_equal(f->rec.n_sent, 0);
    assert_true(xb_bosh_session_is_finished(f->s));
}

/* §17.2 undefined-condition carries application-specific information: the detail element
 * goes into the terminating body (site logout uses it). */
static void test_gateway_end_with_detail(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r1, r2;
    const char *detail = "<site-logout xmlns='urn:x-mod-xmpp-bridge:terminate'/>";

    create_started(f);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    r2 = send_req(f, RID0 + 2, NULL, T0 + SEC(5));
    assert_non_null(answer_for(f, r1));
    assert_null(answer_for(f, r2));
    xb_bosh_session_end_detail(f->s, XB_COND_UNDEFINED_CONDITION, detail, strlen(detail),
                               T0 + SEC(6));
    assert_contains(answer_for(f, r2)->body, "condition='undefined-condition'");
    assert_contains(answer_for(f, r2)->body, detail);
    assert_true(xb_bosh_session_is_finished(f->s));
}

/* The server closed the stream: there is nowhere to bounce to; the stanzas wait in the
 * terminating answer for the client as before. */
static void test_no_bounce_when_server_closed(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;

    create_started(f);
    server(f, MSG_FROM_BOB, T0 + SEC(1));
    xb_bosh_session_server_closed(f->s, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, T0 + SEC(2));
    assert_int_equal(f->rec.n_sent, 0);
    r = send_req(f, RID0 + 1, NULL, T0 + SEC(3));
    assert_contains(answer_for(f, r)->body, "id='m1'");
    xb_bosh_session_tick(f->s, T0 + SEC(100));
    assert_int_equal(f->rec.n_sent, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* XEP-0124 §16 multiple streams */

/* The `stream` attribute of an answer, or "" (static buffer). */
static const char *stream_attr(const answer_t *a)
{
    static char name[64];
    const char *at = strstr(a->body, " stream='"); /* not xmlns:stream */
    size_t n;

    name[0] = '\0';
    if (at) {
        at += strlen(" stream='");
        n = strcspn(at, "'");
        assert_true(n < sizeof(name));
        memcpy(name, at, n);
        name[n] = '\0';
    }
    return name;
}

/* A session with up to `max` streams whose creation answer came; its first stream's name. */
static void create_multi(fixture_t *f, unsigned max, char name0[64])
{
    f->limits.max_streams = max;
    create(f);
    server(f, "<stream:features/>", T0);
    assert_int_equal(f->rec.n_answers, 1);
    strcpy(name0, stream_attr(&f->rec.answers[0]));
    rec_clear(&f->rec);
}

static xb_request_id_t add_stream_req(fixture_t *f, uint64_t rid, const char *to, apr_time_t now)
{
    xb_bosh_body_t b = make_body(rid, NULL);

    b.to = to;
    b.xml_lang = "en";
    return send_body(f, &b, now);
}

static xb_request_id_t stream_req(fixture_t *f, uint64_t rid, const char *stream,
                                  const char *payload, apr_time_t now)
{
    xb_bosh_body_t b = make_body(rid, payload);

    b.stream = stream;
    return send_body(f, &b, now);
}

/* A second stream, added and named; its name. */
static void add_second(fixture_t *f, uint64_t rid, char name1[64])
{
    xb_request_id_t r = add_stream_req(f, rid, "other.example", T0 + SEC(1));
    const answer_t *a;

    assert_int_equal(f->rec.opened[1], 1);
    assert_null(answer_for(f, r));
    xb_bosh_session_stream_data(f->s, 1, "<stream:features><mechanisms/></stream:features>", 48,
                                T0 + SEC(2));
    a = answer_for(f, r);
    assert_non_null(a);
    assert_contains(a->body, "<mechanisms/>");
    assert_contains(a->body, "from='other.example'");
    assert_not_contains(a->body, "sid=");
    strcpy(name1, stream_attr(a));
    assert_int_equal(strlen(name1), 32);
    assert_int_equal(xb_bosh_session_stream_count(f->s), 2);
    rec_clear(&f->rec);
}

static void test_streams_off_by_default(void **state)
{
    fixture_t *f = *state;
    xb_request_id_t r;

    create(f);
    server(f, "<stream:features/>", T0);
    assert_not_contains(f->rec.answers[0].body, " stream=");
    /* §16.3: without the feature an add-stream request is an ordinary empty one. */
    r = add_stream_req(f, RID0 + 1, "other.example", T0 + SEC(1));
    assert_int_equal(f->rec.opened[1], 0);
    assert_null(answer_for(f, r));
    server(f, "<message id='1'/>", T0 + SEC(2));
    assert_not_contains(answer_for(f, r)->body, " stream=");
}

static void test_add_stream_and_route(void **state)
{
    fixture_t *f = *state;
    char n0[64], n1[64];
    xb_request_id_t r;

    create_multi(f, 3, n0);
    assert_int_equal(strlen(n0), 32);
    add_second(f, RID0 + 1, n1);
    assert_string_not_equal(n0, n1);

    r = stream_req(f, RID0 + 2, n1, "<message id='to1'/>", T0 + SEC(3));
    assert_int_equal(f->rec.n_sent, 1);
    assert_int_equal(f->rec.sent_stream[0], 1);
    stream_req(f, RID0 + 3, n0, "<message id='to0'/>", T0 + SEC(3)); /* answers r */
    assert_non_null(answer_for(f, r));
    assert_int_equal(f->rec.n_sent, 2);
    assert_int_equal(f->rec.sent_stream[1], 0);
    /* §16.4: no stream attribute: every stream gets it. */
    send_req(f, RID0 + 4, "<presence/>", T0 + SEC(3));
    assert_int_equal(f->rec.n_sent, 4);
    assert_string_equal(f->rec.sent[2], "<presence/>");
    assert_string_equal(f->rec.sent[3], "<presence/>");
    assert_int_not_equal(f->rec.sent_stream[2], f->rec.sent_stream[3]);
}

static void test_answer_never_mixes_streams(void **state)
{
    fixture_t *f = *state;
    char n0[64], n1[64];
    xb_request_id_t r1, r2;

    create_multi(f, 3, n0);
    add_second(f, RID0 + 1, n1);
    server(f, "<message id='a0'/>", T0 + SEC(3));
    xb_bosh_session_stream_data(f->s, 1, "<message id='b1'/>", 18, T0 + SEC(3));
    server(f, "<message id='c0'/>", T0 + SEC(3));
    r1 = send_req(f, RID0 + 2, NULL, T0 + SEC(4));
    assert_string_equal(stream_attr(answer_for(f, r1)), n0);
    assert_contains(answer_for(f, r1)->body, "id='a0'");
    assert_contains(answer_for(f, r1)->body, "id='c0'");
    assert_not_contains(answer_for(f, r1)->body, "id='b1'");
    r2 = send_req(f, RID0 + 3, NULL, T0 + SEC(5));
    assert_string_equal(stream_attr(answer_for(f, r2)), n1);
    assert_contains(answer_for(f, r2)->body, "id='b1'");
}

static void test_unknown_stream_item_not_found(void **state)
{
    fixture_t *f = *state;
    char n0[64], n1[64];
    xb_request_id_t r;

    create_multi(f, 3, n0);
    add_second(f, RID0 + 1, n1);
    r = stream_req(f, RID0 + 2, "0123456789abcdef0123456789abcdef", "<message/>",
                   T0 + SEC(3));
    assert_contains(answer_for(f, r)->body, "condition='item-not-found'");
    assert_int_equal(f->rec.n_sent, 0);
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_client_closes_one_stream(void **state)
{
    fixture_t *f = *state;
    char n0[64], n1[64];
    xb_bosh_body_t b;
    xb_request_id_t r, r2, r3;

    create_multi(f, 3, n0);
    add_second(f, RID0 + 1, n1);
    xb_bosh_session_stream_data(f->s, 1, "<message from='bob@x/r' id='u1'/>", 33, T0 + SEC(3));
    b = make_body(RID0 + 2, "<presence type='unavailable'/>");
    b.type = "terminate";
    b.stream = n1;
    r = send_body(f, &b, T0 + SEC(3));
    /* The payload to that stream, its undelivered message bounced, then it closes. */
    assert_int_equal(f->rec.n_sent, 2);
    assert_int_equal(f->rec.sent_stream[0], 1);
    assert_int_equal(f->rec.sent_stream[1], 1);
    assert_contains(f->rec.sent[1], "<recipient-unavailable");
    assert_int_equal(f->rec.stream_closes[1], 1);
    assert_int_equal(f->rec.stream_closes[0], 0);
    assert_false(xb_bosh_session_is_finished(f->s));
    assert_int_equal(xb_bosh_session_stream_count(f->s), 1);
    /* The other stream goes on; the answer is an ordinary one. */
    server(f, "<message id='still'/>", T0 + SEC(4));
    assert_contains(answer_for(f, r)->body, "id='still'");
    assert_not_contains(answer_for(f, r)->body, "type=");
    /* A late body naming the closed stream is ignored, not refused. */
    r2 = stream_req(f, RID0 + 3, n1, "<message id='late'/>", T0 + SEC(5));
    assert_int_equal(f->rec.n_sent, 2);
    assert_false(xb_bosh_session_is_finished(f->s));
    /* Closing the last one ends the session. */
    b = make_body(RID0 + 4, NULL);
    b.type = "terminate";
    b.stream = n0;
    r3 = send_body(f, &b, T0 + SEC(6));
    assert_non_null(answer_for(f, r2));
    assert_contains(answer_for(f, r3)->body, "type='terminate'");
    assert_true(xb_bosh_session_is_finished(f->s));
    assert_int_equal(f->rec.stream_closes[0], 1);
    assert_int_equal(f->rec.stream_closes[1], 1);
}

static void test_server_closes_one_stream(void **state)
{
    fixture_t *f = *state;
    char n0[64], n1[64];
    xb_request_id_t r, r2;
    const char *err = "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                      "</stream:error>";

    create_multi(f, 3, n0);
    add_second(f, RID0 + 1, n1);
    r = send_req(f, RID0 + 2, NULL, T0 + SEC(3));
    xb_bosh_session_stream_closed(f->s, 1, XB_COND_REMOTE_STREAM_ERROR, err, strlen(err),
                                  T0 + SEC(4));
    assert_contains(answer_for(f, r)->body, "type='terminate'");
    assert_contains(answer_for(f, r)->body, "condition='remote-stream-error'");
    assert_contains(answer_for(f, r)->body, "<conflict");
    assert_string_equal(stream_attr(answer_for(f, r)), n1);
    assert_false(xb_bosh_session_is_finished(f->s));
    r2 = send_req(f, RID0 + 3, NULL, T0 + SEC(5));
    server(f, "<message id='s0'/>", T0 + SEC(6));
    assert_contains(answer_for(f, r2)->body, "id='s0'");
    assert_string_equal(stream_attr(answer_for(f, r2)), n0);
    /* The last stream's end is the session's. */
    xb_bosh_session_stream_closed(f->s, 0, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0,
                                  T0 + SEC(7));
    r = send_req(f, RID0 + 4, NULL, T0 + SEC(8));
    assert_contains(answer_for(f, r)->body, "condition='remote-connection-failed'");
    assert_true(xb_bosh_session_is_finished(f->s));
}

static void test_restart_per_stream(void **state)
{
    fixture_t *f = *state;
    char n0[64], n1[64];
    xb_bosh_body_t b;
    xb_request_id_t r;

    create_multi(f, 3, n0);
    add_second(f, RID0 + 1, n1);
    b = make_body(RID0 + 2, NULL);
    b.restart = 1;
    b.to = "other.example";
    b.stream = n1;
    send_body(f, &b, T0 + SEC(3));
    assert_int_equal(f->rec.stream_restarts[1], 1);
    assert_int_equal(f->rec.stream_restarts[0], 0);
    /* Which one, with two open? */
    b = make_body(RID0 + 3, NULL);
    b.restart = 1;
    b.to = "example.com";
    r = send_body(f, &b, T0 + SEC(4));
    assert_contains(answer_for(f, r)->body, "condition='bad-request'");
    assert_int_equal(f->rec.restarts, 1);
}

static void test_add_stream_refused(void **state)
{
    fixture_t *f = *state;
    char n0[64], n1[64];
    xb_request_id_t r, r2;

    create_multi(f, 2, n0);
    f->rec.refuse = XB_COND_HOST_UNKNOWN;
    r = add_stream_req(f, RID0 + 1, "unknown.example", T0 + SEC(1));
    assert_contains(answer_for(f, r)->body, "condition='host-unknown'");
    assert_int_equal(strlen(stream_attr(answer_for(f, r))), 32);
    assert_string_not_equal(stream_attr(answer_for(f, r)), n0);
    assert_false(xb_bosh_session_is_finished(f->s));
    f->rec.refuse = XB_COND_NONE;
    f->rec.opened[1] = 0; /* the refused one had asked for slot 1 too */
    rec_clear(&f->rec);
    add_second(f, RID0 + 2, n1);
    /* XmppBridgeMaxStreams 2: a third is refused, stream-scoped. */
    r2 = add_stream_req(f, RID0 + 3, "third.example", T0 + SEC(3));
    assert_contains(answer_for(f, r2)->body, "condition='policy-violation'");
    assert_false(xb_bosh_session_is_finished(f->s));
    assert_int_equal(xb_bosh_session_stream_count(f->s), 2);
}

/* A poll held beside an add-stream request is no §11 overactivity: add-stream is not a poll. */
static void test_add_stream_beside_poll(void **state)
{
    fixture_t *f = *state;
    char n0[64];
    xb_request_id_t r1, r2;

    create_multi(f, 3, n0);
    r1 = send_req(f, RID0 + 1, NULL, T0 + SEC(1));
    r2 = add_stream_req(f, RID0 + 2, "other.example", T0 + SEC(1));
    assert_non_null(answer_for(f, r1)); /* hold 1: the poll answered */
    assert_not_contains(answer_for(f, r1)->body, "condition=");
    assert_null(answer_for(f, r2));
    assert_false(xb_bosh_session_is_finished(f->s));
    /* Its wait runs out before the features: answered empty, but naming the stream. */
    xb_bosh_session_tick(f->s, T0 + SEC(31));
    assert_int_equal(strlen(stream_attr(answer_for(f, r2))), 32);
    assert_contains(answer_for(f, r2)->body, "from='other.example'");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_creation_held_until_features),
        T(test_undelivered_answer_outlives_cache),
        T(test_prebound_attach_grace_then_inactivity),
        T(test_prebound_unattached_session_ends_at_grace),
        T(test_creation_payload_forwarded),
        T(test_creation_empty_at_wait),
        T(test_negotiated_limits),
        T(test_polling_session),
        T(test_hold1_new_request_answers_older),
        T(test_data_while_held),
        T(test_data_queued_until_next_request),
        T(test_wait_expiry),
        T(test_hold2_data_answers_oldest),
        T(test_out_of_order_processed_in_rid_order),
        T(test_early_request_wait_is_abandoned),
        T(test_early_request_sent_twice),
        T(test_out_of_window_item_not_found),
        T(test_replay_cached_identical),
        T(test_replay_below_cache_item_not_found),
        T(test_resend_of_held_rid),
        T(test_resend_after_request_gone),
        T(test_release),
        T(test_restart),
        T(test_client_terminate),
        T(test_inactivity),
        T(test_inactivity_restarts_with_each_request),
        T(test_server_closed_with_held_request),
        T(test_server_closed_two_held),
        T(test_server_closed_nobody_held),
        T(test_server_closed_nobody_then_inactivity),
        T(test_remote_stream_error_queued),
        T(test_remote_stream_error_held),
        T(test_legacy_client_http_404),
        T(test_legacy_client_server_condition_is_200),
        T(test_request_without_rid_bad_request),
        T(test_backpressure),
        T(test_request_after_finish),
        T(test_long_run_memory_bounded),
        T(test_replay_limit),
        T(test_replay_limit_held_and_unlimited),
        T(test_replay_unlimited),
        T(test_key_sequence_and_switch),
        T(test_key_missing_or_wrong),
        T(test_key_wrong_value),
        T(test_key_case_insensitive),
        T(test_key_replay_not_checked_again),
        T(test_key_out_of_order_checked_in_rid_order),
        T(test_pause),
        T(test_pause_shorter_than_inactivity),
        T(test_pause_too_long),
        T(test_pause_not_offered),
        T(test_overactivity_too_many_requests),
        T(test_overactivity_terminate_may_exceed),
        T(test_overactivity_empty_within_polling),
        T(test_overactivity_empty_after_polling_ok),
        T(test_empty_request_beside_data_request_is_fine),
        T(test_polling_session_too_fast),
        T(test_polling_session_data_resets),
        T(test_short_wait_long_poll_is_not_polling),
        T(test_strophe_pattern_never_overactive),
        T(test_strophe_pattern_prebound),
        T(test_acks),
        T(test_no_acks_without_ack_at_creation),
        T(test_ack_report),
        T(test_acks_keep_unacked_drop_acked),
        T(test_creation_attributes),
        T(test_content_absent),
        T(test_terminate_hold2),
        T(test_bounce_queued_at_inactivity),
        T(test_no_bounce_for_delivered),
        T(test_bounce_answer_never_fetched),
        T(test_no_bounce_after_refetch),
        T(test_bounce_on_client_terminate_without_held),
        T(test_gateway_end_bounces_without_live_request),
        T(test_gateway_end_delivers_to_live_request),
        T(test_gateway_end_with_detail),
        T(test_no_bounce_when_server_closed),
        T(test_streams_off_by_default),
        T(test_add_stream_and_route),
        T(test_answer_never_mixes_streams),
        T(test_unknown_stream_item_not_found),
        T(test_client_closes_one_stream),
        T(test_server_closes_one_stream),
        T(test_restart_per_stream),
        T(test_add_stream_refused),
        T(test_add_stream_beside_poll),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
