/* A YAML document as a tree of cfg_node (config.h), read from libyaml's events. Only
 * what a config file needs survives: anchors, aliases, tags, complex keys, duplicate
 * keys and a second document are refused, and the file's size, its nesting and its
 * number of nodes are bounded, so a hostile file costs bounded memory and time. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "util/dl_yaml.h"

struct reader {
    const char *file;
    char *err;
    size_t errlen;
    struct cfg_node *stack[CONFIG_DEPTH_MAX + 1];
    unsigned depth;
    size_t nodes;
    struct cfg_node *root;
    int documents;
};

static int fail_at(struct reader *r, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(struct reader *r, unsigned line, unsigned col, const char *fmt, ...)
{
    int n = snprintf(r->err, r->errlen, "%s:%u:%u: ", r->file, line, col);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < r->errlen)
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

void cfg_node_free(struct cfg_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        cfg_node_free(n->items[i]);
    free(n->items);
    free(n->text);
    free(n);
}

static int append(struct cfg_node *parent, struct cfg_node *child)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        struct cfg_node **grown = realloc(parent->items, cap * sizeof(*grown));
        if (!grown)
            return -1;
        parent->items = grown;
        parent->cap = cap;
    }
    parent->items[parent->n++] = child;
    return 0;
}

/* Anchors, tags and aliases make a file mean more than it shows; the schema needs none. */
static int refuse_decorations(struct reader *r, const yaml_event_t *ev, const unsigned char *anchor,
                              const unsigned char *tag)
{
    unsigned line = (unsigned)ev->start_mark.line + 1, col = (unsigned)ev->start_mark.column + 1;
    if (anchor)
        return fail_at(r, line, col, "anchor &%.100s: anchors and aliases are not accepted (write the value out)",
                       (const char *)anchor);
    if (tag)
        return fail_at(r, line, col, "tag %.100s: tags are not accepted (write a plain value)", (const char *)tag);
    return 0;
}

/* A new node at the current place: the root, or an item of the open collection. */
static struct cfg_node *add_node(struct reader *r, const yaml_event_t *ev, enum cfg_kind kind)
{
    unsigned line = (unsigned)ev->start_mark.line + 1, col = (unsigned)ev->start_mark.column + 1;
    if (++r->nodes > CONFIG_NODES_MAX) {
        fail_at(r, line, col, "more than %u values in the file", CONFIG_NODES_MAX);
        return NULL;
    }
    struct cfg_node *parent = r->depth ? r->stack[r->depth - 1] : NULL;
    if (parent && parent->kind == CFG_MAP && parent->n % 2 == 0 && kind != CFG_SCALAR) {
        fail_at(r, line, col, "a key must be a plain name, not a %s", kind == CFG_MAP ? "mapping" : "list");
        return NULL;
    }
    struct cfg_node *n = calloc(1, sizeof(*n));
    if (!n) {
        fail_at(r, line, col, "out of memory");
        return NULL;
    }
    n->kind = kind;
    n->line = line;
    n->col = col;
    if (!parent) {
        r->root = n;
    } else if (append(parent, n) < 0) {
        free(n);
        fail_at(r, line, col, "out of memory");
        return NULL;
    }
    return n;
}

static int cmp_keys(const void *a, const void *b)
{
    const struct cfg_node *x = *(struct cfg_node *const *)a, *y = *(struct cfg_node *const *)b;
    size_t l = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->text, y->text, l);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    /* equal keys: by position, so the later one is reported as the duplicate */
    return x->line != y->line ? (x->line < y->line ? -1 : 1) : (x->col < y->col ? -1 : x->col > y->col);
}

/* Sorted once the mapping is complete: n log n, whatever a hostile file holds. */
static int check_duplicates(struct reader *r, const struct cfg_node *map)
{
    size_t nkeys = map->n / 2;
    if (nkeys < 2)
        return 0;
    const struct cfg_node **keys = malloc(nkeys * sizeof(*keys));
    if (!keys)
        return fail_at(r, map->line, map->col, "out of memory");
    for (size_t i = 0; i < nkeys; i++)
        keys[i] = map->items[2 * i];
    qsort(keys, nkeys, sizeof(*keys), cmp_keys);
    int rc = 0;
    for (size_t i = 1; i < nkeys && rc == 0; i++)
        if (keys[i]->len == keys[i - 1]->len && !memcmp(keys[i]->text, keys[i - 1]->text, keys[i]->len))
            rc = fail_at(r, keys[i]->line, keys[i]->col, "duplicate key \"%.100s\" (first at line %u, column %u)",
                         keys[i]->text, keys[i - 1]->line, keys[i - 1]->col);
    free(keys);
    return rc;
}

