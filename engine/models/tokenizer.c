/* tokenizer.c: BERT WordPiece tokenization, identical to Hugging Face's
 * tokenizers (BertNormalizer + BertPreTokenizer + WordPiece + [CLS]/[SEP]).
 *
 * Pipeline, one pass over the text, no allocation per character:
 *   raw bytes -> special tokens ([CLS] ... matched verbatim, like HF's added
 *   tokens) split the text into segments; each segment:
 *   UTF-8 decode (invalid -> U+FFFD) -> clean (drop controls, whitespace -> ' ')
 *   -> CJK spacing -> NFD with Mn removed, canonical order -> lowercase
 *   -> split on whitespace, isolate punctuation -> WordPiece per word.
 * Marks are stripped before canonical reordering: a stable sort restricted to
 * the survivors orders them as the full sort would, so the result is the same.
 * Encoding stops as soon as the truncation length is reached.
 *
 * The vocabulary lives in one byte pool; lookups go through an open-addressing
 * hash table (linear probing, power-of-two size, at most half full).
 */
#include "models/tokenizer.h"

#include "core/error.h"
#include "models/unicode_tables.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define TOK_SPECIAL_COUNT 5 /* pad, unk, cls, sep, mask */

typedef struct tok_slot {
    uint32_t hash;
    int32_t id; /* -1: empty */
} tok_slot;

struct ims_tokenizer {
    char *pool;         /* every token, NUL-terminated */
    size_t *offsets;    /* (vocab_size) into pool */
    uint32_t *lengths;  /* (vocab_size) bytes */
    size_t vocab_size;
    tok_slot *slots;    /* (slot_mask + 1) */
    size_t slot_mask;
    size_t max_token_bytes;
    int32_t special[TOK_SPECIAL_COUNT]; /* ids; -1 if absent (mask only) */
    uint8_t special_first[256];         /* bytes that can start a special token */
    int max_len;
    int lowercase, strip_accents, clean_text, handle_chinese_chars;
    int max_word_chars;
    char prefix[16]; /* continuing-subword prefix, "##" */
    size_t prefix_len;
    uint8_t ascii_flags[128];
};

/* ---- UTF-8 ---------------------------------------------------------------- */

size_t imsi_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t need;
    uint32_t c;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
        c = b & 0x1Fu;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        c = b & 0x0Fu;
        if (b == 0xE0) lo = 0xA0;      /* no overlong forms */
        if (b == 0xED) hi = 0x9F;      /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        c = b & 0x07u;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;      /* nothing above U+10FFFF */
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        unsigned char lo_i = i == 1 ? lo : 0x80, hi_i = i == 1 ? hi : 0xBF;
        if (i >= len || s[i] < lo_i || s[i] > hi_i) {
            *cp = 0xFFFD; /* the maximal valid prefix becomes one U+FFFD */
            return i;
        }
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    *cp = c;
    return i;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- vocabulary hash table ---------------------------------------------------- */

static uint32_t hash_bytes(uint32_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 16777619u; /* FNV-1a */
    }
    return h;
}

#define TOK_HASH_SEED 2166136261u

/* The id of the n-byte token at p whose FNV-1a hash is h; -1 if absent. */
static int32_t vocab_find_hashed(const ims_tokenizer *tok, uint32_t h, const char *p, size_t n)
{
    for (size_t i = h & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        const tok_slot *s = &tok->slots[i];
        if (s->id < 0)
            return -1;
        if (s->hash == h && tok->lengths[s->id] == n && memcmp(tok->pool + tok->offsets[s->id], p, n) == 0)
            return s->id;
    }
}

static int32_t vocab_find(const ims_tokenizer *tok, const char *p, size_t n)
{
    return vocab_find_hashed(tok, hash_bytes(TOK_HASH_SEED, p, n), p, n);
}

