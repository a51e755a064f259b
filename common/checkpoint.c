#include "checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t MAGIC[8] = {'C', 'H', 'A', 'R', 'R', 'N', 'N', 0};
enum { FLAG_MOMENTS = 1u, FLAG_RESUME = 2u, KNOWN_FLAGS = 3u };
#define FIXED_HEADER 144 /* bytes before the data path: magic .. data path length */

/* ---- little-endian byte writer ---- */

typedef struct {
    uint8_t *p;
} Out;

static void put_u32(Out *o, uint32_t x)
{
    for (int i = 0; i < 4; i++)
        *o->p++ = (uint8_t)(x >> (8 * i));
}

static void put_u64(Out *o, uint64_t x)
{
    for (int i = 0; i < 8; i++)
        *o->p++ = (uint8_t)(x >> (8 * i));
}

static void put_f32(Out *o, float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    put_u32(o, x);
}

static void put_bytes(Out *o, const void *data, size_t n)
{
    if (n)
        memcpy(o->p, data, n);
    o->p += n;
}

static void put_floats(Out *o, const float *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_f32(o, f[i]);
}

/* ---- bounds-checked little-endian reader ---- */

typedef struct {
    const uint8_t *p, *end;
} In;

static uint32_t get_u32(In *in)
{
    uint32_t x = 0;
    for (int i = 0; i < 4; i++)
        x |= (uint32_t)in->p[i] << (8 * i);
    in->p += 4;
    return x;
}

static uint64_t get_u64(In *in)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)in->p[i] << (8 * i);
    in->p += 8;
    return x;
}

static float get_f32(In *in)
{
    uint32_t x = get_u32(in);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* Reads n floats; returns 0 when all are finite (a checkpoint never holds NaN or infinity). */
static int get_floats(In *in, float *f, size_t n)
{
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        f[i] = get_f32(in);
        finite &= isfinite(f[i]) != 0;
    }
    return finite ? 0 : -1;
}

/* ---- sizes ---- */

static size_t carry_floats(const TrainConfig *c)
{
    return c->stateful ? (size_t)c->model.layers * (size_t)c->batch * (size_t)c->model.hidden : 0;
}

/* Everything after the vocabulary, as the flags and config say it must be. */
static size_t body_bytes(const TrainConfig *c, uint32_t flags)
{
    size_t P = model_num_params(&c->model);
    size_t n = 8 + 4 * P;
    if (flags & FLAG_MOMENTS)
        n += 8 * P;
    if (flags & FLAG_RESUME)
        n += 32 + 8 + 4 * carry_floats(c);
    return n + 4; /* CRC */
}

int checkpoint_save(const char *path, const Checkpoint *ck, Err *e)
{
    const TrainConfig *c = &ck->cfg;
    uint8_t *vocab;
    size_t vocab_len;
    if (vocab_to_utf8(&ck->vocab, &vocab, &vocab_len, e) != 0)
        return -1;
    size_t path_len = ck->data_path ? strlen(ck->data_path) : 0;
    uint32_t flags = (ck->m && ck->v ? FLAG_MOMENTS : 0) | (ck->has_resume ? FLAG_RESUME : 0);
    size_t total = FIXED_HEADER + path_len + 4 + vocab_len + body_bytes(c, flags);
    uint8_t *buf = malloc(total);
    if (!buf) {
        free(vocab);
        return err_set(e, "%s: out of memory for a %zu-byte checkpoint", path, total);
    }
    Out o = {buf};
    put_bytes(&o, MAGIC, 8);
    put_u32(&o, CHECKPOINT_VERSION);
    put_u32(&o, flags);
    put_u32(&o, (uint32_t)c->model.vocab);
    put_u32(&o, (uint32_t)c->model.embed);
    put_u32(&o, (uint32_t)c->model.hidden);
    put_u32(&o, (uint32_t)c->model.layers);
    put_u32(&o, (uint32_t)c->mode);
    put_u32(&o, (uint32_t)c->stateful);
    put_u32(&o, (uint32_t)c->seq_len);
    put_u32(&o, (uint32_t)c->batch);
    put_u32(&o, (uint32_t)c->optim.kind);
    put_f32(&o, c->optim.lr);
    put_f32(&o, c->optim.beta1);
    put_f32(&o, c->optim.beta2);
    put_f32(&o, c->optim.eps);
    put_f32(&o, c->optim.weight_decay);
    put_f32(&o, c->optim.momentum);
    put_f32(&o, c->optim.clip);
    put_u32(&o, (uint32_t)c->optim.schedule);
    put_u32(&o, (uint32_t)c->optim.warmup);
    put_f32(&o, c->optim.min_lr);
    put_f32(&o, c->val_fraction);
    put_u64(&o, (uint64_t)c->steps);
    put_u64(&o, c->seed);
    put_u64(&o, (uint64_t)ck->step);
    put_f32(&o, ck->train_loss);
    put_f32(&o, ck->val_loss);
    put_u64(&o, ck->data_bytes);
    put_u32(&o, ck->data_crc);
    put_u32(&o, (uint32_t)path_len);
    put_bytes(&o, ck->data_path, path_len);
    put_u32(&o, (uint32_t)vocab_len);
    put_bytes(&o, vocab, vocab_len);
    free(vocab);
    size_t P = model_num_params(&c->model);
    put_u64(&o, P);
    put_floats(&o, ck->params, P);
    if (flags & FLAG_MOMENTS) {
        put_floats(&o, ck->m, P);
        put_floats(&o, ck->v, P);
    }
    if (flags & FLAG_RESUME) {
        for (int i = 0; i < 4; i++)
            put_u64(&o, ck->rng.s[i]);
        put_u64(&o, ck->stream_pos);
        put_floats(&o, ck->carry, carry_floats(c));
    }
    put_u32(&o, crc32_update(0, buf, (size_t)(o.p - buf)));
    int rc = write_file_atomic(path, buf, total, e);
    free(buf);
    return rc;
}

