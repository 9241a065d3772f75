/* test_tokenizer.c: the WordPiece tokenizer against Hugging Face's tokenizers.
 *
 * argv[1]: tests/fixtures/tokenizer (corpus.txt, expected_ids.txt, vocab.txt:
 * made by make_corpus.py / make_expected.py with the tokenizers library);
 * argv[2]: tests/fixtures/hf_tiny_bert (a model directory to convert).
 * 1. Every corpus line must give exactly the expected ids (truncation at 256);
 *    a mismatch prints the line number, the escaped text and both id lists.
 * 2. Unit tests, one per rule, on a small vocabulary: cleaning, CJK spacing,
 *    accent stripping, lowercase, punctuation, WordPiece, the 100-character
 *    limit, special tokens in the text, invalid UTF-8, truncation, batches.
 * 3. create_from_weights on a converted model agrees with create_from_vocab.
 * All comparisons are exact (ids are integers).
 */
#include "test.h"

#include "models/tokenizer.h"
#include "models/unicode_tables.h"

#include <unistd.h>

/* The corpus escape (tests/cli/tokenizer_escape.py): \\ \n \r \xHH. In place. */
static size_t unescape(char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            s[o++] = s[i];
            continue;
        }
        char c = s[++i];
        if (c == 'n') {
            s[o++] = '\n';
        } else if (c == 'r') {
            s[o++] = '\r';
        } else if (c == 'x' && i + 2 < n) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            s[o++] = (char)strtoul(hex, NULL, 16);
            i += 2;
        } else {
            s[o++] = c;
        }
    }
    return o;
}

/* Splits buf at '\n' in place; returns the line count (a trailing newline ends the last line). */
static size_t split_lines(char *buf, size_t len, char ***lines, size_t **lens)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n';
    *lines = malloc((n + 1) * sizeof **lines);
    *lens = malloc((n + 1) * sizeof **lens);
    if (!*lines || !*lens)
        abort();
    size_t k = 0, start = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n') {
            (*lines)[k] = buf + start;
            (*lens)[k] = i - start;
            buf[i] = '\0';
            k++;
            start = i + 1;
        }
    }
    return k;
}

static ims_tokenizer *vocab_tokenizer(const char *path, int lowercase, int max_len)
{
    size_t len = 0;
    char *buf = test_read_file(path, &len);
    TEST_CHECK(buf != NULL, "cannot read %s", path);
    if (!buf)
        return NULL;
    char **lines;
    size_t *lens;
    size_t n = split_lines(buf, len, &lines, &lens);
    ims_tokenizer_options o;
    ims_tokenizer_options_init(&o);
    o.lowercase = lowercase;
    o.max_len = max_len;
    ims_error err = {0};
    ims_tokenizer *tok = NULL;
    TEST_OK(ims_tokenizer_create_from_vocab((const char *const *)lines, n, &o, &tok, &err), err);
    free(lines);
    free(lens);
    free(buf);
    return tok;
}

static void print_escaped(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\')
            fputs("\\\\", stderr);
        else if (c < 0x20 || c == 0x7f)
            fprintf(stderr, "\\x%02X", c);
        else
            fputc(c, stderr);
    }
}