/* Inserts id; a token seen before takes the later id (as HF's vocab map does). */
static void vocab_insert(ims_tokenizer *tok, int32_t id)
{
    const char *p = tok->pool + tok->offsets[id];
    size_t n = tok->lengths[id];
    uint32_t h = hash_bytes(TOK_HASH_SEED, p, n);
    for (size_t i = h & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        tok_slot *s = &tok->slots[i];
        if (s->id < 0) {
            s->hash = h;
            s->id = id;
            return;
        }
        if (s->hash == h && tok->lengths[s->id] == n && memcmp(tok->pool + tok->offsets[s->id], p, n) == 0) {
            s->id = id;
            return;
        }
    }
}

/* ---- creation ------------------------------------------------------------------ */

void ims_tokenizer_options_init(ims_tokenizer_options *o)
{
    memset(o, 0, sizeof *o);
    o->lowercase = 1;
    o->strip_accents = -1;
    o->clean_text = 1;
    o->handle_chinese_chars = 1;
    o->max_input_chars_per_word = 100;
    o->max_len = 512;
    o->pad_token = "[PAD]";
    o->unk_token = "[UNK]";
    o->cls_token = "[CLS]";
    o->sep_token = "[SEP]";
    o->mask_token = "[MASK]";
    o->continuing_prefix = "##";
}

void ims_tokenizer_free(ims_tokenizer *tok)
{
    if (!tok)
        return;
    free(tok->pool);
    free(tok->offsets);
    free(tok->lengths);
    free(tok->slots);
    free(tok);
}

/* Builds the tokenizer from n tokens given as (pointer, length) pairs. */
static ims_status tokenizer_build(const ims_str *tokens, size_t n, const ims_tokenizer_options *o,
                                  ims_tokenizer **out, ims_error *err)
{
    *out = NULL;
    if (n == 0 || n > (size_t)INT32_MAX)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "vocabulary size %zu (must be 1..%d)", n, INT32_MAX);
    if (o->max_len < 2)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "max_len %d (must be >= 2 for [CLS] and [SEP])", o->max_len);
    if (o->max_input_chars_per_word < 1 || o->max_input_chars_per_word > IMS_TOKENIZER_MAX_WORD_CHARS)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "max_input_chars_per_word %d (must be 1..%d)",
                             o->max_input_chars_per_word, IMS_TOKENIZER_MAX_WORD_CHARS);
    const char *prefix = o->continuing_prefix ? o->continuing_prefix : "";
    if (strlen(prefix) >= sizeof(((ims_tokenizer *)0)->prefix))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "continuing_prefix '%s' is too long", prefix);

    ims_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for the tokenizer");
    size_t pool_size = 0;
    for (size_t i = 0; i < n; i++) {
        if (tokens[i].len > UINT32_MAX || (!tokens[i].ptr && tokens[i].len))
            return ims_tokenizer_free(tok), ims_error_set(err, IMS_ERR_ARGUMENT, "vocabulary token %zu is invalid", i);
        if (pool_size > SIZE_MAX - tokens[i].len - 1)
            return ims_tokenizer_free(tok), ims_error_set(err, IMS_ERR_NOMEM, "vocabulary too large");
        pool_size += tokens[i].len + 1;
    }
    size_t slots = 16;
    while (slots < 2 * n)
        slots *= 2;
    tok->pool = malloc(pool_size);
    tok->offsets = malloc(n * sizeof *tok->offsets);
    tok->lengths = malloc(n * sizeof *tok->lengths);
    tok->slots = malloc(slots * sizeof *tok->slots);
    if (!tok->pool || !tok->offsets || !tok->lengths || !tok->slots)
        return ims_tokenizer_free(tok), ims_error_set(err, IMS_ERR_NOMEM, "out of memory for a %zu-token vocabulary", n);
    tok->vocab_size = n;
    tok->slot_mask = slots - 1;
    for (size_t i = 0; i < slots; i++)
        tok->slots[i].id = -1;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (tokens[i].len)
            memcpy(tok->pool + at, tokens[i].ptr, tokens[i].len);
        tok->pool[at + tokens[i].len] = '\0';
        tok->offsets[i] = at;
        tok->lengths[i] = (uint32_t)tokens[i].len;
        at += tokens[i].len + 1;
        if (tokens[i].len > tok->max_token_bytes)
            tok->max_token_bytes = tokens[i].len;
        vocab_insert(tok, (int32_t)i);
    }

    tok->max_len = o->max_len;
    tok->lowercase = o->lowercase != 0;
    tok->strip_accents = o->strip_accents < 0 ? tok->lowercase : o->strip_accents != 0;
    tok->clean_text = o->clean_text != 0;
    tok->handle_chinese_chars = o->handle_chinese_chars != 0;
    tok->max_word_chars = o->max_input_chars_per_word;
    memcpy(tok->prefix, prefix, strlen(prefix) + 1);
    tok->prefix_len = strlen(prefix);
    for (uint32_t c = 0; c < 128; c++)
        tok->ascii_flags[c] = imsi_unicode_props(c)->flags;

    const char *names[TOK_SPECIAL_COUNT] = {o->pad_token, o->unk_token, o->cls_token, o->sep_token, o->mask_token};
    for (int i = 0; i < TOK_SPECIAL_COUNT; i++) {
        tok->special[i] = -1;
        if (!names[i] || !names[i][0]) {
            if (i == IMS_TOKEN_MASK)
                continue;
            return ims_tokenizer_free(tok), ims_error_set(err, IMS_ERR_ARGUMENT, "special token %d has no name", i);
        }
        tok->special[i] = vocab_find(tok, names[i], strlen(names[i]));
        if (tok->special[i] < 0 && i != IMS_TOKEN_MASK)
            return ims_tokenizer_free(tok), ims_error_set(err, IMS_ERR_FORMAT, "the vocabulary has no %s token", names[i]);
        if (tok->special[i] >= 0)
            tok->special_first[(unsigned char)names[i][0]] = 1;
    }
    *out = tok;
    return IMS_OK;
}