void checkpoint_free(Checkpoint *ck)
{
    vocab_free(&ck->vocab);
    free(ck->data_path);
    free(ck->params);
    free(ck->m);
    free(ck->v);
    free(ck->carry);
    memset(ck, 0, sizeof *ck);
}

static int fail(Checkpoint *ck, Err *e, const char *name, const char *what)
{
    checkpoint_free(ck);
    return err_set(e, "%s: %s", name, what);
}

/* Reads the configuration after the magic, version and flags; checks every value's range. */
static int read_config(In *in, TrainConfig *c, Err *why)
{
    c->model.vocab = (int)get_u32(in);
    c->model.embed = (int)get_u32(in);
    c->model.hidden = (int)get_u32(in);
    c->model.layers = (int)get_u32(in);
    uint32_t mode = get_u32(in), stateful = get_u32(in);
    uint32_t T = get_u32(in), B = get_u32(in), opt = get_u32(in);
    c->optim.lr = get_f32(in);
    c->optim.beta1 = get_f32(in);
    c->optim.beta2 = get_f32(in);
    c->optim.eps = get_f32(in);
    c->optim.weight_decay = get_f32(in);
    c->optim.momentum = get_f32(in);
    c->optim.clip = get_f32(in);
    uint32_t schedule = get_u32(in), warmup = get_u32(in);
    c->optim.min_lr = get_f32(in);
    c->val_fraction = get_f32(in);
    uint64_t steps = get_u64(in);
    c->seed = get_u64(in);
    if (mode > MODE_WINDOW || opt > OPT_SGD || schedule > LR_COSINE || stateful > 1 || T > MAX_SEQ_LEN ||
        B > MAX_BATCH || warmup > MAX_WARMUP || steps > (uint64_t)MAX_STEPS)
        return err_set(why, "a setting is out of range");
    c->mode = (BatchMode)mode;
    c->stateful = (int)stateful;
    c->seq_len = (int)T;
    c->batch = (int)B;
    c->optim.kind = (OptimizerKind)opt;
    c->optim.schedule = (LrSchedule)schedule;
    c->optim.warmup = (int)warmup;
    c->steps = (long)steps;
    return train_config_check(c, why);
}

