/* Shared by the libFuzzer harnesses in test/fuzz/: APR set up once, a pool per input, a silent
 * log binding that still formats every message (so a bad %s argument is seen by ASan), a
 * deterministic byte source for split points and small choices, and a check that aborts
 * (libFuzzer records an abort as a crash with its input).
 */
#ifndef XB_FUZZ_COMMON_H
#define XB_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "xb_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant a harness checks: a violation is a finding, reported like a crash. */
#define FUZZ_CHECK(cond)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__,        \
                    __LINE__);                                                              \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static apr_pool_t *fuzz_root_pool;

static inline void fuzz_log_print(void *baton, const char *file, int line, int level,
                           const char *msg)
{
    /* Read the whole message: a message built from a non-terminated string shows up here. */
    volatile size_t n = strlen(msg) + strlen(file);
    (void)baton;
    (void)line;
    (void)level;
    (void)n;
}

static inline int fuzz_log_is_level(void *baton, int level)
{
    (void)baton;
    (void)level;
    return 1; /* every message is formatted, none is printed */
}

static inline void fuzz_setup(void)
{
    if (fuzz_root_pool) {
        return;
    }
    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&fuzz_root_pool, NULL) != APR_SUCCESS) {
        abort();
    }
    xb_log_bind(fuzz_log_print, fuzz_log_is_level, NULL);
}

/* A pool for one input; destroyed by fuzz_pool_done so that leaks are per input. */
static inline apr_pool_t *fuzz_pool(void)
{
    apr_pool_t *p;

    fuzz_setup();
    if (apr_pool_create(&p, fuzz_root_pool) != APR_SUCCESS) {
        abort();
    }
    return p;
}

static inline void fuzz_pool_done(apr_pool_t *p)
{
    apr_pool_destroy(p);
}

/* Touches every byte (ASan reports a read of freed or foreign memory at once). */
static inline unsigned fuzz_touch(const void *data, size_t len)
{
    const unsigned char *d = data;
    unsigned sum = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        sum = sum * 31u + d[i];
    }
    return sum;
}

/* A small deterministic generator seeded from input bytes: split points and choices, so a
 * crashing input replays exactly. */
typedef struct {
    uint32_t state;
} fuzz_rng_t;

static inline void fuzz_rng_seed(fuzz_rng_t *r, uint32_t seed)
{
    r->state = seed * 2654435761u + 0x9e3779b9u;
}

static inline uint32_t fuzz_rng_next(fuzz_rng_t *r)
{
    /* xorshift32 */
    uint32_t x = r->state ? r->state : 0x12345678u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    r->state = x;
    return x;
}

/* A chunk length in 1..max, biased to small ones (1-byte feeds are the interesting ones). */
static inline size_t fuzz_chunk(fuzz_rng_t *r, size_t remaining, size_t max)
{
    uint32_t v = fuzz_rng_next(r);
    size_t n;

    switch (v & 3u) {
    case 0:
        n = 1;
        break;
    case 1:
        n = 1 + (v >> 8) % 8;
        break;
    case 2:
        n = 1 + (v >> 8) % 64;
        break;
    default:
        n = 1 + (v >> 8) % (max ? max : 1);
        break;
    }
    return n < remaining ? n : remaining;
}

/* A NUL-terminated copy of `len` bytes (for APIs that take C strings). */
static inline char *fuzz_strndup(apr_pool_t *p, const uint8_t *data, size_t len)
{
    char *s = apr_palloc(p, len + 1);

    memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

/* Splits off the next field ending at `sep` (or the end); returns 0 when nothing is left. */
static inline int fuzz_next_field(const uint8_t **data, size_t *size, uint8_t sep, const uint8_t **field,
                           size_t *field_len)
{
    const uint8_t *end;

    if (!*data) {
        return 0;
    }
    end = memchr(*data, sep, *size);
    *field = *data;
    if (end) {
        *field_len = (size_t)(end - *data);
        *size -= *field_len + 1;
        *data = end + 1;
    }
    else {
        *field_len = *size;
        *data = NULL;
        *size = 0;
    }
    return 1;
}

#endif