ims_status ims_tokenizer_create_from_vocab(const char *const *tokens, size_t n, const ims_tokenizer_options *o,
                                           ims_tokenizer **out, ims_error *err)
{
    if (!out)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "no output pointer");
    *out = NULL;
    if (!tokens && n)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "no vocabulary");
    ims_tokenizer_options defaults;
    if (!o) {
        ims_tokenizer_options_init(&defaults);
        o = &defaults;
    }
    ims_str *strs = malloc((n ? n : 1) * sizeof *strs);
    if (!strs)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for a %zu-token vocabulary", n);
    for (size_t i = 0; i < n; i++) {
        strs[i].ptr = tokens[i] ? tokens[i] : "";
        strs[i].len = strlen(strs[i].ptr);
    }
    ims_status st = tokenizer_build(strs, n, o, out, err);
    free(strs);
    return st;
}

ims_status ims_tokenizer_create_from_weights(const ims_weights *w, ims_tokenizer **out, ims_error *err)
{
    if (!out || !w)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "no weights or no output pointer");
    *out = NULL;
    const ims_str *vocab = NULL;
    size_t n = 0;
    ims_status st = ims_weights_get_strings(w, "tokenizer.vocab", &vocab, &n, err);
    if (st)
        return st;
    ims_tokenizer_options o;
    ims_tokenizer_options_init(&o);
    int64_t v = 0;
    if (ims_weights_meta_find(w, "tokenizer.do_lower_case")) {
        if ((st = ims_weights_get_i64(w, "tokenizer.do_lower_case", &v, err)))
            return st;
        o.lowercase = v != 0;
    }
    if (ims_weights_meta_find(w, "bert.max_seq_length")) {
        if ((st = ims_weights_get_i64(w, "bert.max_seq_length", &v, err)))
            return st;
        if (v < 2 || v > INT_MAX)
            return ims_error_set(err, IMS_ERR_FORMAT, "bert.max_seq_length %lld is out of range",
                                 (long long)v);
        o.max_len = (int)v;
    }
    /* The special tokens by id: their names are the vocabulary's strings. */
    const char *keys[TOK_SPECIAL_COUNT] = {"tokenizer.pad_id", "tokenizer.unk_id", "tokenizer.cls_id",
                                           "tokenizer.sep_id", "tokenizer.mask_id"};
    char *names[TOK_SPECIAL_COUNT] = {0};
    for (int i = 0; i < TOK_SPECIAL_COUNT && !st; i++) {
        if ((st = ims_weights_get_i64(w, keys[i], &v, err)))
            break;
        if (v < 0 || (uint64_t)v >= n || vocab[v].len == 0 || memchr(vocab[v].ptr, 0, vocab[v].len)) {
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s %lld is not a token of the %zu-token vocabulary", keys[i],
                               (long long)v, n);
            break;
        }
        names[i] = malloc(vocab[v].len + 1);
        if (!names[i]) {
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(names[i], vocab[v].ptr, vocab[v].len);
        names[i][vocab[v].len] = '\0';
    }
    if (!st) {
        o.pad_token = names[0];
        o.unk_token = names[1];
        o.cls_token = names[2];
        o.sep_token = names[3];
        o.mask_token = names[4];
        st = tokenizer_build(vocab, n, &o, out, err);
    }
    for (int i = 0; i < TOK_SPECIAL_COUNT; i++)
        free(names[i]);
    if (st)
        return imsi_error_prefix(err, st, "tokenizer");
    return IMS_OK;
}