static int on_scalar(struct reader *r, const yaml_event_t *ev)
{
    if (refuse_decorations(r, ev, ev->data.scalar.anchor, ev->data.scalar.tag) < 0)
        return -1;
    struct cfg_node *n = add_node(r, ev, CFG_SCALAR);
    if (!n)
        return -1;
    n->len = ev->data.scalar.length;
    n->text = malloc(n->len + 1);
    if (!n->text)
        return fail_at(r, n->line, n->col, "out of memory");
    memcpy(n->text, ev->data.scalar.value, n->len);
    n->text[n->len] = 0;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    const struct cfg_node *parent = r->stack[r->depth ? r->depth - 1 : 0];
    if (r->depth && parent->kind == CFG_MAP && parent->n % 2 == 1 && memchr(n->text, 0, n->len))
        return fail_at(r, n->line, n->col, "a key holds a NUL character");
    return 0;
}

static int on_open(struct reader *r, const yaml_event_t *ev, enum cfg_kind kind)
{
    const unsigned char *anchor = kind == CFG_MAP ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    const unsigned char *tag = kind == CFG_MAP ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
    if (refuse_decorations(r, ev, anchor, tag) < 0)
        return -1;
    if (r->depth >= CONFIG_DEPTH_MAX)
        return fail_at(r, (unsigned)ev->start_mark.line + 1, (unsigned)ev->start_mark.column + 1,
                       "nested more than %u levels deep", CONFIG_DEPTH_MAX);
    struct cfg_node *n = add_node(r, ev, kind);
    if (!n)
        return -1;
    r->stack[r->depth++] = n;
    return 0;
}

static int on_event(struct reader *r, const yaml_event_t *ev)
{
    unsigned line = (unsigned)ev->start_mark.line + 1, col = (unsigned)ev->start_mark.column + 1;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++r->documents > 1)
            return fail_at(r, line, col, "a second document: a config file holds one");
        if (ev->data.document_start.tag_directives.start != ev->data.document_start.tag_directives.end)
            return fail_at(r, line, col, "%%TAG directives are not accepted");
        return 0;
    case YAML_ALIAS_EVENT:
        return fail_at(r, line, col, "alias *%.100s: anchors and aliases are not accepted (write the value out)",
                       (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT: return on_scalar(r, ev);
    case YAML_MAPPING_START_EVENT: return on_open(r, ev, CFG_MAP);
    case YAML_SEQUENCE_START_EVENT: return on_open(r, ev, CFG_SEQ);
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT: {
        if (!r->depth)
            return fail_at(r, line, col, "unbalanced end of a collection");
        struct cfg_node *n = r->stack[--r->depth];
        return n->kind == CFG_MAP ? check_duplicates(r, n) : 0;
    }
    default: return 0;
    }
}

int cfg_yaml_read(const char *text, size_t len, const char *file, struct cfg_node **root, char *err, size_t errlen)
{
    struct reader r = {.file = file, .err = err, .errlen = errlen};
    *root = NULL;
    if (len > CONFIG_FILE_MAX) {
        snprintf(err, errlen, "%s: %zu bytes: a config file may have at most %u bytes", file, len, CONFIG_FILE_MAX);
        return -1;
    }
    if (memchr(text, 0, len)) {
        snprintf(err, errlen, "%s: holds a NUL byte: not a text file", file);
        return -1;
    }
    char why[512];
    if (dl_yaml_load(why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", file, why);
        return -1;
    }
    yaml_parser_t parser;
    if (!sym_yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", file);
        return -1;
    }
    sym_yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = 0, done = 0;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!sym_yaml_parser_parse(&parser, &ev)) {
            const char *problem = parser.problem ? parser.problem : "malformed YAML";
            if (parser.context)
                rc = fail_at(&r, (unsigned)parser.problem_mark.line + 1, (unsigned)parser.problem_mark.column + 1,
                             "YAML syntax: %s %s", parser.context, problem);
            else
                rc = fail_at(&r, (unsigned)parser.problem_mark.line + 1, (unsigned)parser.problem_mark.column + 1,
                             "YAML syntax: %s", problem);
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(&r, &ev);
        sym_yaml_event_delete(&ev);
    }
    sym_yaml_parser_delete(&parser);
    if (rc < 0) {
        cfg_node_free(r.root);
        return -1;
    }
    *root = r.root;
    return 0;
}
