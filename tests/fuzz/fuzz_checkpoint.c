/* libFuzzer target: the checkpoint reader.
 *
 * Every input is parsed twice by checkpoint_parse: once exactly as given, and once with its last four
 * bytes replaced by the CRC-32 of the rest, so that mutations get past the checksum and reach the size
 * checks and field reads behind it (a crafted file can always carry a correct CRC). On failure the
 * Checkpoint must be left empty; on success its contents must be consistent, and writing it back with
 * checkpoint_save must give the same bytes (for an older version's file: a file of the current version
 * that reads the same). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz_checkpoint: invariant violated: %s (line %d)\n", #cond, __LINE__);                   \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* Where a successfully parsed checkpoint is written back (one file per process). */
static char roundtrip_path[64];

static void check_empty(const Checkpoint *ck)
{
    CHECK(!ck->params && !ck->m && !ck->v && !ck->carry && !ck->data_path && !ck->data_path_abs && !ck->log_path &&
          !ck->vocab.codepoints);
    CHECK(ck->vocab.size == 0 && ck->has_resume == 0);
}

static void check_loaded(const Checkpoint *ck, const uint8_t *buf, size_t len)
{
    Err e;
    CHECK(ck->version >= 1 && ck->version <= CHECKPOINT_VERSION);
    CHECK(ck->version >= 3 || (ck->cfg.model.cell == CELL_RNN && ck->cfg.dropout == 0.0f));
    CHECK(train_config_check(&ck->cfg, &e) == 0);
    CHECK(ck->step >= 0 && ck->step <= ck->cfg.steps);
    CHECK(ck->val_step >= 0 && ck->val_step <= ck->step);
    CHECK(ck->vocab.size == ck->cfg.model.vocab);
    for (int i = 1; i < ck->vocab.size; i++)
        CHECK(ck->vocab.codepoints[i - 1] < ck->vocab.codepoints[i]);
    CHECK(ck->data_path != NULL && ck->data_path_abs != NULL && ck->log_path != NULL && ck->params != NULL);
    CHECK(strlen(ck->data_path) <= MAX_STORED_PATH && strlen(ck->log_path) <= MAX_STORED_PATH);
    CHECK(ck->has_run == (ck->version >= 2));
    CHECK(!ck->has_run || run_settings_check(&ck->run, &e) == 0);
    CHECK((ck->m == NULL) == (ck->v == NULL));
    for (size_t i = 0; ck->v && i < model_num_params(&ck->cfg.model); i++)
        CHECK(ck->v[i] >= 0.0f);
    CHECK(ck->has_resume || ck->carry == NULL);
    if (ck->has_resume)
        CHECK((ck->carry != NULL) == (ck->cfg.stateful != 0));
    /* The whole image was accounted for, so nothing can be larger than it. */
    CHECK(model_num_params(&ck->cfg.model) * sizeof(float) < len);

    /* The writer must produce exactly the bytes the reader accepted (it writes the current version: an
     * older file comes back as a file of the current version that reads the same). */
    CHECK(checkpoint_save(roundtrip_path, ck, &e) == 0);
    uint8_t *again;
    size_t again_len;
    CHECK(read_file(roundtrip_path, &again, &again_len, &e) == 0);
    if (ck->version == CHECKPOINT_VERSION) {
        CHECK(again_len == len && memcmp(again, buf, len) == 0);
    } else {
        Checkpoint back;
        CHECK(checkpoint_parse(again, again_len, "fuzz", &back, &e) == 0);
        size_t P = model_num_params(&ck->cfg.model);
        CHECK(back.step == ck->step && memcmp(&back.cfg, &ck->cfg, sizeof back.cfg) == 0);
        CHECK(strcmp(back.data_path, ck->data_path) == 0 && memcmp(back.params, ck->params, sizeof(float) * P) == 0);
        checkpoint_free(&back);
    }
    free(again);
}

static void parse_one(const uint8_t *buf, size_t len)
{
    Checkpoint ck;
    Err e;
    memset(&e, 0, sizeof e);
    if (checkpoint_parse(buf, len, "fuzz", &ck, &e) == 0) {
        check_loaded(&ck, buf, len);
        checkpoint_free(&ck);
    } else {
        check_empty(&ck);
        CHECK(memchr(e.msg, 0, sizeof e.msg) != NULL && e.msg[0] != 0);
    }
}

static void remove_roundtrip_file(void)
{
    unlink(roundtrip_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!roundtrip_path[0]) {
        snprintf(roundtrip_path, sizeof roundtrip_path, "/tmp/charrnn-fuzz-%ld.bin", (long)getpid());
        atexit(remove_roundtrip_file);
    }

    /* Copies, so that ASan sees reads past the end of exactly `size` bytes. */
    uint8_t *buf = malloc(size ? size : 1);
    if (size)
        memcpy(buf, data, size);
    parse_one(buf, size);
    if (size >= 4) {
        uint32_t crc = crc32_update(0, buf, size - 4);
        for (int i = 0; i < 4; i++)
            buf[size - 4 + i] = (uint8_t)(crc >> (8 * i));
        parse_one(buf, size);
    }
    free(buf);
    return 0;
}