int ims_tokenizer_max_len(const ims_tokenizer *tok) { return tok->max_len; }
size_t ims_tokenizer_vocab_size(const ims_tokenizer *tok) { return tok->vocab_size; }

int32_t ims_tokenizer_special_id(const ims_tokenizer *tok, ims_token_kind kind)
{
    return (unsigned)kind < TOK_SPECIAL_COUNT ? tok->special[kind] : -1;
}

const char *ims_tokenizer_decode_token(const ims_tokenizer *tok, int32_t id)
{
    if (!tok || id < 0 || (size_t)id >= tok->vocab_size)
        return NULL;
    return tok->pool + tok->offsets[id];
}

/* ---- encoding ---------------------------------------------------------------- */

/* Growable per-call buffers; freed by scratch_free. */
typedef struct tok_scratch {
    uint32_t *marks; /* the pending run of combining marks (ccc != 0) */
    uint8_t *mark_ccc;
    size_t marks_len, marks_cap;
    uint32_t *sorted; /* counting-sort output */
    char word[4 * IMS_TOKENIZER_MAX_WORD_CHARS + 64]; /* the current word, UTF-8; longer words only count */
    size_t word_bytes;
    size_t word_chars;
    char piece[4 * IMS_TOKENIZER_MAX_WORD_CHARS + 64 + 16]; /* prefix + word */
    uint32_t hashes[4 * IMS_TOKENIZER_MAX_WORD_CHARS + 64 + 1]; /* of the piece's prefixes */
    int32_t *ids; /* (limit) content ids so far */
    size_t n_ids, limit;
    int failed_nomem;
} tok_scratch;

/* Only the growable buffers need a start value; encode_one sets the rest. */
static void scratch_init(tok_scratch *s)
{
    s->marks = NULL;
    s->mark_ccc = NULL;
    s->sorted = NULL;
    s->marks_len = s->marks_cap = 0;
    s->failed_nomem = 0;
}

static void scratch_free(tok_scratch *s)
{
    free(s->marks);
    free(s->mark_ccc);
    free(s->sorted);
}

static int scratch_full(const tok_scratch *s) { return s->n_ids >= s->limit; }

static void emit_id(tok_scratch *s, int32_t id)
{
    if (s->n_ids < s->limit)
        s->ids[s->n_ids++] = id;
}

