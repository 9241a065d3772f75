/* hf_model_dir.h: reads a Hugging Face BERT / sentence-transformers model
 * directory (all-MiniLM-L6-v2 and models laid out like it) into the numbers,
 * vocabulary and file paths the converter needs. Nothing here reads weights;
 * the caller opens weights_path with imsi_ckpt_open (checkpoint.h).
 *
 * Files, relative to the directory:
 * - modules.json (optional): the sentence-transformers pipeline. Accepted module
 *   types: models.Transformer (its "path" is the folder holding the files
 *   below; "" = the directory itself), models.Pooling (its folder holds the
 *   pooling config.json) and models.Normalize. Any other module (Dense, ...)
 *   would change the embedding and is refused. Paths must be relative, without
 *   "..". Without modules.json: the transformer is the directory itself, the
 *   pooling folder is "1_Pooling", and normalize is 0.
 * - config.json: model_type "bert" only (other types such as roberta or
 *   distilbert lay their weights out differently); hidden_act "gelu" (exact erf
 *   GELU) only; position_embedding_type "absolute" if present; the sizes below
 *   (positive, hidden_size divisible by num_attention_heads).
 * - model.safetensors, else pytorch_model.bin: weights_path. Neither: error.
 * - vocab.txt: one token per line (LF or CRLF; the last newline optional), UTF-8,
 *   no empty or duplicate token, exactly vocab_size lines.
 * - tokenizer_config.json (optional): do_lower_case (default true);
 *   strip_accents must be absent, null or equal to do_lower_case, and
 *   tokenize_chinese_chars absent or true (the tokenizer implements only those).
 * - sentence_bert_config.json (optional): max_seq_length (default
 *   min(512, max_position_embeddings); must be 2..max_position_embeddings, room
 *   for [CLS] and [SEP]); do_lower_case true there (sentence-transformers then
 *   lowercases the text first) needs the tokenizer's do_lower_case true too.
 * - <pooling folder>/config.json: exactly one pooling_mode_* key true, and it
 *   is pooling_mode_mean_tokens or pooling_mode_cls_token (others are refused
 *   by name); word_embedding_dimension, if present, equals hidden_size. If the
 *   folder has no config.json (or modules.json lists no Pooling module and the
 *   default folder is absent) pooling is mean: what sentence-transformers does
 *   for a plain Hugging Face model.
 *
 * Every message names the file and the field.
 */
#ifndef IMS_HF_MODEL_DIR_H
#define IMS_HF_MODEL_DIR_H

#include "imgsearch.h"

typedef enum hf_pooling {
    HF_POOLING_MEAN = 0, /* mean over tokens with attention mask 1 */
    HF_POOLING_CLS,      /* the [CLS] token's hidden state */
} hf_pooling;

const char *imsi_hf_pooling_name(hf_pooling pooling); /* "mean", "cls" */

typedef struct hf_bert_config {
    int vocab_size, hidden_size, num_layers, num_heads, intermediate_size;
    int max_position_embeddings, type_vocab_size;
    int max_seq_length; /* tokens per input, [CLS] and [SEP] included */
    int do_lower_case;  /* lowercase and strip accents before WordPiece */
    double layer_norm_eps;
    hf_pooling pooling;
    int normalize; /* modules.json lists a Normalize module (L2-normalized output) */
} hf_bert_config;

typedef struct hf_model_dir {
    char *weights_path; /* model.safetensors or pytorch_model.bin, with the directory */
    hf_bert_config config;
    char **vocab; /* vocab_count NUL-terminated tokens; vocab[id] */
    size_t vocab_count;
    char *vocab_storage; /* owns the bytes vocab[] points into */
} hf_model_dir;

/* Reads and validates the directory. On failure *out is left empty (free-able). */
ims_status imsi_hf_model_dir_open(const char *dir, hf_model_dir *out, ims_error *err);
void imsi_hf_model_dir_free(hf_model_dir *d);

#endif /* IMS_HF_MODEL_DIR_H */
