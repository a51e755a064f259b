/* The checkpoint format: bit-identical round trips, and every kind of damaged file refused whole. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "testutil.h"
#include "util.h"

static Checkpoint sample_checkpoint_of(int with_resume, CellKind cell, float dropout)
{
    Checkpoint ck;
    memset(&ck, 0, sizeof ck);
    ck.cfg.model = (ModelConfig){.vocab = 5, .embed = 3, .hidden = 7, .layers = 2, .cell = cell};
    ck.cfg.dropout = dropout;
    ck.cfg.mode = MODE_SEQ;
    ck.cfg.stateful = 1;
    ck.cfg.seq_len = 9;
    ck.cfg.batch = 2;
    ck.cfg.optim = optim_defaults();
    ck.cfg.optim.schedule = LR_COSINE;
    ck.cfg.steps = 1234;
    ck.cfg.seed = 0x0123456789ABCDEFull;
    ck.cfg.val_fraction = 0.1f;
    ck.step = 77;
    ck.train_loss = 1.25f;
    ck.val_loss = NAN;
    ck.data_bytes = 1115394;
    ck.data_crc = 0xDEADBEEF;
    ck.data_path = strdup("data/t\xc3\xa9st.txt");
    Err e;
    cr_assert_eq(vocab_build(&ck.vocab, (const uint8_t *)"ab\n\xc3\xa9z", 6, "v", &e), 0);
    size_t P = model_num_params(&ck.cfg.model);
    ck.params = malloc(sizeof(float) * P);
    Rng r;
    rng_seed(&r, 9);
    for (size_t i = 0; i < P; i++)
        ck.params[i] = (float)rng_normal(&r);
    if (with_resume) {
        ck.m = malloc(sizeof(float) * P);
        ck.v = malloc(sizeof(float) * P);
        for (size_t i = 0; i < P; i++) {
            ck.m[i] = rng_uniform(&r) - 0.5f;
            ck.v[i] = rng_uniform(&r);
        }
        ck.has_resume = 1;
        rng_seed(&ck.rng, 77);
        ck.stream_pos = 45;
        size_t nc = (size_t)model_state_sets(&ck.cfg.model) * 2 * 2 * 7;
        ck.carry = malloc(sizeof(float) * nc);
        for (size_t i = 0; i < nc; i++)
            ck.carry[i] = rng_uniform(&r);
    }
    return ck;
}

static Checkpoint sample_checkpoint(int with_resume)
{
    return sample_checkpoint_of(with_resume, CELL_RNN, 0.0f);
}

static char dir[64];
static char path[128];

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
}

static void teardown(void)
{
    remove_tree(dir);
}

static void saved_bytes(uint8_t **buf, size_t *len)
{
    Checkpoint ck = sample_checkpoint(1);
    Err e;
    cr_assert_eq(checkpoint_save(path, &ck, &e), 0, "%s", e.msg);
    checkpoint_free(&ck);
    cr_assert_eq(read_file(path, buf, len, &e), 0);
}

static void expect_refused(const uint8_t *buf, size_t len, const char *needle)
{
    Checkpoint ck;
    Err e;
    write_text_file(path, buf, len);
    cr_assert_eq(checkpoint_load(path, &ck, &e), -1, "a damaged file (%zu bytes) was accepted", len);
    cr_assert(strstr(e.msg, needle), "message '%s' should mention '%s'", e.msg, needle);
    cr_assert(strstr(e.msg, path), "message '%s' should name the file", e.msg);
    cr_assert_null(ck.params, "nothing may be half-loaded");
    cr_assert_null(ck.vocab.codepoints);
}

Test(checkpoint, round_trip_is_bit_identical, .init = setup, .fini = teardown)
{
    Checkpoint a = sample_checkpoint(1), b;
    Err e;
    cr_assert_eq(checkpoint_save(path, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(checkpoint_load(path, &b, &e), 0, "%s", e.msg);
    size_t P = model_num_params(&a.cfg.model);
    cr_assert(memcmp(&a.cfg, &b.cfg, sizeof a.cfg) == 0, "config differs");
    cr_assert(vocab_equal(&a.vocab, &b.vocab));
    cr_assert_eq(a.step, b.step);
    cr_assert_eq(a.train_loss, b.train_loss);
    cr_assert(isnan(b.val_loss));
    cr_assert_eq(a.data_bytes, b.data_bytes);
    cr_assert_eq(a.data_crc, b.data_crc);
    cr_assert_str_eq(a.data_path, b.data_path);
    cr_assert(memcmp(a.params, b.params, sizeof(float) * P) == 0);
    cr_assert(memcmp(a.m, b.m, sizeof(float) * P) == 0);
    cr_assert(memcmp(a.v, b.v, sizeof(float) * P) == 0);
    cr_assert_eq(b.has_resume, 1);
    cr_assert(memcmp(&a.rng, &b.rng, sizeof a.rng) == 0);
    cr_assert_eq(a.stream_pos, b.stream_pos);
    cr_assert(memcmp(a.carry, b.carry, sizeof(float) * 28) == 0);

    /* Saving what was loaded writes the same bytes. */
    char again[160];
    snprintf(again, sizeof again, "%s/again.ckpt", dir);
    cr_assert_eq(checkpoint_save(again, &b, &e), 0);
    uint8_t *x, *y;
    size_t nx, ny;
    read_file(path, &x, &nx, &e);
    read_file(again, &y, &ny, &e);
    cr_assert_eq(nx, ny);
    cr_assert(memcmp(x, y, nx) == 0);
    free(x), free(y);
    checkpoint_free(&a);
    checkpoint_free(&b);
}