int checkpoint_parse(const uint8_t *buf, size_t len, const char *name, Checkpoint *ck, Err *e)
{
    memset(ck, 0, sizeof *ck);
    char msg[160];
    if (memcmp(buf, MAGIC, len < 8 ? len : 8) != 0)
        return fail(ck, e, name, "not a charrnn checkpoint (wrong magic bytes)");
    if (len < 12) {
        snprintf(msg, sizeof msg, "truncated: %zu bytes, too short to be a checkpoint", len);
        return fail(ck, e, name, msg);
    }
    In in = {buf + 8, buf + len};
    uint32_t version = get_u32(&in);
    if (version > CHECKPOINT_VERSION) {
        snprintf(msg, sizeof msg, "format version %u is newer than this charrnn reads (up to %d); update charrnn",
                 version, CHECKPOINT_VERSION);
        return fail(ck, e, name, msg);
    }
    if (version == 0)
        return fail(ck, e, name, "corrupted: format version 0 does not exist");
    if (len < FIXED_HEADER + 8) {
        snprintf(msg, sizeof msg, "truncated: %zu bytes, shorter than the %d-byte header", len, FIXED_HEADER);
        return fail(ck, e, name, msg);
    }
    uint32_t stored_crc = (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 | (uint32_t)buf[len - 2] << 16 |
                          (uint32_t)buf[len - 1] << 24;
    int crc_ok = crc32_update(0, buf, len - 4) == stored_crc;

    ck->version = (int)version;
    uint32_t flags = get_u32(&in);
    Err why;
    int bad = read_config(&in, &ck->cfg, &why) != 0;
    if (!bad && (flags & ~KNOWN_FLAGS))
        bad = err_set(&why, "unknown flag bits") != 0;
    uint64_t step = get_u64(&in);
    if (!bad && step > (uint64_t)MAX_STEPS)
        bad = err_set(&why, "step %llu is out of range", (unsigned long long)step) != 0;
    if (bad) {
        if (!crc_ok)
            return fail(ck, e, name, "corrupted (CRC-32 mismatch)");
        char detail[sizeof why.msg + 16];
        snprintf(detail, sizeof detail, "corrupted: %s", why.msg);
        return fail(ck, e, name, detail);
    }
    ck->step = (long)step;
    ck->train_loss = get_f32(&in);
    ck->val_loss = get_f32(&in);
    ck->data_bytes = get_u64(&in);
    ck->data_crc = get_u32(&in);
    /* From here on sizes come from the file: check each against what is left before using it. */
    uint32_t path_len = get_u32(&in);
    size_t expected = FIXED_HEADER + (size_t)path_len + 4;
    if (expected <= len) { /* the vocabulary's length field lies inside the file: it is not the CRC */
        In at = {buf + FIXED_HEADER + path_len, buf + len};
        expected += (size_t)get_u32(&at);
    }
    expected += body_bytes(&ck->cfg, flags);
    if (expected > len) {
        snprintf(msg, sizeof msg, "truncated or corrupted: %zu bytes, its header describes %zu", len, expected);
        return fail(ck, e, name, crc_ok ? "corrupted: sizes in the header exceed the file" : msg);
    }
    if (!crc_ok)
        return fail(ck, e, name, "corrupted (CRC-32 mismatch: the file was damaged or cut short)");
    if (expected != len)
        return fail(ck, e, name, "corrupted: unexpected bytes after the last field");

    ck->data_path = malloc((size_t)path_len + 1);
    if (!ck->data_path)
        return fail(ck, e, name, "out of memory");
    memcpy(ck->data_path, in.p, path_len);
    ck->data_path[path_len] = 0;
    in.p += path_len;
    uint32_t vocab_len = get_u32(&in);
    Err verr;
    if (vocab_from_utf8(&ck->vocab, in.p, vocab_len, &verr) != 0)
        return fail(ck, e, name, verr.msg);
    in.p += vocab_len;
    if (ck->vocab.size != ck->cfg.model.vocab)
        return fail(ck, e, name, "corrupted: the vocabulary does not match the model's vocabulary size");
    size_t P = model_num_params(&ck->cfg.model);
    if (get_u64(&in) != P)
        return fail(ck, e, name, "corrupted: the parameter count does not match the model shape");
    ck->params = malloc(sizeof(float) * P);
    if (!ck->params)
        return fail(ck, e, name, "out of memory for the parameters");
    if (get_floats(&in, ck->params, P) != 0)
        return fail(ck, e, name, "corrupted: a parameter is not a finite number");
    if (flags & FLAG_MOMENTS) {
        ck->m = malloc(sizeof(float) * P);
        ck->v = malloc(sizeof(float) * P);
        if (!ck->m || !ck->v)
            return fail(ck, e, name, "out of memory for the optimizer state");
        if (get_floats(&in, ck->m, P) != 0 || get_floats(&in, ck->v, P) != 0)
            return fail(ck, e, name, "corrupted: an optimizer moment is not a finite number");
    }
    if (flags & FLAG_RESUME) {
        ck->has_resume = 1;
        for (int i = 0; i < 4; i++)
            ck->rng.s[i] = get_u64(&in);
        if ((ck->rng.s[0] | ck->rng.s[1] | ck->rng.s[2] | ck->rng.s[3]) == 0) /* xoshiro's one dead state */
            return fail(ck, e, name, "corrupted: the batch generator's state is all zero");
        ck->stream_pos = get_u64(&in);
        size_t nc = carry_floats(&ck->cfg);
        if (nc) {
            ck->carry = malloc(sizeof(float) * nc);
            if (!ck->carry)
                return fail(ck, e, name, "out of memory for the carried state");
            if (get_floats(&in, ck->carry, nc) != 0)
                return fail(ck, e, name, "corrupted: the carried state is not finite");
        }
    }
    return 0;
}

int checkpoint_load(const char *path, Checkpoint *ck, Err *e)
{
    uint8_t *buf;
    size_t len;
    memset(ck, 0, sizeof *ck);
    if (read_file(path, &buf, &len, e) != 0)
        return -1;
    int rc = checkpoint_parse(buf, len, path, ck, e);
    free(buf);
    return rc;
}
