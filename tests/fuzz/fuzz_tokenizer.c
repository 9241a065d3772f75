/* fuzz_tokenizer.c: libFuzzer target for the WordPiece tokenizer and its UTF-8 decoder.
 *
 * Input: byte 0 picks the options (lowercase, accent stripping, cleaning, CJK
 * spacing) and byte 1 the truncation length; the rest is the text. Checks:
 * encode succeeds on any bytes; [CLS] first, [SEP] last, 2 <= n <= max_len,
 * every id in the vocabulary; a shorter max_len gives a prefix of the longer
 * encoding; the batch API agrees with encode row by row; the decoder always
 * advances and yields scalar values only.
 */
#include "models/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *vocab[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##a", "b", "##b", "ab", "##ab", "abc", "##c", "c",
    "é", "##é", "e", "##e", "i", "##i", "i\xcc\x87", "中", "!", ",", ".", "[", "]", "cl", "##s", "σ", "ς",
    "\xf0\x9f\x98\x80", "##\xf0\x9f\x98\x80", "x", "##x", "", "##",
};

static ims_tokenizer *tokenizers[16];

static ims_tokenizer *get_tokenizer(unsigned sel)
{
    sel &= 15;
    if (!tokenizers[sel]) {
        ims_tokenizer_options o;
        ims_tokenizer_options_init(&o);
        o.lowercase = sel & 1;
        o.strip_accents = (sel & 2) ? -1 : 1;
        o.clean_text = !(sel & 4);
        o.handle_chinese_chars = !(sel & 8);
        o.max_input_chars_per_word = 1 + (int)(sel * 7 % 100);
        ims_error err;
        if (ims_tokenizer_create_from_vocab(vocab, sizeof vocab / sizeof *vocab, &o, &tokenizers[sel], &err))
            abort();
    }
    return tokenizers[sel];
}

static void check_decoder(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp = 0;
        size_t used = imsi_utf8_decode(p + i, n - i, &cp);
        if (used < 1 || used > 4 || used > n - i || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
            abort();
        i += used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const ims_tokenizer *tok = get_tokenizer(data[0]);
    int max_len = 2 + data[1] % 64;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;
    check_decoder((const unsigned char *)text, len);

    int32_t full[512], cut[66];
    int n_full = 0, n_cut = 0;
    ims_error err;
    if (ims_tokenizer_encode(tok, text, len, full, 512, &n_full, &err) ||
        ims_tokenizer_encode(tok, text, len, cut, max_len, &n_cut, &err))
        abort();
    size_t vs = ims_tokenizer_vocab_size(tok);
    if (n_full < 2 || n_full > 512 || n_cut < 2 || n_cut > max_len)
        abort();
    if (full[0] != 2 || full[n_full - 1] != 3 || cut[0] != 2 || cut[n_cut - 1] != 3)
        abort();
    for (int t = 0; t < n_full; t++)
        if (full[t] < 0 || (size_t)full[t] >= vs || !ims_tokenizer_decode_token(tok, full[t]))
            abort();
    /* truncation = a prefix of the full encoding */
    int expect_cut = n_full < max_len ? n_full : max_len;
    if (n_full < 512 && (n_cut != expect_cut || memcmp(cut, full, (size_t)(n_cut - 1) * sizeof *cut)))
        abort();

    /* the batch API: the text split in two at its middle */
    const char *texts[2] = {text, text + len / 2};
    size_t lens[2] = {len / 2, len - len / 2};
    int32_t ids[2 * 66], lengths[2];
    int T = 0;
    if (ims_tokenizer_encode_batch(tok, texts, lens, 2, max_len, ids, lengths, &T, &err))
        abort();
    for (int b = 0; b < 2; b++) {
        int32_t one[66];
        int n = 0;
        if (ims_tokenizer_encode(tok, texts[b], lens[b], one, max_len, &n, &err) || n != lengths[b] ||
            memcmp(one, ids + b * T, (size_t)n * sizeof *one))
            abort();
        for (int t = n; t < T; t++)
            if (ids[b * T + t] != 0)
                abort();
    }
    return 0;
}