static void test_corpus(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    ims_tokenizer *tok = vocab_tokenizer(path, 1, 256);
    if (!tok)
        return;
    size_t clen = 0, elen = 0;
    snprintf(path, sizeof path, "%s/corpus.txt", dir);
    char *corpus = test_read_file(path, &clen);
    snprintf(path, sizeof path, "%s/expected_ids.txt", dir);
    char *expected = test_read_file(path, &elen);
    TEST_CHECK(corpus && expected, "cannot read the corpus files in %s", dir);
    if (!corpus || !expected)
        return;
    char **lines, **exp;
    size_t *lens, *exp_lens;
    size_t n = split_lines(corpus, clen, &lines, &lens);
    size_t m = split_lines(expected, elen, &exp, &exp_lens);
    TEST_CHECK(n == m && n >= 2000, "corpus has %zu lines, expected_ids %zu (need >= 2000, equal)", n, m);
    int32_t ids[256], want[256];
    size_t bad = 0, tokens = 0;
    for (size_t i = 0; i < n && i < m; i++) {
        size_t len = unescape(lines[i], lens[i]);
        int n_want = 0;
        for (char *p = exp[i], *end; *p && n_want < 256; p = end) {
            want[n_want++] = (int32_t)strtol(p, &end, 10);
            if (end == p)
                break;
        }
        ims_error err = {0};
        int n_ids = 0;
        ims_status st = ims_tokenizer_encode(tok, lines[i], len, ids, 256, &n_ids, &err);
        tokens += (size_t)n_ids;
        if (st == IMS_OK && n_ids == n_want && memcmp(ids, want, (size_t)n_ids * sizeof *ids) == 0)
            continue;
        if (++bad <= 10) {
            fprintf(stderr, "corpus line %zu: \"", i + 1);
            print_escaped(lines[i], len);
            fprintf(stderr, "\"\n  expected:");
            for (int t = 0; t < n_want; t++)
                fprintf(stderr, " %d", (int)want[t]);
            fprintf(stderr, "\n  got:     ");
            for (int t = 0; t < n_ids; t++)
                fprintf(stderr, " %d", (int)ids[t]);
            fprintf(stderr, "%s%s\n", st ? " error: " : "", st ? err.msg : "");
        }
    }
    TEST_CHECK(bad == 0, "%zu of %zu corpus lines differ from tokenizers", bad, n);
    printf("corpus: %zu lines, %zu tokens, %zu mismatches\n", n, tokens, bad);
    free(lines);
    free(lens);
    free(exp);
    free(exp_lens);
    free(corpus);
    free(expected);
    ims_tokenizer_free(tok);
}

/* ---- unit tests on a small vocabulary ------------------------------------------------ */

static const char *small_vocab[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "un", "##aff", "##able", /* 0-9 */
    "a", "##a", "b", ",", "!", "中", "cafe", "i", "\x69\xcc\x87", "istanbul",                /* 10-19 */
    "x", "hell", "##o", "'", "s", "σ", "ς", "[", "]", "cl",                                  /* 20-29 */
    "##s", "é", "caf", "##é", "a\xcc\x81",                                                   /* 30-34 */
    "a\xf0\x9e\xa5\x8a\xf0\x9e\xa5\x84", /* 35: a U+1E94A (ccc 7) U+1E944 (ccc 230) */
};
enum { SMALL_VOCAB = sizeof small_vocab / sizeof *small_vocab };

/* Encodes text and compares with the expected tokens (strings, "" ends the list). */
static void expect_tokens(const ims_tokenizer *tok, const char *text, size_t len, int max_len,
                          const char *const *want, const char *what)
{
    int32_t ids[512];
    int n_ids = 0;
    ims_error err = {0};
    TEST_OK(ims_tokenizer_encode(tok, text, len, ids, max_len, &n_ids, &err), err);
    int n_want = 0;
    while (want[n_want])
        n_want++;
    int same = n_ids == n_want + 2 && ids[0] == 2 && ids[n_ids - 1] == 3;
    for (int t = 0; same && t < n_want; t++)
        same = strcmp(ims_tokenizer_decode_token(tok, ids[t + 1]), want[t]) == 0;
    TEST_CHECK(same, "%s: got %d tokens", what, n_ids);
    if (!same) {
        fprintf(stderr, "  got:");
        for (int t = 0; t < n_ids; t++)
            fprintf(stderr, " '%s'", ims_tokenizer_decode_token(tok, ids[t]));
        fprintf(stderr, "\n  want: [CLS]");
        for (int t = 0; t < n_want; t++)
            fprintf(stderr, " '%s'", want[t]);
        fprintf(stderr, " [SEP]\n");
    }
}

#define EXPECT(tok, text, what, ...)                                                                         \
    do {                                                                                                     \
        const char *want_[] = {__VA_ARGS__, NULL};                                                           \
        expect_tokens(tok, text, sizeof(text) - 1, 0, want_, what);                                          \
    } while (0)

