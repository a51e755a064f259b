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

#include "checkpoint.h"
#include "testutil.h"
#include "util.h"

static Checkpoint sample_checkpoint(int with_resume)
{
    Checkpoint ck;
    memset(&ck, 0, sizeof ck);
    ck.cfg.model = (ModelConfig){.vocab = 5, .embed = 3, .hidden = 7, .layers = 2};
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
        size_t nc = 2 * 2 * 7;
        ck.carry = malloc(sizeof(float) * nc);
        for (size_t i = 0; i < nc; i++)
            ck.carry[i] = rng_uniform(&r);
    }
    return ck;
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
    cr_assert_eq(buf[140], 14); /* data path length in bytes */
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

/* Found by fuzzing: a file that ends right after the data path, so that the CRC's bytes sit where the
 * vocabulary's length would be. It must be refused, not read past its end. */
Test(checkpoint, rejects_a_file_ending_where_the_vocabulary_length_would_be, .init = setup, .fini = teardown)
{
    uint8_t *buf;
    size_t len;
    saved_bytes(&buf, &len);
    const size_t cut = 144 + 14 + 4; /* header, the 14-byte data path, then only the 4 CRC bytes */
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
