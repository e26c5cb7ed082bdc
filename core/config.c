/* config.c — the protobuf text-format parser (Caffe's model and solver file
 * syntax) that builds a cnn_cfg tree, and the typed accessors that read
 * fields, check their kinds and ranges, and mark them used so that unknown
 * or unread fields can be reported with their file:line:column.
 *
 * The parser knows no schema: every field becomes a node holding its key and,
 * for scalars, the value as written (strings decoded). Repeated fields are
 * sibling nodes in file order; the list form `f: [1, 2]` becomes siblings
 * too. Kinds and ranges are checked when a getter reads the field. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define CFG_MAX_DEPTH 100 /* deepest message nesting accepted */

/* ---- lexer -------------------------------------------------------------- */

typedef enum { TK_EOF, TK_IDENT, TK_NUMBER, TK_STRING, TK_SYM } tok_type;

typedef struct {
    tok_type type;
    const char *p; /* raw text of the token */
    size_t n;
    int line, col;
} token;

typedef struct {
    const char *p, *end;   /* unread input */
    const char *line_start;
    int line;
    const char *file;      /* name for messages */
    token tok;             /* the current token */
    char *str;             /* decoded text of the current TK_STRING */
    size_t slen, scap;
} lexer;

static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_alnum(int c) { return is_alpha(c) || is_digit(c); }
static bool is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static int hex_val(int c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

static cnn_status parse_error(const lexer *lx, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static cnn_status parse_error(const lexer *lx, int line, int col, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return CNN_ERROR(CNN_ERR_PARSE, "%s:%d:%d: %s", lx->file, line, col, msg);
}

static int lex_col(const lexer *lx, const char *at)
{
    size_t c = (size_t)(at - lx->line_start) + 1;
    return c > INT_MAX ? INT_MAX : (int)c;
}

/* Writes a printable, shortened form of the current token into buf. */
static const char *tok_desc(const lexer *lx, char *buf, size_t n)
{
    const token *t = &lx->tok;
    switch (t->type) {
    case TK_EOF: snprintf(buf, n, "end of file"); break;
    case TK_STRING: snprintf(buf, n, "a string"); break;
    default: snprintf(buf, n, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p); break;
    }
    return buf;
}

static cnn_status str_put(lexer *lx, const char *s, size_t n)
{
    if (lx->slen + n + 1 > lx->scap) {
        size_t cap = lx->scap ? lx->scap : 64;
        while (cap < lx->slen + n + 1) cap *= 2;
        char *p = realloc(lx->str, cap);
        if (!p) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory reading '%s'", lx->file);
        lx->str = p;
        lx->scap = cap;
    }
    memcpy(lx->str + lx->slen, s, n);
    lx->slen += n;
    lx->str[lx->slen] = 0;
    return CNN_OK;
}

/* Appends code point u as UTF-8. */
static cnn_status str_put_utf8(lexer *lx, unsigned long u)
{
    char b[4];
    size_t n;
    if (u < 0x80) {
        b[0] = (char)u;
        n = 1;
    } else if (u < 0x800) {
        b[0] = (char)(0xC0 | (u >> 6));
        b[1] = (char)(0x80 | (u & 0x3F));
        n = 2;
    } else if (u < 0x10000) {
        b[0] = (char)(0xE0 | (u >> 12));
        b[1] = (char)(0x80 | ((u >> 6) & 0x3F));
        b[2] = (char)(0x80 | (u & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (u >> 18));
        b[1] = (char)(0x80 | ((u >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((u >> 6) & 0x3F));
        b[3] = (char)(0x80 | (u & 0x3F));
        n = 4;
    }
    return str_put(lx, b, n);
}

/* Decodes the escape sequence at lx->p (just past the backslash at `bs`). */
static cnn_status lex_escape(lexer *lx, const char *bs)
{
    int col = lex_col(lx, bs);
    if (lx->p >= lx->end) return parse_error(lx, lx->line, col, "unterminated string");
    char c = *lx->p++;
    const char *simple = "a\ab\bf\fn\nr\rt\tv\v\\\\''\"\"??";
    for (const char *s = simple; *s; s += 2)
        if (c == s[0]) return str_put(lx, s + 1, 1);
    unsigned long v = 0;
    if (c >= '0' && c <= '7') {
        v = (unsigned long)(c - '0');
        for (int i = 0; i < 2 && lx->p < lx->end && *lx->p >= '0' && *lx->p <= '7'; i++)
            v = v * 8 + (unsigned long)(*lx->p++ - '0');
        if (v > 255)
            return parse_error(lx, lx->line, col, "octal escape '\\%.*s' is above \\377",
                               (int)(lx->p - bs - 1), bs + 1);
    } else if (c == 'x' || c == 'X') {
        int i = 0;
        for (; i < 2 && lx->p < lx->end && is_hex(*lx->p); i++)
            v = v * 16 + (unsigned long)hex_val(*lx->p++);
        if (i == 0) return parse_error(lx, lx->line, col, "'\\x' needs hex digits");
    } else if (c == 'u' || c == 'U') {
        int want = c == 'u' ? 4 : 8;
        for (int i = 0; i < want; i++) {
            if (lx->p >= lx->end || !is_hex(*lx->p))
                return parse_error(lx, lx->line, col, "'\\%c' needs %d hex digits", c, want);
            v = v * 16 + (unsigned long)hex_val(*lx->p++);
        }
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            return parse_error(lx, lx->line, col, "'\\%c' escape is not a valid code point", c);
        if (v == 0)
            return parse_error(lx, lx->line, col, "NUL characters in strings are not supported");
        return str_put_utf8(lx, v);
    } else if (c == '\n') {
        return parse_error(lx, lx->line, col, "unterminated string (strings cannot span lines)");
    } else {
        if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7F)
            return parse_error(lx, lx->line, col, "unknown escape sequence '\\%c'", c);
        return parse_error(lx, lx->line, col, "unknown escape sequence (byte 0x%02X)",
                           (unsigned char)c);
    }
    if (v == 0)
        return parse_error(lx, lx->line, col, "NUL characters in strings are not supported");
    char b = (char)v;
    return str_put(lx, &b, 1);
}

static cnn_status lex_string(lexer *lx)
{
    const char *start = lx->p;
    char quote = *lx->p++;
    cnn_status st;
    lx->slen = 0;
    if ((st = str_put(lx, "", 0)) != CNN_OK) return st;
    for (;;) {
        if (lx->p >= lx->end) return parse_error(lx, lx->tok.line, lx->tok.col,
                                                 "unterminated string (missing %c)", quote);
        const char *run = lx->p;
        while (lx->p < lx->end && *lx->p != quote && *lx->p != '\\' && *lx->p != '\n' &&
               *lx->p != 0)
            lx->p++;
        if ((st = str_put(lx, run, (size_t)(lx->p - run))) != CNN_OK) return st;
        if (lx->p >= lx->end) continue;
        char c = *lx->p;
        if (c == quote) {
            lx->p++;
            break;
        }
        if (c == '\n')
            return parse_error(lx, lx->tok.line, lx->tok.col,
                               "unterminated string (missing %c before end of line)", quote);
        if (c == 0)
            return parse_error(lx, lx->line, lex_col(lx, lx->p), "NUL byte inside a string");
        const char *bs = lx->p++;
        if ((st = lex_escape(lx, bs)) != CNN_OK) return st;
    }
    lx->tok.type = TK_STRING;
    lx->tok.n = (size_t)(lx->p - start);
    return CNN_OK;
}

static cnn_status lex_number(lexer *lx)
{
    const char *s = lx->p, *q;
    if (*s == '0' && s + 1 < lx->end && (s[1] == 'x' || s[1] == 'X')) {
        lx->p += 2;
        for (q = lx->p; lx->p < lx->end && is_hex(*lx->p);) lx->p++;
        if (lx->p == q)
            return parse_error(lx, lx->tok.line, lx->tok.col, "'0x' needs hex digits");
    } else {
        while (lx->p < lx->end && is_digit(*lx->p)) lx->p++;
        if (lx->p < lx->end && *lx->p == '.') {
            lx->p++;
            while (lx->p < lx->end && is_digit(*lx->p)) lx->p++;
        }
        if (lx->p < lx->end && (*lx->p == 'e' || *lx->p == 'E')) {
            lx->p++;
            if (lx->p < lx->end && (*lx->p == '+' || *lx->p == '-')) lx->p++;
            for (q = lx->p; lx->p < lx->end && is_digit(*lx->p);) lx->p++;
            if (lx->p == q)
                return parse_error(lx, lx->tok.line, lx->tok.col,
                                   "number '%.*s' has no exponent digits",
                                   (int)(lx->p - s > 40 ? 40 : lx->p - s), s);
        }
        if (lx->p < lx->end && (*lx->p == 'f' || *lx->p == 'F')) lx->p++;
    }
    if (lx->p < lx->end && (is_alnum(*lx->p) || *lx->p == '.')) {
        while (lx->p < lx->end && (is_alnum(*lx->p) || *lx->p == '.')) lx->p++;
        return parse_error(lx, lx->tok.line, lx->tok.col, "invalid number '%.*s'",
                           (int)(lx->p - s > 40 ? 40 : lx->p - s), s);
    }
    lx->tok.type = TK_NUMBER;
    lx->tok.n = (size_t)(lx->p - s);
    return CNN_OK;
}

/* Reads the next token into lx->tok. */
static cnn_status lex_next(lexer *lx)
{
    for (;;) {
        if (lx->p >= lx->end) break;
        char c = *lx->p;
        if (c == '\n') {
            lx->p++;
            lx->line += lx->line < INT_MAX;
            lx->line_start = lx->p;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
            lx->p++;
        } else if (c == '#') {
            while (lx->p < lx->end && *lx->p != '\n') lx->p++;
        } else {
            break;
        }
    }
    token *t = &lx->tok;
    t->p = lx->p;
    t->n = 0;
    t->line = lx->line;
    t->col = lex_col(lx, lx->p);
    if (lx->p >= lx->end) {
        t->type = TK_EOF;
        return CNN_OK;
    }
    unsigned char c = (unsigned char)*lx->p;
    if (is_alpha(c)) {
        while (lx->p < lx->end && is_alnum(*lx->p)) lx->p++;
        t->type = TK_IDENT;
        t->n = (size_t)(lx->p - t->p);
        return CNN_OK;
    }
    if (is_digit(c) || (c == '.' && lx->p + 1 < lx->end && is_digit(lx->p[1])))
        return lex_number(lx);
    if (c == '"' || c == '\'') return lex_string(lx);
    if (c && strchr("{}<>:,;[]-", c)) {
        lx->p++;
        t->type = TK_SYM;
        t->n = 1;
        return CNN_OK;
    }
    if (c == 0) return parse_error(lx, t->line, t->col, "unexpected NUL byte");
    if (c > 0x20 && c < 0x7F)
        return parse_error(lx, t->line, t->col, "unexpected character '%c'", c);
    return parse_error(lx, t->line, t->col, "unexpected byte 0x%02X", c);
}

static bool tok_sym(const lexer *lx, char c)
{
    return lx->tok.type == TK_SYM && lx->tok.p[0] == c;
}

/* inf, infinity and nan in any case: float values written as identifiers. */
static bool is_float_word(const char *p, size_t n)
{
    static const char *const words[] = {"inf", "infinity", "nan"};
    for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
        if (strlen(words[w]) != n) continue;
        size_t i = 0;
        while (i < n && (p[i] | 0x20) == words[w][i]) i++;
        if (i == n) return true;
    }
    return false;
}

/* ---- tree --------------------------------------------------------------- */

typedef struct {
    lexer lx;
    cnn_cfg *root;
    char *val; /* value being assembled (concatenated strings) */
    size_t vlen, vcap;
} parser;

static cnn_cfg *node_new(parser *ps, const char *key, size_t klen, cnn_cfg_kind kind,
                         const char *text, size_t tlen, int line, int col)
{
    cnn_cfg *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->key = malloc(klen + 1);
    n->text = text ? malloc(tlen + 1) : NULL;
    if (!n->key || (text && !n->text)) {
        free(n->key);
        free(n->text);
        free(n);
        return NULL;
    }
    memcpy(n->key, key, klen);
    n->key[klen] = 0;
    if (text) {
        memcpy(n->text, text, tlen);
        n->text[tlen] = 0;
    }
    n->kind = kind;
    n->file = ps ? ps->root->file : NULL;
    n->line = line;
    n->col = col;
    return n;
}

static void append(cnn_cfg *parent, cnn_cfg **last, cnn_cfg *n)
{
    n->parent = parent;
    if (*last)
        (*last)->next = n;
    else
        parent->child = n;
    *last = n;
}

void cnn_cfg_free(cnn_cfg *c)
{
    if (!c) return;
    bool root = c->parent == NULL;
    for (cnn_cfg *k = c->child, *nx; k; k = nx) {
        nx = k->next;
        k->parent = c; /* keeps children from freeing the root's file name */
        cnn_cfg_free(k);
    }
    if (root) free((char *)c->file);
    free(c->key);
    free(c->text);
    free(c);
}

/* ---- parser ------------------------------------------------------------- */

static cnn_status parse_fields(parser *ps, cnn_cfg *msg, char close, int depth);

static cnn_status val_put(parser *ps, const char *s, size_t n)
{
    if (ps->vlen + n + 1 > ps->vcap) {
        size_t cap = ps->vcap ? ps->vcap : 64;
        while (cap < ps->vlen + n + 1) cap *= 2;
        char *p = realloc(ps->val, cap);
        if (!p) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory reading '%s'", ps->lx.file);
        ps->val = p;
        ps->vcap = cap;
    }
    memcpy(ps->val + ps->vlen, s, n);
    ps->vlen += n;
    ps->val[ps->vlen] = 0;
    return CNN_OK;
}

/* Parses `{ ... }` or `< ... >` (current token is the opener) as field `key`. */
static cnn_status parse_message_value(parser *ps, cnn_cfg *parent, cnn_cfg **last,
                                      const char *key, int line, int col, int depth)
{
    lexer *lx = &ps->lx;
    if (depth >= CFG_MAX_DEPTH)
        return parse_error(lx, lx->tok.line, lx->tok.col,
                           "messages nested more than %d deep", CFG_MAX_DEPTH);
    cnn_cfg *n = node_new(ps, key, strlen(key), CNN_CFG_MESSAGE, NULL, 0, line, col);
    if (!n) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory reading '%s'", lx->file);
    append(parent, last, n);
    char close = lx->tok.p[0] == '{' ? '}' : '>';
    cnn_status st = lex_next(lx);
    if (st != CNN_OK) return st;
    return parse_fields(ps, n, close, depth + 1);
}

/* Parses one scalar value (current token is its first token) as field `key`
 * at line:col. */
static cnn_status parse_scalar_value(parser *ps, cnn_cfg *parent, cnn_cfg **last,
                                     const char *key, int line, int col)
{
    lexer *lx = &ps->lx;
    cnn_cfg_kind kind;
    cnn_status st;
    char what[64];
    ps->vlen = 0;
    if ((st = val_put(ps, "", 0)) != CNN_OK) return st;
    if (lx->tok.type == TK_STRING) {
        kind = CNN_CFG_STRING;
        while (lx->tok.type == TK_STRING) {
            if ((st = val_put(ps, lx->str, lx->slen)) != CNN_OK) return st;
            if ((st = lex_next(lx)) != CNN_OK) return st;
        }
    } else {
        if (tok_sym(lx, '-')) {
            if ((st = val_put(ps, "-", 1)) != CNN_OK) return st;
            if ((st = lex_next(lx)) != CNN_OK) return st;
            if (lx->tok.type != TK_NUMBER &&
                !(lx->tok.type == TK_IDENT && is_float_word(lx->tok.p, lx->tok.n)))
                return parse_error(lx, lx->tok.line, lx->tok.col,
                                   "expected a number after '-' for field '%s', got %s", key,
                                   tok_desc(lx, what, sizeof what));
        }
        if (lx->tok.type == TK_NUMBER) {
            kind = CNN_CFG_NUMBER;
        } else if (lx->tok.type == TK_IDENT) {
            kind = is_float_word(lx->tok.p, lx->tok.n) ? CNN_CFG_NUMBER : CNN_CFG_IDENT;
        } else {
            return parse_error(lx, lx->tok.line, lx->tok.col,
                               "expected a value for field '%s', got %s", key,
                               tok_desc(lx, what, sizeof what));
        }
        if ((st = val_put(ps, lx->tok.p, lx->tok.n)) != CNN_OK) return st;
        if ((st = lex_next(lx)) != CNN_OK) return st;
    }
    cnn_cfg *n = node_new(ps, key, strlen(key), kind, ps->val, ps->vlen, line, col);
    if (!n) return CNN_ERROR(CNN_ERR_MEMORY, "out of memory reading '%s'", lx->file);
    append(parent, last, n);
    return CNN_OK;
}

/* Parses `[v, v, ...]` (current token is '['); scalars only when `colon`. */
static cnn_status parse_list(parser *ps, cnn_cfg *parent, cnn_cfg **last, const char *key,
                             bool colon, int depth)
{
    lexer *lx = &ps->lx;
    int line = lx->tok.line, col = lx->tok.col;
    char what[64];
    cnn_status st = lex_next(lx);
    if (st != CNN_OK) return st;
    if (tok_sym(lx, ']')) return lex_next(lx);
    for (;;) {
        if (tok_sym(lx, '{') || tok_sym(lx, '<'))
            st = parse_message_value(ps, parent, last, key, lx->tok.line, lx->tok.col, depth);
        else if (colon)
            st = parse_scalar_value(ps, parent, last, key, lx->tok.line, lx->tok.col);
        else
            st = parse_error(lx, lx->tok.line, lx->tok.col,
                             "expected '{' in the list of messages '%s', got %s", key,
                             tok_desc(lx, what, sizeof what));
        if (st != CNN_OK) return st;
        if (tok_sym(lx, ']')) return lex_next(lx);
        if (!tok_sym(lx, ','))
            return parse_error(lx, lx->tok.line, lx->tok.col,
                               "expected ',' or ']' in the list '%s' opened at %d:%d, got %s",
                               key, line, col, tok_desc(lx, what, sizeof what));
        if ((st = lex_next(lx)) != CNN_OK) return st;
    }
}

/* Parses one field (current token is its name) and appends it to `msg`. */
static cnn_status parse_field(parser *ps, cnn_cfg *msg, cnn_cfg **last, int depth)
{
    lexer *lx = &ps->lx;
    int line = lx->tok.line, col = lx->tok.col;
    char key[256], what[64];
    if (lx->tok.n >= sizeof key)
        return parse_error(lx, line, col, "field name '%.40s...' is too long", lx->tok.p);
    memcpy(key, lx->tok.p, lx->tok.n);
    key[lx->tok.n] = 0;
    cnn_status st = lex_next(lx);
    if (st != CNN_OK) return st;
    bool colon = tok_sym(lx, ':');
    if (colon && (st = lex_next(lx)) != CNN_OK) return st;
    if (tok_sym(lx, '{') || tok_sym(lx, '<'))
        return parse_message_value(ps, msg, last, key, line, col, depth);
    if (tok_sym(lx, '[')) return parse_list(ps, msg, last, key, colon, depth);
    if (colon) return parse_scalar_value(ps, msg, last, key, line, col);
    return parse_error(lx, lx->tok.line, lx->tok.col,
                       "expected ':' or '{' after field name '%s', got %s", key,
                       tok_desc(lx, what, sizeof what));
}

/* Parses fields up to `close` ('}' or '>'), or to the end of input when 0. */
static cnn_status parse_fields(parser *ps, cnn_cfg *msg, char close, int depth)
{
    lexer *lx = &ps->lx;
    cnn_cfg *last = NULL;
    char what[64];
    cnn_status st;
    for (;;) {
        if (lx->tok.type == TK_EOF) {
            if (!close) return CNN_OK;
            return parse_error(lx, lx->tok.line, lx->tok.col,
                               "unexpected end of file: message '%s' opened at %d:%d has no "
                               "closing '%c'",
                               msg->key, msg->line, msg->col, close);
        }
        if (close && tok_sym(lx, close)) return lex_next(lx);
        if (tok_sym(lx, '}') || tok_sym(lx, '>')) {
            if (!close)
                return parse_error(lx, lx->tok.line, lx->tok.col,
                                   "unexpected '%c' with no open message", lx->tok.p[0]);
            return parse_error(lx, lx->tok.line, lx->tok.col,
                               "unexpected '%c': message '%s' opened at %d:%d needs '%c'",
                               lx->tok.p[0], msg->key, msg->line, msg->col, close);
        }
        if (lx->tok.type != TK_IDENT)
            return parse_error(lx, lx->tok.line, lx->tok.col, "expected a field name, got %s",
                               tok_desc(lx, what, sizeof what));
        if ((st = parse_field(ps, msg, &last, depth)) != CNN_OK) return st;
        if ((tok_sym(lx, ',') || tok_sym(lx, ';')) && (st = lex_next(lx)) != CNN_OK)
            return st;
    }
}

/* Parses len bytes of text into a new tree. */
static cnn_status parse_buffer(const char *text, size_t len, const char *name, cnn_cfg **out)
{
    cnn_status st = CNN_OK;
    parser ps = {0};
    *out = NULL;
    if (!name) name = "<string>";
    cnn_cfg *root = node_new(NULL, "", 0, CNN_CFG_MESSAGE, NULL, 0, 1, 1);
    char *file = strdup(name);
    if (!root || !file) {
        free(file);
        cnn_cfg_free(root);
        return CNN_ERROR(CNN_ERR_MEMORY, "out of memory reading '%s'", name);
    }
    root->file = file;
    root->used = true;
    ps.root = root;
    ps.lx.p = text;
    ps.lx.end = text + len;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) ps.lx.p += 3; /* UTF-8 byte order mark */
    ps.lx.line_start = ps.lx.p;
    ps.lx.line = 1;
    ps.lx.file = file;
    CNN_TRY(lex_next(&ps.lx));
    CNN_TRY(parse_fields(&ps, root, 0, 0));
    free(ps.lx.str);
    free(ps.val);
    *out = root;
    return CNN_OK;
fail:
    free(ps.lx.str);
    free(ps.val);
    cnn_cfg_free(root);
    return st;
}

cnn_status cnn_cfg_parse_string(const char *text, const char *name, cnn_cfg **out)
{
    if (!out) return CNN_ERROR(CNN_ERR_ARG, "cnn_cfg_parse_string: out is NULL");
    *out = NULL;
    if (!text) return CNN_ERROR(CNN_ERR_ARG, "cnn_cfg_parse_string: text is NULL");
    return parse_buffer(text, strlen(text), name, out);
}

cnn_status cnn_cfg_parse_file(const char *path, cnn_cfg **out)
{
    if (!out) return CNN_ERROR(CNN_ERR_ARG, "cnn_cfg_parse_file: out is NULL");
    *out = NULL;
    if (!path) return CNN_ERROR(CNN_ERR_ARG, "cnn_cfg_parse_file: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return CNN_ERROR(CNN_ERR_IO, "cannot open model file '%s': %s", path, strerror(errno));
    cnn_status st = CNN_OK;
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    if (!buf) {
        st = CNN_ERROR(CNN_ERR_MEMORY, "out of memory reading '%s'", path);
        goto fail;
    }
    for (;;) {
        if (len == cap) {
            char *p = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!p) {
                st = CNN_ERROR(CNN_ERR_MEMORY, "out of memory reading '%s'", path);
                goto fail;
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        st = CNN_ERROR(CNN_ERR_IO, "cannot read model file '%s': %s", path, strerror(errno));
        goto fail;
    }
    st = parse_buffer(buf, len, path, out);
fail:
    free(buf);
    fclose(f);
    return st;
}

/* ---- accessors ---------------------------------------------------------- */

cnn_status cnn_cfg_error(const cnn_cfg *f, cnn_status s, const char *fmt, ...)
{
    char msg[896];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!f) return CNN_ERROR(s, "%s", msg);
    return CNN_ERROR(s, "%s:%d:%d: %s", f->file ? f->file : "<config>", f->line, f->col, msg);
}

static bool key_is(const cnn_cfg *f, const char *key)
{
    return f->key && !strcmp(f->key, key);
}

int cnn_cfg_count(const cnn_cfg *m, const char *key)
{
    int n = 0;
    if (!m || !key) return 0;
    for (const cnn_cfg *c = m->child; c; c = c->next) n += key_is(c, key) && n < INT_MAX;
    return n;
}

cnn_cfg *cnn_cfg_nth(cnn_cfg *m, const char *key, int i)
{
    if (!m || !key || i < 0) return NULL;
    for (cnn_cfg *c = m->child; c; c = c->next) {
        if (key_is(c, key) && i-- == 0) {
            c->used = true;
            return c;
        }
    }
    return NULL;
}

cnn_cfg *cnn_cfg_get(cnn_cfg *m, const char *key) { return cnn_cfg_nth(m, key, 0); }

/* The only field `key` of m (marked used), NULL when absent; error when the
 * field appears more than once. */
static cnn_status get_single(cnn_cfg *m, const char *key, cnn_cfg **out)
{
    *out = NULL;
    if (!m || !key) return CNN_OK;
    for (cnn_cfg *c = m->child; c; c = c->next) {
        if (!key_is(c, key)) continue;
        c->used = true;
        if (*out)
            return cnn_cfg_error(c, CNN_ERR_CONFIG, "field '%s' given twice (first at %d:%d)",
                                 key, (*out)->line, (*out)->col);
        *out = c;
    }
    return CNN_OK;
}

/* Describes a field's value for messages: "a message", "'MAX'", ... */
static const char *value_desc(const cnn_cfg *f, char *buf, size_t n)
{
    if (f->kind == CNN_CFG_MESSAGE)
        snprintf(buf, n, "a message");
    else if (f->kind == CNN_CFG_STRING)
        snprintf(buf, n, "the string \"%.40s%s\"", f->text, strlen(f->text) > 40 ? "..." : "");
    else
        snprintf(buf, n, "'%.40s%s'", f->text, strlen(f->text) > 40 ? "..." : "");
    return buf;
}

static cnn_status want_error(const cnn_cfg *f, const char *want)
{
    char d[80];
    return cnn_cfg_error(f, CNN_ERR_CONFIG, "field '%s' expects %s, got %s", f->key, want,
                         value_desc(f, d, sizeof d));
}

static cnn_status to_integer(const cnn_cfg *f, long long lo, long long hi, const char *type,
                             long long *out)
{
    if (f->kind != CNN_CFG_NUMBER) return want_error(f, "an integer");
    char *end;
    errno = 0;
    long long v = strtoll(f->text, &end, 0);
    if (end == f->text || *end) return want_error(f, "an integer");
    if (errno == ERANGE || v < lo || v > hi)
        return cnn_cfg_error(f, CNN_ERR_CONFIG, "field '%s': %s is out of range for %s", f->key,
                             f->text, type);
    *out = v;
    return CNN_OK;
}

static cnn_status to_double(const cnn_cfg *f, double *out)
{
    if (f->kind != CNN_CFG_NUMBER) return want_error(f, "a number");
    char *end;
    errno = 0;
    double v = strtod(f->text, &end);
    if (end == f->text || (*end && !((*end == 'f' || *end == 'F') && !end[1])))
        return want_error(f, "a number");
    if (errno == ERANGE && isinf(v))
        return cnn_cfg_error(f, CNN_ERR_CONFIG, "field '%s': %s is out of range for double",
                             f->key, f->text);
    *out = v;
    return CNN_OK;
}

static cnn_status to_float(const cnn_cfg *f, float *out)
{
    double d = 0;
    cnn_status st = to_double(f, &d);
    if (st != CNN_OK) return st;
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return cnn_cfg_error(f, CNN_ERR_CONFIG, "field '%s': %s is out of range for float",
                             f->key, f->text);
    *out = (float)d;
    return CNN_OK;
}

cnn_status cnn_cfg_as_int(cnn_cfg *f, int *out)
{
    if (!f) return CNN_ERROR(CNN_ERR_ARG, "cnn_cfg_as_int: no field");
    f->used = true;
    long long v = 0;
    cnn_status st = to_integer(f, INT_MIN, INT_MAX, "int", &v);
    if (st == CNN_OK) *out = (int)v;
    return st;
}

cnn_status cnn_cfg_as_float(cnn_cfg *f, float *out)
{
    if (!f) return CNN_ERROR(CNN_ERR_ARG, "cnn_cfg_as_float: no field");
    f->used = true;
    return to_float(f, out);
}

cnn_status cnn_cfg_as_double(cnn_cfg *f, double *out)
{
    if (!f) return CNN_ERROR(CNN_ERR_ARG, "cnn_cfg_as_double: no field");
    f->used = true;
    return to_double(f, out);
}

cnn_status cnn_cfg_int(cnn_cfg *m, const char *key, int def, int *out)
{
    cnn_cfg *f;
    cnn_status st = get_single(m, key, &f);
    if (st != CNN_OK) return st;
    if (!f) {
        *out = def;
        return CNN_OK;
    }
    return cnn_cfg_as_int(f, out);
}

cnn_status cnn_cfg_int64(cnn_cfg *m, const char *key, long long def, long long *out)
{
    cnn_cfg *f;
    cnn_status st = get_single(m, key, &f);
    if (st != CNN_OK) return st;
    if (!f) {
        *out = def;
        return CNN_OK;
    }
    return to_integer(f, LLONG_MIN, LLONG_MAX, "int64", out);
}

cnn_status cnn_cfg_uint(cnn_cfg *m, const char *key, unsigned def, unsigned *out)
{
    cnn_cfg *f;
    long long v = 0;
    cnn_status st = get_single(m, key, &f);
    if (st != CNN_OK) return st;
    if (!f) {
        *out = def;
        return CNN_OK;
    }
    if ((st = to_integer(f, 0, UINT_MAX, "an unsigned int", &v)) == CNN_OK) *out = (unsigned)v;
    return st;
}

cnn_status cnn_cfg_float(cnn_cfg *m, const char *key, float def, float *out)
{
    cnn_cfg *f;
    cnn_status st = get_single(m, key, &f);
    if (st != CNN_OK) return st;
    if (!f) {
        *out = def;
        return CNN_OK;
    }
    return to_float(f, out);
}

cnn_status cnn_cfg_double(cnn_cfg *m, const char *key, double def, double *out)
{
    cnn_cfg *f;
    cnn_status st = get_single(m, key, &f);
    if (st != CNN_OK) return st;
    if (!f) {
        *out = def;
        return CNN_OK;
    }
    return to_double(f, out);
}

cnn_status cnn_cfg_bool(cnn_cfg *m, const char *key, bool def, bool *out)
{
    cnn_cfg *f;
    cnn_status st = get_single(m, key, &f);
    if (st != CNN_OK) return st;
    if (!f) {
        *out = def;
        return CNN_OK;
    }
    static const char *const yes[] = {"true", "True", "t"}, *const no[] = {"false", "False", "f"};
    if (f->kind == CNN_CFG_IDENT) {
        for (int i = 0; i < 3; i++) {
            if (!strcmp(f->text, yes[i]) || !strcmp(f->text, no[i])) {
                *out = !strcmp(f->text, yes[i]);
                return CNN_OK;
            }
        }
    } else if (f->kind == CNN_CFG_NUMBER) {
        char *end;
        errno = 0;
        long long v = strtoll(f->text, &end, 0);
        if (end != f->text && !*end && errno == 0 && (v == 0 || v == 1)) {
            *out = v == 1;
            return CNN_OK;
        }
    }
    return want_error(f, "true or false");
}

cnn_status cnn_cfg_string(cnn_cfg *m, const char *key, const char *def, const char **out)
{
    cnn_cfg *f;
    cnn_status st = get_single(m, key, &f);
    if (st != CNN_OK) return st;
    if (!f) {
        *out = def;
        return CNN_OK;
    }
    if (f->kind != CNN_CFG_STRING) return want_error(f, "a string in quotes");
    *out = f->text;
    return CNN_OK;
}

cnn_status cnn_cfg_enum(cnn_cfg *m, const char *key, const char *const *names, int def,
                        int *out)
{
    cnn_cfg *f;
    cnn_status st = get_single(m, key, &f);
    if (st != CNN_OK) return st;
    if (!f) {
        *out = def;
        return CNN_OK;
    }
    if (f->kind == CNN_CFG_IDENT) {
        for (int i = 0; names && names[i]; i++) {
            if (!strcmp(f->text, names[i])) {
                *out = i;
                return CNN_OK;
            }
        }
    }
    char list[512] = "", d[80];
    size_t used = 0;
    for (int i = 0; names && names[i] && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 names[i]);
    return cnn_cfg_error(f, CNN_ERR_CONFIG, "field '%s' expects one of %s; got %s", key, list,
                         value_desc(f, d, sizeof d));
}

cnn_status cnn_cfg_message(cnn_cfg *m, const char *key, cnn_cfg **out)
{
    cnn_cfg *f;
    cnn_status st = get_single(m, key, &f);
    *out = NULL;
    if (st != CNN_OK) return st;
    if (f && f->kind != CNN_CFG_MESSAGE) return want_error(f, "a message { ... }");
    *out = f;
    return CNN_OK;
}

/* The first unread field below m in file order; unread messages are not
 * descended into. */
static const cnn_cfg *first_unused(const cnn_cfg *m)
{
    for (const cnn_cfg *c = m->child; c; c = c->next) {
        if (!c->used) return c;
        if (c->kind == CNN_CFG_MESSAGE) {
            const cnn_cfg *u = first_unused(c);
            if (u) return u;
        }
    }
    return NULL;
}

cnn_status cnn_cfg_check_used(const cnn_cfg *m, const char *what)
{
    if (!m) return CNN_OK;
    const cnn_cfg *u = first_unused(m);
    if (!u) return CNN_OK;
    return cnn_cfg_error(u, CNN_ERR_CONFIG, "unknown or unused field '%s' in %s", u->key,
                         what ? what : "the model");
}

void cnn_cfg_mark_used(cnn_cfg *m)
{
    if (!m) return;
    m->used = true;
    for (cnn_cfg *c = m->child; c; c = c->next) cnn_cfg_mark_used(c);
}
