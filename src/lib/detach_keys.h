/* The detach key sequence of `cocoon attach` (docker's --detach-keys format): parsed
 * from "ctrl-p,ctrl-q" style text and matched in the bytes typed on stdin, which are
 * passed on except the sequence itself. */
#ifndef COCOON_LIB_DETACH_KEYS_H
#define COCOON_LIB_DETACH_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define DETACH_KEYS_MAX 16 /* keys in a sequence */
#define DETACH_KEYS_DEFAULT "ctrl-p,ctrl-q"

struct detach_keys {
    uint8_t seq[DETACH_KEYS_MAX];
    size_t len;     /* 0: no sequence, nothing detaches */
    size_t matched; /* bytes of seq typed so far (held back) */
};

/* "" gives no sequence; otherwise keys separated by ',': one printable ASCII character,
 * or "ctrl-X" with X a letter or one of @ [ \ ] ^ _. -1 with a message in err. */
int detach_keys_parse(const char *spec, struct detach_keys *k, char *err, size_t cap);
/* Takes n typed bytes; appends what goes on to the command at out + *out_len (room for
 * n + DETACH_KEYS_MAX bytes). 1 when the sequence was completed (the bytes after it
 * are not used), else 0. Bytes that may start the sequence are held until it is clear. */
int detach_keys_feed(struct detach_keys *k, const uint8_t *in, size_t n, uint8_t *out, size_t *out_len);
/* Input ended: the held bytes go out after all (room for DETACH_KEYS_MAX). */
void detach_keys_flush(struct detach_keys *k, uint8_t *out, size_t *out_len);

#endif
