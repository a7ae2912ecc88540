/* Unit tests for XEP-0124 §15 key sequencing (src/xb_bosh_key.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <ctype.h>
#include <string.h>
#include <cmocka.h>

#include "xb_bosh_key.h"

/* The checklist's vector (shared/references/bosh-anchors.md §5): seed `bosh-test-seed`, n=3. */
#define SEED "bosh-test-seed"
#define K1 "e509dc2b2747d7f6100e2e059ad91a329fe77181"
#define K2 "dec2904f0f062f4eca2c5d367dc868c3bfeb90bd"
#define K3 "d583ba24c90d5c3eef28735c57d66a45088c32ca"

static void test_vector(void **state)
{
    char k[XB_BOSH_KEY_HEX_LEN + 1];

    (void)state;
    xb_bosh_key_hash(SEED, k);
    assert_string_equal(k, K1);
    xb_bosh_key_hash(K1, k);
    assert_string_equal(k, K2);
    xb_bosh_key_hash(K2, k);
    assert_string_equal(k, K3);
    /* The client spends K(n-1) after newkey K(n), and so on down to K(1). */
    assert_true(xb_bosh_key_matches(K2, K3));
    assert_true(xb_bosh_key_matches(K1, K2));
    assert_true(xb_bosh_key_matches(SEED, K1));
}

static void test_case_insensitive_expected(void **state)
{
    (void)state;
    assert_true(xb_bosh_key_matches(K2, "D583BA24C90D5C3EEF28735C57D66A45088C32CA"));
    assert_true(xb_bosh_key_matches(K2, "d583BA24c90d5c3eef28735c57d66a45088c32ca"));
}

/* A lower-case chain sent in upper case: the same hex values (the conformance suite's §15d). */
static void test_upper_case_key(void **state)
{
    char upper[XB_BOSH_KEY_HEX_LEN + 1];
    size_t i;

    (void)state;
    for (i = 0; i <= XB_BOSH_KEY_HEX_LEN; i++) {
        upper[i] = (char)toupper((unsigned char)K2[i]);
    }
    assert_true(xb_bosh_key_matches(upper, K3));
    assert_true(xb_bosh_key_matches(upper, "D583BA24C90D5C3EEF28735C57D66A45088C32CA"));
    upper[0] = upper[0] == 'A' ? 'B' : 'A';
    assert_false(xb_bosh_key_matches(upper, K3));
}

static void test_mismatch(void **state)
{
    (void)state;
    assert_false(xb_bosh_key_matches(K3, K3)); /* the newkey itself is not the next key */
    assert_false(xb_bosh_key_matches(K1, K3)); /* skipping a key */
    assert_false(xb_bosh_key_matches(K3, K2)); /* going the wrong way */
    assert_false(xb_bosh_key_matches("", K3));
    assert_false(xb_bosh_key_matches(NULL, K3));
    assert_false(xb_bosh_key_matches(K2, NULL));
    assert_false(xb_bosh_key_matches(K2, "d583ba24"));                   /* short */
    assert_false(xb_bosh_key_matches(K2, K3 "0"));                       /* long */
    assert_false(xb_bosh_key_matches(K2, "e583ba24c90d5c3eef28735c57d66a45088c32ca"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_case_insensitive_expected),
        cmocka_unit_test(test_upper_case_key),
        cmocka_unit_test(test_mismatch),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
