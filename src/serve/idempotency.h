/* Idempotency-Key on creates: a client retrying a create it is unsure about gets the box
 * the first attempt made instead of a second box. Kept in memory (a restart of the
 * server forgets the keys), bounded, for a day. */
#ifndef COCOON_SERVE_IDEMPOTENCY_H
#define COCOON_SERVE_IDEMPOTENCY_H

#include <stddef.h>

#define IDEMPOTENCY_KEYS_MAX 4096
#define IDEMPOTENCY_TTL_S (24 * 3600)
#define IDEMPOTENCY_KEY_MAX 255

/* 0: key unknown (or NULL, or too long): it is now claimed by this request, which must
 * call idempotency_finish; 1: a create with the same body made the box in out; -1: the
 * key came with another body. A request with a key claimed by another one in progress
 * waits for it to finish. */
int idempotency_claim(const char *key, const char *body, size_t len, char *out, size_t cap);
/* Ends a claim: box_id is what the create made, NULL when it failed (the key is free
 * again). */
void idempotency_finish(const char *key, const char *box_id);

#endif