static void test_rules(void)
{
    ims_error err = {0};
    ims_tokenizer *tok = NULL;
    TEST_OK(ims_tokenizer_create_from_vocab(small_vocab, SMALL_VOCAB, NULL, &tok, &err), err);
    if (!tok)
        return;
    TEST_CHECK(ims_tokenizer_vocab_size(tok) == SMALL_VOCAB, "vocab size");
    TEST_CHECK(ims_tokenizer_special_id(tok, IMS_TOKEN_UNK) == 1 && ims_tokenizer_special_id(tok, IMS_TOKEN_MASK) == 4,
               "special ids");
    /* clean: controls (Cc, Cf) vanish and join the word; \t \n \r and Unicode spaces split */
    EXPECT(tok, "hel\x01lo", "a control character is dropped", "hello");
    EXPECT(tok, "hel\xe2\x80\x8blo", "U+200B (Cf) is dropped", "hello");
    EXPECT(tok, "hello\tworld\r\nhello\xe3\x80\x80world", "whitespace splits", "hello", "world", "hello", "world");
    EXPECT(tok, "hel\x00lo", "NUL is dropped", "hello");
    /* CJK: spaces around ideographs */
    EXPECT(tok, "a\xe4\xb8\xad" "b", "CJK ideographs are words of their own", "a", "中", "b");
    /* accents: NFD then Mn removed; U+00E9 and e + U+0301 are the same */
    EXPECT(tok, "Caf\xc3\xa9", "accents are stripped", "cafe");
    EXPECT(tok, "Cafe\xcc\x81", "a combining accent is stripped", "cafe");
    /* canonical order: Adlam marks (Unicode 9.0: not Mn for tokenizers' 8.0 categories, so kept)
     * sort by combining class; U+0301 between them is stripped */
    EXPECT(tok, "A\xf0\x9e\xa5\x84\xcc\x81\xf0\x9e\xa5\x8a", "marks in canonical order",
           "a\xf0\x9e\xa5\x8a\xf0\x9e\xa5\x84");
    /* lowercase after stripping: U+0130 -> I + U+0307 -> I -> i */
    EXPECT(tok, "\xc4\xb0stanbul", "U+0130 becomes i", "istanbul");
    EXPECT(tok, "HELLO World", "lowercase", "hello", "world");
    EXPECT(tok, "\xce\xa3", "capital sigma -> small sigma, never the final form", "σ");
    /* punctuation: isolated, even inside words */
    EXPECT(tok, "hello,world!", "punctuation splits", "hello", ",", "world", "!");
    EXPECT(tok, "x's", "an apostrophe splits", "x", "'", "s");
    /* WordPiece: greedy longest match; any miss makes the whole word [UNK] */
    EXPECT(tok, "unaffable", "greedy longest match", "un", "##aff", "##able");
    EXPECT(tok, "helloo", "longest first: hello + ##o", "hello", "##o");
    EXPECT(tok, "unaffablez hello", "an unmatched piece makes the word [UNK]", "[UNK]", "hello");
    /* special tokens in the raw text are those tokens; lowercase ones are not */
    EXPECT(tok, "x[CLS]x [cls]", "special tokens in the text", "x", "[CLS]", "x", "[", "cl", "##s", "]");
    /* invalid UTF-8: U+FFFD, then dropped by cleaning */
    EXPECT(tok, "hel\xfflo", "an invalid byte is dropped", "hello");
    EXPECT(tok, "hello\xe2\x82", "a truncated sequence is dropped", "hello");
    EXPECT(tok, "hel\xed\xa0\x80lo \xc0\xaf", "a surrogate and an overlong form are dropped", "hello");
    EXPECT(tok, "\xef\xbf\xbdhello", "U+FFFD itself is dropped", "hello");
    EXPECT(tok, "", "empty text", NULL);
    EXPECT(tok, " \t \xe2\x80\x8b ", "whitespace-only text", NULL);

    /* the 100-character limit: 100 'a' are 100 pieces, 101 are [UNK] */
    char word[128];
    memset(word, 'a', sizeof word);
    int32_t ids[512];
    int n_ids = 0;
    TEST_OK(ims_tokenizer_encode(tok, word, 100, ids, 0, &n_ids, &err), err);
    TEST_CHECK(n_ids == 102 && ids[1] == 10 && ids[100] == 11, "100 chars: %d tokens", n_ids);
    TEST_OK(ims_tokenizer_encode(tok, word, 101, ids, 0, &n_ids, &err), err);
    TEST_CHECK(n_ids == 3 && ids[1] == 1, "101 chars: %d tokens, [UNK] expected", n_ids);
    /* truncation keeps [CLS] first and [SEP] last */
    TEST_OK(ims_tokenizer_encode(tok, word, 100, ids, 5, &n_ids, &err), err);
    TEST_CHECK(n_ids == 5 && ids[0] == 2 && ids[1] == 10 && ids[3] == 11 && ids[4] == 3, "max_len 5: %d", n_ids);
    TEST_OK(ims_tokenizer_encode(tok, "hello world", 11, ids, 2, &n_ids, &err), err);
    TEST_CHECK(n_ids == 2 && ids[0] == 2 && ids[1] == 3, "max_len 2: [CLS] [SEP]");
    TEST_CHECK(ims_tokenizer_encode(tok, "hello", 5, ids, 1, &n_ids, &err) == IMS_ERR_ARGUMENT,
               "max_len 1 is refused");

    TEST_CHECK(strcmp(ims_tokenizer_decode_token(tok, 5), "hello") == 0, "decode_token");
    TEST_CHECK(ims_tokenizer_decode_token(tok, -1) == NULL && ims_tokenizer_decode_token(tok, SMALL_VOCAB) == NULL,
               "decode_token out of range");
    ims_tokenizer_free(tok);

    /* options: no accent stripping keeps U+0130's dot; cased keeps case */
    ims_tokenizer_options o;
    ims_tokenizer_options_init(&o);
    o.strip_accents = 0;
    TEST_OK(ims_tokenizer_create_from_vocab(small_vocab, SMALL_VOCAB, &o, &tok, &err), err);
    if (tok) {
        EXPECT(tok, "\xc4\xb0", "U+0130 lowercased without stripping is i + U+0307", "i\xcc\x87");
        EXPECT(tok, "caf\xc3\xa9", "no stripping: é stays", "caf", "##é");
        /* the limit counts characters, not bytes: 100 two-byte é are 100 pieces, 101 are [UNK] */
        char accented[256];
        for (int i = 0; i < 101; i++)
            memcpy(accented + 2 * i, "\xc3\xa9", 2);
        int32_t ids2[256];
        int n2 = 0;
        TEST_OK(ims_tokenizer_encode(tok, accented, 200, ids2, 256, &n2, &err), err);
        TEST_CHECK(n2 == 102 && ids2[1] == 31 && ids2[100] == 33, "100 é: %d tokens", n2);
        TEST_OK(ims_tokenizer_encode(tok, accented, 202, ids2, 256, &n2, &err), err);
        TEST_CHECK(n2 == 3 && ids2[1] == 1, "101 é: %d tokens, [UNK] expected", n2);
        ims_tokenizer_free(tok);
    }
    o.strip_accents = 1;
    o.lowercase = 0;
    TEST_OK(ims_tokenizer_create_from_vocab(small_vocab, SMALL_VOCAB, &o, &tok, &err), err);
    if (tok) {
        EXPECT(tok, "Hello hello", "cased: Hello is unknown", "[UNK]", "hello");
        ims_tokenizer_free(tok);
    }
    /* a vocabulary without [UNK] is refused */
    const char *no_unk[] = {"[PAD]", "[CLS]", "[SEP]", "hello"};
    TEST_CHECK(ims_tokenizer_create_from_vocab(no_unk, 4, NULL, &tok, &err) == IMS_ERR_FORMAT && tok == NULL,
               "no [UNK]: %s", err.msg);
    TEST_CHECK(strstr(err.msg, "[UNK]") != NULL, "the message names the token: %s", err.msg);
}