Test(checkpoint, parameters_only_checkpoint_round_trips, .init = setup, .fini = teardown)
{
    Checkpoint a = sample_checkpoint(0), b;
    Err e;
    cr_assert_eq(checkpoint_save(path, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(checkpoint_load(path, &b, &e), 0, "%s", e.msg);
    cr_assert_null(b.m);
    cr_assert_eq(b.has_resume, 0);
    cr_assert(memcmp(a.params, b.params, sizeof(float) * model_num_params(&a.cfg.model)) == 0);
    checkpoint_free(&a);
    checkpoint_free(&b);
}

Test(checkpoint, header_is_little_endian_as_documented, .init = setup, .fini = teardown)
{
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    cr_assert(memcmp(buf, "CHARRNN\0", 8) == 0);
    cr_assert_eq(buf[8], CHECKPOINT_VERSION);
    cr_assert_eq(buf[12], 3);   /* flags: moments | resume */
    cr_assert_eq(buf[16], 5);   /* V */
    cr_assert_eq(buf[20], 3);   /* E */
    cr_assert_eq(buf[24], 7);   /* H */
    cr_assert_eq(buf[28], 2);   /* L */
    cr_assert_eq(buf[112], 77); /* step */
    cr_assert_eq(buf[140], 36); /* the length of the extension block (version 2's 28, then version 3's 8) */
    cr_assert_eq(buf[144], 0);  /* the validation loss's step: not measured */
    cr_assert_eq(buf[168], 0);  /* on-nan: stop */
    cr_assert_eq(buf[172], 0);  /* cell: rnn */
    cr_assert_eq(buf[176], 0);  /* dropout 0.0f */
    cr_assert_eq(buf[180], 14); /* data path length in bytes */
    cr_assert_eq(buf[198], 0);  /* absolute data path: none */
    cr_assert_eq(buf[202], 0);  /* log path: none */
    cr_assert_eq(buf[206], 6);  /* vocabulary: 6 bytes */
    uint32_t stored = (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 | (uint32_t)buf[len - 2] << 16 |
                      (uint32_t)buf[len - 1] << 24;
    cr_assert_eq(stored, crc32_update(0, buf, len - 4));
    free(buf);
}

Test(checkpoint, rejects_truncated_files, .init = setup, .fini = teardown)
{
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    const size_t cuts[] = {0, 4, 11, 100, 143, 160, len / 2, len - 5, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        expect_refused(buf, cuts[i], "truncated");
    free(buf);
}

Test(checkpoint, rejects_any_flipped_byte, .init = setup, .fini = teardown)
{
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    for (size_t at = 16; at < len; at += len / 23) {
        buf[at] ^= 0x10;
        expect_refused(buf, len, "corrupted");
        buf[at] ^= 0x10;
    }
    buf[len - 1] ^= 1; /* the CRC itself */
    expect_refused(buf, len, "CRC-32");
    free(buf);
}

Test(checkpoint, rejects_wrong_magic, .init = setup, .fini = teardown)
{
    expect_refused((const uint8_t *)"hello, this is not a checkpoint at all", 38, "wrong magic");
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    buf[0] = 'X';
    expect_refused(buf, len, "wrong magic");
    free(buf);
}

static void set_u32(uint8_t *p, uint32_t x)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(x >> (8 * i));
}

Test(checkpoint, rejects_newer_version_with_a_clear_message, .init = setup, .fini = teardown)
{
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    set_u32(buf + 8, CHECKPOINT_VERSION + 1);
    set_u32(buf + len - 4, crc32_update(0, buf, len - 4)); /* otherwise intact */
    expect_refused(buf, len, "newer");
    free(buf);
}

Test(checkpoint, rejects_trailing_bytes, .init = setup, .fini = teardown)
{
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    uint8_t *longer = malloc(len + 8);
    memcpy(longer, buf, len - 4);
    memset(longer + len - 4, 0, 8);
    set_u32(longer + len + 4, crc32_update(0, longer, len + 4));
    expect_refused(longer, len + 8, "corrupted");
    free(longer);
    free(buf);
}

Test(checkpoint, rejects_valid_crc_with_impossible_shape, .init = setup, .fini = teardown)
{
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    set_u32(buf + 28, 1000); /* 1000 layers */
    set_u32(buf + len - 4, crc32_update(0, buf, len - 4));
    expect_refused(buf, len, "corrupted: layer count 1000 is outside");
    free(buf);
}

static void set_f32(uint8_t *p, float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    set_u32(p, x);
}

/* A file can be intact (its CRC matches) and still describe a run that cannot be: refuse it too. */
Test(checkpoint, rejects_valid_crc_with_impossible_settings, .init = setup, .fini = teardown)
{
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    uint8_t *copy = malloc(len);
    const struct {
        size_t offset;
        int is_float;
        float value;
        const char *needle;
    } cases[] = {
        {52, 1, NAN, "learning rate"},        /* lr */
        {52, 1, -0.5f, "learning rate"},      /* lr */
        {60, 1, 1.0f, "betas"},               /* beta2 */
        {76, 1, INFINITY, "clip"},            /* clip */
        {92, 1, 0.9f, "validation fraction"}, /* val_fraction */
        {32, 0, 1, "stateful"},               /* window mode with the sample's stateful run */
        {40, 0, 0, "batch shape"},            /* T = 0 */
        {96, 0, 0, "step count"},             /* total steps 0 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(copy, buf, len);
        if (cases[i].is_float)
            set_f32(copy + cases[i].offset, cases[i].value);
        else
            set_u32(copy + cases[i].offset, (uint32_t)cases[i].value);
        set_u32(copy + len - 4, crc32_update(0, copy, len - 4));
        expect_refused(copy, len, cases[i].needle);
    }
    memcpy(copy, buf, len);
    set_f32(copy + len - 4 - 112 - 40 - 8 * 237 - 4, NAN); /* the last of the 237 parameters (then m and v) */
    set_u32(copy + len - 4, crc32_update(0, copy, len - 4));
    expect_refused(copy, len, "parameter is not a finite number");
    memcpy(copy, buf, len);
    memset(copy + len - 4 - 112 - 40, 0, 32); /* the batch generator's state, before the position and carry */
    set_u32(copy + len - 4, crc32_update(0, copy, len - 4));
    expect_refused(copy, len, "all zero");
    free(copy);
    free(buf);
}

static void set_u64(uint8_t *p, uint64_t x)
{
    set_u32(p, (uint32_t)x);
    set_u32(p + 4, (uint32_t)(x >> 32));
}

/* Contents no run can have, in files whose CRC is right: each is refused, naming the file. */
Test(checkpoint, rejects_valid_crc_with_impossible_contents, .init = setup, .fini = teardown)
{
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    uint8_t *copy = malloc(len);
    const size_t carry = 4 * 2 * 2 * 7, stream_pos = len - 4 - carry - 8, last_v = stream_pos - 32 - 4;
    const struct {
        size_t offset;
        int bytes; /* 8: u64, 4: u32 or f32 */
        int is_float;
        double value;
        const char *needle;
    } cases[] = {
        {112, 8, 0, 1235, "step 1235 is beyond the run's 1234 steps"},
        {120, 4, 1, -1.0, "negative or infinite"},                  /* train loss */
        {124, 4, 1, INFINITY, "negative or infinite"},              /* validation loss */
        {144, 8, 0, 3, "the validation loss's step 3"},             /* measured, but the loss is NaN */
        {168, 4, 0, 2, "on-nan setting 2"},                         /* neither stop nor skip */
        {172, 4, 0, 3, "cell 3 is none of"},                        /* rnn, gru, lstm are 0..2 */
        {176, 4, 1, 1.0, "dropout 1 is outside"},                   /* would drop every unit */
        {176, 4, 1, -0.25, "dropout -0.25 is outside"},
        {152, 4, 0, 2e9, "eval-every"},                             /* out of range */
        {last_v, 4, 1, -1e-3, "second moment of the optimizer is negative"},
        {stream_pos, 8, 0, 46, "stream position 46 is outside the data"}, /* not a multiple of T = 9 */
        {stream_pos, 8, 0, 9e9, "stream position"},                       /* beyond the text's bytes */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(copy, buf, len);
        if (cases[i].is_float)
            set_f32(copy + cases[i].offset, (float)cases[i].value);
        else if (cases[i].bytes == 8)
            set_u64(copy + cases[i].offset, (uint64_t)cases[i].value);
        else
            set_u32(copy + cases[i].offset, (uint32_t)cases[i].value);
        set_u32(copy + len - 4, crc32_update(0, copy, len - 4));
        expect_refused(copy, len, cases[i].needle);
    }
    free(copy);
    free(buf);
}

/* Where the strings start in a version 3 file: the common fields, the extension block's length, and the
 * block (version 2's 28 bytes, then the cell and the dropout). */
#define V3_STRINGS_AT (140 + 4 + 36)

/* The same checkpoint in format version 1: the common fields, the data path, the vocabulary and the body,
 * without the extension block and the other two paths. */
static size_t as_version_1(const uint8_t *v3, size_t len, uint8_t *v1)
{
    uint32_t path_len = (uint32_t)v3[V3_STRINGS_AT] | (uint32_t)v3[V3_STRINGS_AT + 1] << 8;
    size_t abs_at = V3_STRINGS_AT + 4 + path_len, abs_len = v3[abs_at], log_at = abs_at + 4 + abs_len;
    size_t rest_at = log_at + 4 + v3[log_at], n = 0;
    memcpy(v1, v3, 140);
    set_u32(v1 + 8, 1);
    n = 140;
    memcpy(v1 + n, v3 + V3_STRINGS_AT, 4 + path_len);
    n += 4 + path_len;
    memcpy(v1 + n, v3 + rest_at, len - 4 - rest_at);
    n += len - 4 - rest_at;
    set_u32(v1 + n, crc32_update(0, v1, n));
    return n + 4;
}

Test(checkpoint, version_1_files_still_load, .init = setup, .fini = teardown)
{
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    uint8_t *v1 = malloc(len);
    size_t v1_len = as_version_1(buf, len, v1);
    write_text_file(path, v1, v1_len);
    Checkpoint a = sample_checkpoint(1), b;
    Err e;
    cr_assert_eq(checkpoint_load(path, &b, &e), 0, "%s", e.msg);
    cr_assert_eq(b.version, 1);
    cr_assert_eq(b.has_run, 0, "version 1 stores no run settings");
    cr_assert_eq(b.val_step, 0);
    cr_assert_str_eq(b.data_path, a.data_path);
    cr_assert_str_eq(b.data_path_abs, "");
    cr_assert_str_eq(b.log_path, "");
    cr_assert_eq(b.step, a.step);
    cr_assert(memcmp(&a.cfg, &b.cfg, sizeof a.cfg) == 0);
    cr_assert(memcmp(a.params, b.params, sizeof(float) * model_num_params(&a.cfg.model)) == 0);
    cr_assert_eq(b.stream_pos, a.stream_pos);
    /* saved again, it is a file of the current version with the same contents */
    cr_assert_eq(checkpoint_save(path, &b, &e), 0, "%s", e.msg);
    checkpoint_free(&b);
    cr_assert_eq(checkpoint_load(path, &b, &e), 0, "%s", e.msg);
    cr_assert_eq(b.version, CHECKPOINT_VERSION);
    cr_assert(memcmp(a.params, b.params, sizeof(float) * model_num_params(&a.cfg.model)) == 0);
    checkpoint_free(&a);
    checkpoint_free(&b);
    free(v1);
    free(buf);
}

/* The same checkpoint in format version 2: version 3's cell and dropout cut from the extension block. */
static size_t as_version_2(const uint8_t *v3, size_t len, uint8_t *v2)
{
    memcpy(v2, v3, 172);
    set_u32(v2 + 8, 2);
    set_u32(v2 + 140, 28);
    memcpy(v2 + 172, v3 + V3_STRINGS_AT, len - 4 - V3_STRINGS_AT);
    size_t n = 172 + len - 4 - V3_STRINGS_AT;
    set_u32(v2 + n, crc32_update(0, v2, n));
    return n + 4;
}

Test(checkpoint, version_2_files_load_as_the_tanh_rnn_without_dropout, .init = setup, .fini = teardown)
{
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    uint8_t *v2 = malloc(len);
    write_text_file(path, v2, as_version_2(buf, len, v2));
    Checkpoint a = sample_checkpoint(1), b;
    Err e;
    cr_assert_eq(checkpoint_load(path, &b, &e), 0, "%s", e.msg);
    cr_assert_eq(b.version, 2);
    cr_assert_eq(b.cfg.model.cell, CELL_RNN);
    cr_assert_eq(b.cfg.dropout, 0.0f);
    cr_assert(memcmp(&a.cfg, &b.cfg, sizeof a.cfg) == 0);
    cr_assert(memcmp(a.carry, b.carry, sizeof(float) * 28) == 0);
    checkpoint_free(&a);
    checkpoint_free(&b);
    /* A version 2 file with version 3's longer block is refused: the block's length belongs to the version. */
    set_u32(buf + 8, 2);
    set_u32(buf + len - 4, crc32_update(0, buf, len - 4));
    expect_refused(buf, len, "its extension block has 36 bytes, version 2's has 28");
    free(v2);
    free(buf);
}

/* Each cell's checkpoint keeps the cell, the dropout and the carried state (the LSTM's h and c). */
Test(checkpoint, every_cell_round_trips_with_its_state, .init = setup, .fini = teardown)
{
    for (int cell = 0; cell < CELL_KINDS; cell++) {
        Checkpoint a = sample_checkpoint_of(1, (CellKind)cell, 0.375f), b;
        Err e;
        cr_assert_eq(checkpoint_save(path, &a, &e), 0, "%s", e.msg);
        cr_assert_eq(checkpoint_load(path, &b, &e), 0, "%s: %s", cell_name((CellKind)cell), e.msg);
        cr_assert_eq(b.cfg.model.cell, (CellKind)cell);
        cr_assert_eq(b.cfg.dropout, 0.375f);
        cr_assert(memcmp(&a.cfg, &b.cfg, sizeof a.cfg) == 0);
        size_t P = model_num_params(&a.cfg.model), nc = (size_t)model_state_sets(&a.cfg.model) * 28;
        cr_assert(memcmp(a.params, b.params, sizeof(float) * P) == 0);
        cr_assert(memcmp(a.carry, b.carry, sizeof(float) * nc) == 0, "%s: carried state", cell_name((CellKind)cell));
        checkpoint_free(&a);
        checkpoint_free(&b);
    }
}

Test(checkpoint, version_2_fields_round_trip, .init = setup, .fini = teardown)
{
    Checkpoint a = sample_checkpoint(1), b;
    a.val_loss = 1.5f;
    a.val_step = 70;
    a.data_path_abs = strdup("/data/t\xc3\xa9st.txt");
    a.log_path = strdup("/runs/run.csv");
    a.has_run = 1;
    a.run = (RunSettings){.eval_every = 11, .eval_batches = 3, .save_every = 500, .sample_length = 0,
                          .on_nan = ON_NAN_SKIP};
    Err e;
    cr_assert_eq(checkpoint_save(path, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(checkpoint_load(path, &b, &e), 0, "%s", e.msg);
    cr_assert_eq(b.val_step, 70);
    cr_assert_str_eq(b.data_path_abs, a.data_path_abs);
    cr_assert_str_eq(b.log_path, "/runs/run.csv");
    cr_assert_eq(b.has_run, 1);
    cr_assert(memcmp(&a.run, &b.run, sizeof a.run) == 0);
    checkpoint_free(&a);
    checkpoint_free(&b);
}

/* A file far longer than its header describes (a sparse file of 6 GB, say) is refused before its body
 * is read: the reader compares the lengths in the header with the file's size first. */
Test(checkpoint, length_is_checked_before_the_body_is_read, .init = setup, .fini = teardown)
{
#if defined(__SANITIZE_ADDRESS__)
    SKIP_REMOVING(dir, "AddressSanitizer's shadow memory does not fit under the address-space limit this test sets");
#endif
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    FILE *f = fopen(path, "r+b");
    const long sparse = 6L << 30;
    cr_assert_eq(fseek(f, sparse, SEEK_SET), 0);
    fputc(0, f);
    fclose(f);
    struct rlimit lim, small = {.rlim_cur = 1u << 30, .rlim_max = RLIM_INFINITY};
    getrlimit(RLIMIT_AS, &lim);
    small.rlim_max = lim.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_AS, &small), 0, "an address-space limit far below the file's size");
    Checkpoint ck;
    Err e;
    int rc = checkpoint_load(path, &ck, &e);
    setrlimit(RLIMIT_AS, &lim);
    cr_assert_eq(rc, -1);
    cr_assert(strstr(e.msg, "its header describes") && strstr(e.msg, path), "%s", e.msg);
    free(buf);
}

Test(checkpoint, a_fifo_is_refused_without_blocking, .init = setup, .fini = teardown)
{
    cr_assert_eq(mkfifo(path, 0600), 0);
    Checkpoint ck;
    Err e;
    cr_assert_eq(checkpoint_load(path, &ck, &e), -1);
    cr_assert(strstr(e.msg, "is a FIFO (named pipe)") && strstr(e.msg, path), "%s", e.msg);
}

/* Found by fuzzing: a file that ends right after the data path, so that the CRC's bytes sit where the
 * vocabulary's length would be. It must be refused, not read past its end. */
Test(checkpoint, rejects_a_file_ending_where_the_vocabulary_length_would_be, .init = setup, .fini = teardown)
{
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    const size_t cut = 180 + 4 + 14 + 4 + 4 + 4; /* header, the three paths, then only the 4 CRC bytes */
    set_u32(buf + cut - 4, crc32_update(0, buf, cut - 4));
    expect_refused(buf, cut, "sizes in the header exceed the file");
    free(buf);
}

Test(checkpoint, missing_file_and_directory_are_named, .init = setup, .fini = teardown)
{
    Checkpoint ck;
    Err e;
    cr_assert_eq(checkpoint_load("/nonexistent/x.ckpt", &ck, &e), -1);
    cr_assert(strstr(e.msg, "/nonexistent/x.ckpt: cannot open"), "%s", e.msg);
    cr_assert_eq(checkpoint_load(dir, &ck, &e), -1);
    cr_assert(strstr(e.msg, "is a directory"), "%s", e.msg);
}

static int files_in(const char *d)
{
    DIR *dp = opendir(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(dp));)
        n += de->d_name[0] != '.';
    closedir(dp);
    return n;
}

Test(checkpoint, failed_write_keeps_the_previous_checkpoint, .init = setup, .fini = teardown)
{
    uint8_t *before;
    size_t len;
    saved_bytes(&before, &len);
    /* A file-size limit below the checkpoint's size: the write fails like on a full disk. */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {.rlim_cur = 200, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    Checkpoint ck = sample_checkpoint(1);
    ck.step = 999;
    Err e;
    cr_assert_eq(checkpoint_save(path, &ck, &e), -1, "the write should have failed");
    cr_assert(strstr(e.msg, path), "%s", e.msg);
    lim.rlim_cur = RLIM_INFINITY;
    setrlimit(RLIMIT_FSIZE, &lim);
    uint8_t *after;
    size_t after_len;
    cr_assert_eq(read_file(path, &after, &after_len, &e), 0);
    cr_assert_eq(after_len, len);
    cr_assert(memcmp(before, after, len) == 0, "the previous checkpoint changed");
    cr_assert_eq(files_in(dir), 1, "a temporary file was left behind");
    checkpoint_free(&ck);
    free(before);
    free(after);
}

Test(checkpoint, save_to_a_directory_path_is_refused, .init = setup, .fini = teardown)
{
    Checkpoint ck = sample_checkpoint(0);
    Err e;
    cr_assert_eq(checkpoint_save(dir, &ck, &e), -1);
    cr_assert(strstr(e.msg, "is a directory"), "%s", e.msg);
    checkpoint_free(&ck);
}

/* Saving replaces the file a symbolic link points to, not the link, and keeps the file's permissions. */
Test(checkpoint, saving_through_a_symlink_keeps_the_link_and_the_permissions, .init = setup, .fini = teardown)
{
    char target[160];
    snprintf(target, sizeof target, "%s/real.ckpt", dir);
    Checkpoint ck = sample_checkpoint(1);
    Err e;
    cr_assert_eq(checkpoint_save(target, &ck, &e), 0, "%s", e.msg);
    cr_assert_eq(chmod(target, 0640), 0);
    cr_assert_eq(symlink("real.ckpt", path), 0);
    ck.step = 999;
    cr_assert_eq(checkpoint_save(path, &ck, &e), 0, "%s", e.msg);
    checkpoint_free(&ck);
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_expect(S_ISLNK(st.st_mode), "the link was replaced by a file");
    cr_assert_eq(stat(target, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0640, "permissions %o", (unsigned)(st.st_mode & 0777));
    cr_assert_eq(checkpoint_load(target, &ck, &e), 0, "%s", e.msg);
    cr_expect_eq(ck.step, 999, "the link's target holds the new checkpoint");
    checkpoint_free(&ck);
    cr_expect_eq(files_in(dir), 2, "the target and the link, nothing else");
}
