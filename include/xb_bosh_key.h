/* XEP-0124 §15 key sequencing: K(i) = hex(SHA-1(K(i-1))), the client spends the keys
 * backwards, the connection manager checks each against the one before it. */
#ifndef XB_BOSH_KEY_H
#define XB_BOSH_KEY_H

#include <apr_pools.h>

#define XB_BOSH_KEY_HEX_LEN 40 /* a SHA-1 in hex */

/* hex(SHA-1(key)), lower case, into out[XB_BOSH_KEY_HEX_LEN + 1]. */
void xb_bosh_key_hash(const char *key, char out[XB_BOSH_KEY_HEX_LEN + 1]);

/* True when hex(SHA-1(key)) equals `expected` (the previous request's newkey or key), hex
 * digits compared case-insensitively; the key is hashed as sent and, for a 40-digit key, also
 * in lower case (the same hex value spelt in upper case). False for NULL or a wrong length.
 * Constant time in the key's content. */
int xb_bosh_key_matches(const char *key, const char *expected);

#endif