/* WordPiece of the current word: greedy longest match from the left. */
static void word_flush(const ims_tokenizer *tok, tok_scratch *s)
{
    if (s->word_chars == 0)
        return;
    size_t n = s->word_bytes, chars = s->word_chars;
    s->word_bytes = s->word_chars = 0;
    if (chars > (size_t)tok->max_word_chars || n > sizeof s->word) {
        emit_id(s, tok->special[IMS_TOKEN_UNK]);
        return;
    }
    const char *w = s->word;
    size_t first_id = s->n_ids;
    size_t start = 0;
    while (start < n) {
        size_t pre = start > 0 ? tok->prefix_len : 0;
        /* Candidates longer than any token cannot match: end <= lim. */
        size_t room = tok->max_token_bytes > pre ? tok->max_token_bytes - pre : 0;
        size_t lim = n - start <= room ? n : start + room;
        /* The key is piece[0 .. pre + end - start); hashes[k] = hash of its first pre + k bytes. */
        memcpy(s->piece, tok->prefix, pre);
        memcpy(s->piece + pre, w + start, lim - start);
        uint32_t h = hash_bytes(TOK_HASH_SEED, tok->prefix, pre);
        s->hashes[0] = h;
        for (size_t k = 0; k < lim - start; k++)
            s->hashes[k + 1] = h = hash_bytes(h, w + start + k, 1);
        size_t end = lim;
        while (end > start && end < n && ((unsigned char)w[end] & 0xC0) == 0x80)
            end--; /* lim may cut a character */
        int32_t found = -1;
        while (end > start) {
            found = vocab_find_hashed(tok, s->hashes[end - start], s->piece, pre + end - start);
            if (found >= 0)
                break;
            end--;
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80)
                end--;
        }
        if (found < 0) {
            s->n_ids = first_id; /* any unmatched position: the whole word is [UNK] */
            emit_id(s, tok->special[IMS_TOKEN_UNK]);
            return;
        }
        emit_id(s, found);
        start = end;
    }
}

/* Pre-tokenization of one normalized code point. */
static void word_push(const ims_tokenizer *tok, tok_scratch *s, uint32_t c)
{
    uint8_t flags = c < 128 ? tok->ascii_flags[c] : imsi_unicode_props(c)->flags;
    if (flags & IMS_UNICODE_WHITESPACE) {
        word_flush(tok, s);
    } else if (flags & IMS_UNICODE_PUNCT) {
        word_flush(tok, s);
        s->word_chars = 1;
        s->word_bytes = utf8_encode(c, s->word);
        word_flush(tok, s);
    } else {
        if (s->word_bytes + 4 <= sizeof s->word)
            s->word_bytes += utf8_encode(c, s->word + s->word_bytes);
        else
            s->word_bytes = sizeof s->word + 1; /* too long: only counted now */
        s->word_chars++;
    }
}

/* Lowercase (if enabled), then pre-tokenize. */
static void lower_push(const ims_tokenizer *tok, tok_scratch *s, uint32_t c)
{
    if (tok->lowercase) {
        if (c < 128) {
            if (c >= 'A' && c <= 'Z')
                c += 32;
        } else {
            const imsi_unicode_record *r = imsi_unicode_props(c);
            if (r->lower_len) {
                const uint32_t *seq = imsi_unicode_seq(r->lower_off);
                for (int i = 0; i < r->lower_len; i++)
                    word_push(tok, s, seq[i]);
                return;
            }
        }
    }
    word_push(tok, s, c);
}

/* Emits the pending combining marks in canonical order (stable by ccc). */
static void marks_flush(const ims_tokenizer *tok, tok_scratch *s)
{
    size_t n = s->marks_len;
    if (n == 0)
        return;
    s->marks_len = 0;
    int sorted = 1;
    for (size_t i = 1; i < n; i++)
        if (s->mark_ccc[i - 1] > s->mark_ccc[i])
            sorted = 0;
    if (sorted) {
        for (size_t i = 0; i < n; i++)
            lower_push(tok, s, s->marks[i]);
        return;
    }
    size_t start[257] = {0};
    for (size_t i = 0; i < n; i++)
        start[s->mark_ccc[i] + 1]++;
    for (int k = 1; k <= 256; k++)
        start[k] += start[k - 1];
    for (size_t i = 0; i < n; i++)
        s->sorted[start[s->mark_ccc[i]]++] = s->marks[i];
    for (size_t i = 0; i < n; i++)
        lower_push(tok, s, s->sorted[i]);
}

