/* Writes the checkpoint fuzzer's seed corpus: a few small valid checkpoints (made by checkpoint_save,
 * so they follow the writer exactly) and damaged variants of them (cut short, a flipped byte, a newer
 * version, wrong magic). Usage: fuzz_make_seeds DIR (the files are a few hundred bytes each). The corpus
 * also keeps the version 1 and 2 files earlier writers made (v1-*, v2-*), which readers still load. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

static const char *dir;

static void die(const char *what, const Err *e)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, e ? e->msg : "failed");
    exit(1);
}

static void write_bytes(const char *name, const uint8_t *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
        die(path, NULL);
}

/* Saves a checkpoint with deterministic contents, then writes the damaged variants beside it. */
static void make(const char *name, const char *vocab_utf8, CellKind cell, float dropout, int E, int H, int L,
                 BatchMode mode, int stateful, int T, int B, OptimizerKind opt, int moments, int resume,
                 const char *data_path, const char *log_path)
{
    Err e;
    Checkpoint ck;
    memset(&ck, 0, sizeof ck);
    ck.version = CHECKPOINT_VERSION;
    if (vocab_from_utf8(&ck.vocab, (const uint8_t *)vocab_utf8, strlen(vocab_utf8), &e) != 0)
        die(name, &e);
    TrainConfig *c = &ck.cfg;
    c->model = (ModelConfig){ck.vocab.size, E, H, L, cell};
    c->dropout = dropout;
    c->mode = mode;
    c->stateful = stateful;
    c->seq_len = T;
    c->batch = B;
    c->optim = optim_defaults();
    c->optim.kind = opt;
    c->steps = 100;
    c->seed = 1337;
    c->val_fraction = 0.1f;
    if (train_config_check(c, &e) != 0)
        die(name, &e);
    size_t P = model_num_params(&c->model);
    ck.params = malloc(sizeof(float) * P);
    for (size_t i = 0; i < P; i++)
        ck.params[i] = (float)((int)(i % 7) - 3) / 8.0f;
    if (moments) {
        ck.m = calloc(P, sizeof(float));
        ck.v = calloc(P, sizeof(float));
        ck.v[0] = 1e-6f;
    }
    ck.step = 42;
    ck.train_loss = 1.5f;
    ck.val_loss = moments ? 1.75f : NAN;
    ck.val_step = moments ? 40 : 0;
    ck.has_run = 1;
    ck.run = (RunSettings){.eval_every = 20, .eval_batches = 2, .save_every = 0, .sample_length = 5,
                           .on_nan = moments ? ON_NAN_SKIP : ON_NAN_STOP};
    ck.data_bytes = 1000;
    ck.data_crc = 0x12345678u;
    ck.data_path = strdup(data_path);
    ck.data_path_abs = strdup(data_path[0] ? "/home/a/data/x.txt" : "");
    ck.log_path = strdup(log_path);
    if (resume) {
        ck.has_resume = 1;
        rng_seed(&ck.rng, 7);
        ck.stream_pos = stateful ? (uint64_t)T : 0; /* streams advance T at a time; only stateful runs have one */
        if (stateful)
            ck.carry = calloc((size_t)model_state_sets(&c->model) * L * B * H, sizeof(float));
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (checkpoint_save(path, &ck, &e) != 0)
        die(name, &e);
    checkpoint_free(&ck);

    uint8_t *buf;
    size_t len;
    if (read_file(path, &buf, &len, &e) != 0 || checkpoint_parse(buf, len, path, &ck, &e) != 0)
        die(name, &e);
    checkpoint_free(&ck);

    char variant[256];
    snprintf(variant, sizeof variant, "%s-cut-header", name);
    write_bytes(variant, buf, 100);
    snprintf(variant, sizeof variant, "%s-cut-last-byte", name);
    write_bytes(variant, buf, len - 1);
    buf[len / 2] ^= 0x10;
    snprintf(variant, sizeof variant, "%s-flipped", name);
    write_bytes(variant, buf, len);
    buf[len / 2] ^= 0x10;
    buf[8] = CHECKPOINT_VERSION + 1; /* a version newer than this reader */
    snprintf(variant, sizeof variant, "%s-version-%d", name, CHECKPOINT_VERSION + 1);
    write_bytes(variant, buf, len);
    free(buf);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    /* Parameters only; a two-character vocabulary, the smallest model. */
    make("tiny", "\na", CELL_RNN, 0.0f, 1, 1, 1, MODE_SEQ, 0, 4, 2, OPT_ADAM, 0, 0, "data/tiny.txt", "");
    /* Moments and resume state with carried hidden state; multi-byte characters in the vocabulary. */
    make("stateful", "\n a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", CELL_RNN, 0.0f, 2, 3, 2, MODE_SEQ, 1, 8, 2, OPT_ADAMW,
         1, 1, "data/caf\xc3\xa9.txt", "/runs/caf\xc3\xa9.csv");
    /* The gated cells with dropout: the LSTM's carry holds h and c, the GRU has b_hn per layer. */
    make("lstm-stateful", "\nab", CELL_LSTM, 0.25f, 2, 3, 2, MODE_SEQ, 1, 4, 2, OPT_ADAM, 1, 1, "x.txt", "");
    make("gru", "\nab", CELL_GRU, 0.5f, 2, 3, 2, MODE_WINDOW, 0, 4, 2, OPT_SGD, 1, 1, "x.txt", "");
    /* Window mode, SGD, resume state without a carry, an empty data path. */
    make("window", "abc", CELL_RNN, 0.0f, 2, 2, 1, MODE_WINDOW, 0, 3, 4, OPT_SGD, 1, 1, "", "");
    const uint8_t junk[] = "CHARRNX\0not a checkpoint";
    write_bytes("wrong-magic", junk, sizeof junk - 1);
    return 0;
}