static void test_utf8_decode(void)
{
    struct {
        const char *bytes;
        size_t len;
        uint32_t cp;
        size_t used;
    } cases[] = {
        {"A", 1, 'A', 1},
        {"\xc3\xa9", 2, 0xE9, 2},
        {"\xe4\xb8\xad", 3, 0x4E2D, 3},
        {"\xf0\x9f\x98\x80", 4, 0x1F600, 4},
        {"\xf4\x8f\xbf\xbf", 4, 0x10FFFF, 4},
        {"\x80", 1, 0xFFFD, 1},          /* a lone continuation byte */
        {"\xc0\xaf", 2, 0xFFFD, 1},      /* overlong lead byte */
        {"\xe0\x80\xaf", 3, 0xFFFD, 1},  /* overlong 3-byte */
        {"\xed\xa0\x80", 3, 0xFFFD, 1},  /* a surrogate */
        {"\xf4\x90\x80\x80", 4, 0xFFFD, 1}, /* above U+10FFFF */
        {"\xe2\x82", 2, 0xFFFD, 2},      /* truncated: the maximal prefix is one U+FFFD */
        {"\xe2\x82x", 3, 0xFFFD, 2},
        {"\xf0\x9f\x98", 3, 0xFFFD, 3},
        {"\xff", 1, 0xFFFD, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint32_t cp = 0;
        size_t used = imsi_utf8_decode((const unsigned char *)cases[i].bytes, cases[i].len, &cp);
        TEST_CHECK(cp == cases[i].cp && used == cases[i].used, "case %zu: U+%04X, %zu bytes", i, (unsigned)cp, used);
    }
}

/* Spot checks of the generated tables, including the version choices of gen_unicode_tables.py. */
static void test_unicode_tables(void)
{
    struct {
        uint32_t cp;
        uint8_t flags, ccc;
        uint32_t nfd0, lower0; /* first code point of each mapping, 0 if none */
    } cases[] = {
        {'A', 0, 0, 0, 'a'},
        {'!', IMS_UNICODE_PUNCT, 0, 0, 0},
        {'\t', IMS_UNICODE_WHITESPACE, 0, 0, 0},
        {0x01, IMS_UNICODE_CONTROL, 0, 0, 0},
        {0x00AD, IMS_UNICODE_CONTROL, 0, 0, 0},        /* soft hyphen: Cf */
        {0x200B, IMS_UNICODE_CONTROL, 0, 0, 0},        /* zero width space: Cf, not White_Space */
        {0x3000, IMS_UNICODE_WHITESPACE, 0, 0, 0},
        {0xE000, IMS_UNICODE_CONTROL, 0, 0, 0},        /* private use: Co */
        {0xFFFD, IMS_UNICODE_CONTROL, 0, 0, 0},
        {0x0301, IMS_UNICODE_MN, 230, 0, 0},
        {0x00E9, 0, 0, 'e', 0},
        {0x00C9, 0, 0, 'E', 0xE9},
        {0x0130, 0, 0, 'I', 'i'},                      /* lowercase i + U+0307 */
        {0x4E00, IMS_UNICODE_CJK, 0, 0, 0},
        {0xF900, IMS_UNICODE_CJK, 0, 0x8C48, 0},       /* a compatibility ideograph decomposes */
        {0x1E944, 0, 230, 0, 0},                       /* Unicode 9.0 Mn: not Mn for 8.0 categories */
        {0x1734, IMS_UNICODE_MN, 9, 0, 0},             /* Mc today, Mn in 8.0 */
        {0x166D, IMS_UNICODE_PUNCT, 0, 0, 0},          /* So today, Po in 8.0 */
        {0x2E52, 0, 0, 0, 0},                          /* Po added in 13.0: not punctuation for 8.0 */
        {0x11938, 0, 0, 0, 0},                         /* decomposes since 13.0, not in 9.0 NFD */
        {0x1C89, 0, 0, 0, 0x1C8A},                     /* Unicode 16.0 lowercase (Rust's std) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const imsi_unicode_record *r = imsi_unicode_props(cases[i].cp);
        uint32_t nfd0 = r->nfd_len ? imsi_unicode_seq(r->nfd_off)[0] : 0;
        uint32_t lower0 = r->lower_len ? imsi_unicode_seq(r->lower_off)[0] : 0;
        TEST_CHECK(r->flags == cases[i].flags && r->ccc == cases[i].ccc && nfd0 == cases[i].nfd0 &&
                       lower0 == cases[i].lower0,
                   "U+%04X: flags %d ccc %d nfd U+%04X lower U+%04X", (unsigned)cases[i].cp, r->flags, r->ccc,
                   (unsigned)nfd0, (unsigned)lower0);
    }
    const imsi_unicode_record *r = imsi_unicode_props(0x0130);
    TEST_CHECK(r->lower_len == 2 && imsi_unicode_seq(r->lower_off)[1] == 0x0307, "U+0130 lowercases to 2 code points");
    TEST_CHECK(imsi_unicode_props(0x110000)->flags == 0 && imsi_unicode_props(UINT32_MAX)->nfd_len == 0,
               "out-of-range code points have no properties");
}

static void test_batch(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    ims_tokenizer *tok = vocab_tokenizer(path, 1, 256);
    if (!tok)
        return;
    const char *texts[4] = {"A man is playing a guitar.", "", "Hello, world! Unbelievable tokenization.",
                            "x \xff y"};
    size_t lens[4];
    for (int b = 0; b < 4; b++)
        lens[b] = strlen(texts[b]);
    int max_len = 256;
    int32_t *ids = malloc(4 * (size_t)max_len * sizeof *ids);
    int32_t lengths[4] = {-1, -1, -1, -1};
    int T = 0;
    ims_error err = {0};
    for (int i = 0; i < 4 * max_len; i++)
        ids[i] = -7; /* poison */
    TEST_OK(ims_tokenizer_encode_batch(tok, texts, lens, 4, max_len, ids, lengths, &T, &err), err);
    int longest = 0;
    for (int b = 0; b < 4; b++) {
        int32_t one[256];
        int n = 0;
        TEST_OK(ims_tokenizer_encode(tok, texts[b], lens[b], one, max_len, &n, &err), err);
        TEST_CHECK(lengths[b] == n, "row %d: length %d, alone %d", b, (int)lengths[b], n);
        TEST_CHECK(memcmp(ids + b * T, one, (size_t)n * sizeof *one) == 0, "row %d differs from encode", b);
        for (int t = n; t < T; t++)
            TEST_CHECK(ids[b * T + t] == 0, "row %d position %d is not [PAD]", b, t);
        if (n > longest)
            longest = n;
    }
    TEST_CHECK(T == longest && T > 2, "T %d, longest %d", T, longest);
    TEST_CHECK(lengths[1] == 2, "the empty text is [CLS] [SEP]");
    /* a batch truncated to 4: every row is at most 4 */
    TEST_OK(ims_tokenizer_encode_batch(tok, texts, lens, 4, 4, ids, lengths, &T, &err), err);
    TEST_CHECK(T == 4 && lengths[0] == 4 && ids[3] == 102 && lengths[1] == 2 && ids[4 + 2] == 0, "truncated batch");
    free(ids);
    ims_tokenizer_free(tok);
}

static void test_from_weights(const char *bert_dir)
{
    ims_error err = {0};
    ims_convert_options o;
    ims_convert_options_init(&o);
    char out[64];
    snprintf(out, sizeof out, "test_tokenizer_%d.isw", (int)getpid());
    ims_convert_report report;
    ims_status st = ims_convert(bert_dir, out, &o, &report, &err);
    TEST_OK(st, err);
    if (st)
        return;
    ims_weights *w = NULL;
    TEST_OK(ims_weights_open(out, 0, &w, &err), err);
    unlink(out);
    if (!w)
        return;
    ims_tokenizer *tok = NULL;
    TEST_OK(ims_tokenizer_create_from_weights(w, &tok, &err), err);
    int64_t lower = -1, max_seq = -1;
    TEST_OK(ims_weights_get_i64(w, "tokenizer.do_lower_case", &lower, &err), err);
    TEST_OK(ims_weights_get_i64(w, "bert.max_seq_length", &max_seq, &err), err);
    ims_weights_close(w); /* the tokenizer keeps its own copy */
    if (!tok)
        return;
    TEST_CHECK(ims_tokenizer_max_len(tok) == max_seq, "max_len %d, max_seq_length %lld", ims_tokenizer_max_len(tok),
               (long long)max_seq);
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab.txt", bert_dir);
    ims_tokenizer *ref = vocab_tokenizer(path, (int)lower, (int)max_seq);
    const char *texts[] = {"The cat sat on the mat.", "A red dog, playing!", "Café über 中 x1 unplayable",
                           "THE CAT sat", "one two three four five six seven eight nine ten eleven twelve"};
    for (size_t i = 0; ref && i < sizeof texts / sizeof *texts; i++) {
        int32_t a[64], b[64];
        int na = 0, nb = 0;
        TEST_OK(ims_tokenizer_encode(tok, texts[i], strlen(texts[i]), a, 0, &na, &err), err);
        TEST_OK(ims_tokenizer_encode(ref, texts[i], strlen(texts[i]), b, 0, &nb, &err), err);
        TEST_CHECK(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0, "'%s': weights and vocab.txt differ",
                   texts[i]);
        TEST_CHECK(na <= max_seq, "'%s': %d tokens > max_seq_length", texts[i], na);
    }
    /* "the cat sat on the mat ." with the tiny vocab: the, cat, sat, on, the, mat, . */
    int32_t ids[64];
    int n = 0;
    TEST_OK(ims_tokenizer_encode(tok, "the cat sat on the mat.", 23, ids, 0, &n, &err), err);
    const int32_t want[] = {2, 5, 7, 9, 10, 5, 11, 25, 3};
    TEST_CHECK(n == 9 && memcmp(ids, want, sizeof want) == 0, "tiny model ids (%d tokens)", n);
    ims_tokenizer_free(ref);
    ims_tokenizer_free(tok);
}

int main(int argc, char **argv)
{
    const char *dir = test_fixture_dir(argc, argv);
    test_utf8_decode();
    test_unicode_tables();
    test_rules();
    test_batch(dir);
    test_corpus(dir);
    if (argc > 2)
        test_from_weights(argv[2]);
    return test_finish();
}