static void mark_add(tok_scratch *s, uint32_t c, uint8_t ccc)
{
    if (s->marks_len == s->marks_cap) {
        size_t cap = s->marks_cap ? 2 * s->marks_cap : 64;
        uint32_t *m = realloc(s->marks, cap * sizeof *m);
        if (m)
            s->marks = m;
        uint8_t *k = m ? realloc(s->mark_ccc, cap) : NULL;
        if (k)
            s->mark_ccc = k;
        uint32_t *o = k ? realloc(s->sorted, cap * sizeof *o) : NULL;
        if (o)
            s->sorted = o;
        if (!o) {
            s->failed_nomem = 1; /* the mark is lost; the caller reports the failure */
            return;
        }
        s->marks_cap = cap;
    }
    s->marks[s->marks_len] = c;
    s->mark_ccc[s->marks_len] = ccc;
    s->marks_len++;
}

/* NFD + accent stripping of one code point (if enabled), then lowercase. */
static void nfd_push(const ims_tokenizer *tok, tok_scratch *s, uint32_t c)
{
    if (!tok->strip_accents) {
        lower_push(tok, s, c);
        return;
    }
    if (c < 128) {
        marks_flush(tok, s);
        lower_push(tok, s, c);
        return;
    }
    uint32_t hangul[3];
    const uint32_t *seq = &c;
    int len = 1;
    if (c >= 0xAC00 && c < 0xAC00 + 11172) {
        uint32_t i = c - 0xAC00;
        hangul[0] = 0x1100 + i / 588;
        hangul[1] = 0x1161 + (i % 588) / 28;
        hangul[2] = 0x11A7 + i % 28;
        seq = hangul;
        len = i % 28 ? 3 : 2;
    } else {
        const imsi_unicode_record *r = imsi_unicode_props(c);
        if (r->nfd_len) {
            seq = imsi_unicode_seq(r->nfd_off);
            len = r->nfd_len;
        }
    }
    for (int i = 0; i < len; i++) {
        const imsi_unicode_record *r = imsi_unicode_props(seq[i]);
        if (r->flags & IMS_UNICODE_MN)
            continue;
        if (r->ccc == 0) {
            marks_flush(tok, s);
            lower_push(tok, s, seq[i]);
        } else {
            mark_add(s, seq[i], r->ccc);
        }
    }
}

/* Cleaning and CJK spacing of one decoded code point. */
static void clean_push(const ims_tokenizer *tok, tok_scratch *s, uint32_t c)
{
    uint8_t flags = c < 128 ? tok->ascii_flags[c] : imsi_unicode_props(c)->flags;
    if (tok->clean_text) {
        if (flags & IMS_UNICODE_CONTROL)
            return;
        if (flags & IMS_UNICODE_WHITESPACE)
            c = ' ';
    }
    if (tok->handle_chinese_chars && (flags & IMS_UNICODE_CJK)) {
        nfd_push(tok, s, ' ');
        nfd_push(tok, s, c);
        nfd_push(tok, s, ' ');
        return;
    }
    nfd_push(tok, s, c);
}

/* One segment between special tokens: normalized and split on its own. */
static void encode_segment(const ims_tokenizer *tok, tok_scratch *s, const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n && !scratch_full(s)) {
        uint32_t c;
        if (p[i] < 0x80) {
            c = p[i++];
        } else {
            i += imsi_utf8_decode(p + i, n - i, &c);
        }
        clean_push(tok, s, c);
    }
    marks_flush(tok, s);
    word_flush(tok, s);
}

/* Length of the longest special token at p, and its id; 0 if none. */
static size_t special_at(const ims_tokenizer *tok, const unsigned char *p, size_t n, int32_t *id)
{
    size_t best = 0;
    for (int k = 0; k < TOK_SPECIAL_COUNT; k++) {
        int32_t sid = tok->special[k];
        if (sid < 0)
            continue;
        size_t len = tok->lengths[sid];
        if (len > best && len <= n && memcmp(p, tok->pool + tok->offsets[sid], len) == 0) {
            best = len;
            *id = sid;
        }
    }
    return best;
}

/* Content ids of text (no [CLS]/[SEP]) into s->ids, at most s->limit. */
static void encode_content(const ims_tokenizer *tok, tok_scratch *s, const unsigned char *p, size_t n)
{
    size_t seg = 0;
    for (size_t i = 0; i < n && !scratch_full(s); i++) {
        if (!tok->special_first[p[i]])
            continue;
        int32_t id = -1;
        size_t len = special_at(tok, p + i, n - i, &id);
        if (len == 0)
            continue;
        encode_segment(tok, s, p + seg, i - seg);
        emit_id(s, id);
        i += len - 1;
        seg = i + 1;
    }
    if (seg < n && !scratch_full(s))
        encode_segment(tok, s, p + seg, n - seg);
}

static ims_status encode_one(const ims_tokenizer *tok, tok_scratch *s, const char *text, size_t len,
                             int32_t *ids, int max_len, int *n_ids, ims_error *err)
{
    s->ids = ids + 1;
    s->n_ids = 0;
    s->limit = (size_t)max_len - 2;
    s->word_bytes = s->word_chars = 0;
    s->marks_len = 0;
    encode_content(tok, s, (const unsigned char *)text, len);
    if (s->failed_nomem)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory while tokenizing");
    ids[0] = tok->special[IMS_TOKEN_CLS];
    ids[s->n_ids + 1] = tok->special[IMS_TOKEN_SEP];
    *n_ids = (int)s->n_ids + 2;
    return IMS_OK;
}

static ims_status check_encode_args(const ims_tokenizer *tok, const void *text, size_t len, const void *ids,
                                    int *max_len, ims_error *err)
{
    if (!tok || !ids || (!text && len))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "no tokenizer, text or output buffer");
    if (*max_len <= 0)
        *max_len = tok->max_len;
    if (*max_len < 2)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "max_len %d (must be >= 2 for [CLS] and [SEP])", *max_len);
    return IMS_OK;
}

ims_status ims_tokenizer_encode(const ims_tokenizer *tok, const char *text, size_t len, int32_t *ids, int max_len,
                                int *n_ids, ims_error *err)
{
    if (n_ids)
        *n_ids = 0;
    ims_status st = check_encode_args(tok, text, len, ids, &max_len, err);
    if (st)
        return st;
    if (!n_ids)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "no n_ids pointer");
    tok_scratch s;
    scratch_init(&s);
    st = encode_one(tok, &s, text ? text : "", len, ids, max_len, n_ids, err);
    scratch_free(&s);
    return st;
}

ims_status ims_tokenizer_encode_batch(const ims_tokenizer *tok, const char *const *texts, const size_t *lens,
                                      int64_t count64, int max_len, int32_t *ids, int32_t *lengths, int *seq_len,
                                      ims_error *err)
{
    if (seq_len)
        *seq_len = 0;
    if (count64 < 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "a batch of %lld texts", (long long)count64);
    size_t count = (size_t)count64;
    ims_status st = check_encode_args(tok, texts, count, ids, &max_len, err);
    if (st)
        return st;
    if (!lengths || !seq_len || (count && !lens))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "no lens, lengths or seq_len pointer");
    tok_scratch s;
    scratch_init(&s);
    int longest = 0;
    for (size_t b = 0; b < count && !st; b++) {
        if (!texts[b] && lens[b]) {
            st = ims_error_set(err, IMS_ERR_ARGUMENT, "text %zu is NULL", b);
            break;
        }
        int n = 0;
        st = encode_one(tok, &s, texts[b] ? texts[b] : "", lens[b], ids + b * (size_t)max_len, max_len, &n, err);
        lengths[b] = n;
        if (n > longest)
            longest = n;
    }
    scratch_free(&s);
    if (st)
        return imsi_error_prefix(err, st, "batch");
    /* (B, max_len) -> (B, longest): rows move toward the front, in order. */
    int32_t pad = tok->special[IMS_TOKEN_PAD];
    for (size_t b = 0; b < count; b++) {
        int32_t *dst = ids + b * (size_t)longest;
        memmove(dst, ids + b * (size_t)max_len, (size_t)lengths[b] * sizeof *dst);
        for (int t = lengths[b]; t < longest; t++)
            dst[t] = pad;
    }
    *seq_len = longest;
    return IMS_OK;
}
