#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memory.h"

static const uint8_t MAGIC[8] = {'C', 'H', 'A', 'R', 'R', 'N', 'N', 0};
enum { FLAG_MOMENTS = 1u, FLAG_RESUME = 2u, KNOWN_FLAGS = 3u };
/* Magic .. the training text's CRC-32: the same fields at the same offsets in every version. */
#define COMMON_FIELDS 140
/* Version 2's fields after them, the length of its extension block: the validation loss's step (u64) and
 * five u32 run settings. A later version appends its fields to this block and makes it longer. */
#define V2_EXTENSION 28
/* The strings after the extension block: the data path as given, its absolute path, the log path. */
#define V2_STRINGS 3
/* Where the first variable-length field starts, in each version. */
static size_t header_bytes(uint32_t version)
{
    return version == 1 ? COMMON_FIELDS : COMMON_FIELDS + 4 + V2_EXTENSION;
}
/* The longest header a valid file can have: read first, before anything else of a large file. */
#define HEAD_MAX (COMMON_FIELDS + 4 + V2_EXTENSION + V2_STRINGS * (4 + MAX_STORED_PATH) + 4 + 4 * VOCAB_MAX_SIZE)

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

uint64_t checkpoint_size_estimate(const TrainConfig *c)
{
    return HEAD_MAX - 4 * (uint64_t)VOCAB_MAX_SIZE + 4 * (uint64_t)c->model.vocab +
           body_bytes(c, FLAG_MOMENTS | FLAG_RESUME);
}

static uint32_t u32_at(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Where a file's variable-length fields lie, from the length fields of its header. */
typedef struct {
    size_t extension;        /* bytes of the fields added since version 1 */
    size_t n_strings;        /* 1 in version 1 (the data path), V2_STRINGS since */
    size_t str_at[V2_STRINGS], str_len[V2_STRINGS];
    size_t vocab_at, vocab_len;
    size_t body_at;
} Layout;

/* Reads the length fields among the first `have` bytes (which must not include the CRC) and returns the
 * file length they describe, or 0 when one of them lies past `have`. */
static uint64_t described_length(const uint8_t *buf, size_t have, uint32_t version, const TrainConfig *c,
                                 uint32_t flags, Layout *lay)
{
    memset(lay, 0, sizeof *lay);
    uint64_t at = COMMON_FIELDS;
    if (version >= 2) {
        if (at + 4 > have)
            return 0;
        lay->extension = u32_at(buf + at);
        at += 4 + (uint64_t)lay->extension;
    }
    lay->n_strings = version >= 2 ? V2_STRINGS : 1;
    for (size_t i = 0; i < lay->n_strings; i++) {
        if (at + 4 > have)
            return 0;
        lay->str_len[i] = u32_at(buf + at);
        lay->str_at[i] = (size_t)at + 4;
        at += 4 + (uint64_t)lay->str_len[i];
    }
    if (at + 4 > have)
        return 0;
    lay->vocab_len = u32_at(buf + at);
    lay->vocab_at = (size_t)at + 4;
    at += 4 + (uint64_t)lay->vocab_len;
    lay->body_at = (size_t)at;
    return at + body_bytes(c, flags);
}

static void put_string(Out *o, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    put_u32(o, (uint32_t)n);
    put_bytes(o, s, n);
}

int checkpoint_save(const char *path, const Checkpoint *ck, Err *e)
{
    const TrainConfig *c = &ck->cfg;
    const char *strings[V2_STRINGS] = {ck->data_path, ck->data_path_abs, ck->log_path};
    size_t strings_len = 0;
    for (int i = 0; i < V2_STRINGS; i++) {
        size_t n = strings[i] ? strlen(strings[i]) : 0;
        if (n > MAX_STORED_PATH)
            return err_set(e, "%s: a path of %zu bytes is longer than a checkpoint stores (%d)", path, n,
                           MAX_STORED_PATH);
        strings_len += 4 + n;
    }
    uint8_t *vocab;
    size_t vocab_len;
    if (vocab_to_utf8(&ck->vocab, &vocab, &vocab_len, e) != 0)
        return -1;
    uint32_t flags = (ck->m && ck->v ? FLAG_MOMENTS : 0) | (ck->has_resume ? FLAG_RESUME : 0);
    size_t total = header_bytes(CHECKPOINT_VERSION) + strings_len + 4 + vocab_len + body_bytes(c, flags);
    uint8_t *buf = malloc(total);
    if (!buf) {
        free(vocab);
        return err_set(e, "%s: out of memory for a %zu-byte checkpoint", path, total);
    }
    const RunSettings none = {0};
    const RunSettings *run = ck->has_run ? &ck->run : &none;
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
    put_u32(&o, V2_EXTENSION);
    put_u64(&o, (uint64_t)ck->val_step);
    put_u32(&o, (uint32_t)run->eval_every);
    put_u32(&o, (uint32_t)run->eval_batches);
    put_u32(&o, (uint32_t)run->save_every);
    put_u32(&o, (uint32_t)run->sample_length);
    put_u32(&o, (uint32_t)run->on_nan);
    for (int i = 0; i < V2_STRINGS; i++)
        put_string(&o, strings[i]);
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
    free(ck->data_path_abs);
    free(ck->log_path);
    free(ck->params);
    free(ck->m);
    free(ck->v);
    free(ck->carry);
    memset(ck, 0, sizeof *ck);
}

void checkpoint_drop_arrays(Checkpoint *ck)
{
    free(ck->params);
    free(ck->m);
    free(ck->v);
    free(ck->carry);
    ck->params = ck->m = ck->v = ck->carry = NULL;
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

/* A measured loss is a finite cross-entropy, never negative; NaN means not measured. */
static int loss_is_possible(float loss)
{
    return isnan(loss) || (isfinite(loss) && loss >= 0.0f);
}

/* The fields before the variable-length ones (COMMON_FIELDS, then version 2's extension), with every
 * value's range checked; *flags gets the flags. Needs header_bytes(version) bytes of buf. */
static int read_header(const uint8_t *buf, uint32_t version, Checkpoint *ck, uint32_t *flags, Err *why)
{
    In in = {buf + 12, buf + header_bytes(version)};
    *flags = get_u32(&in);
    if (read_config(&in, &ck->cfg, why) != 0)
        return -1;
    if (*flags & ~KNOWN_FLAGS)
        return err_set(why, "unknown flag bits");
    uint64_t step = get_u64(&in);
    if (step > (uint64_t)ck->cfg.steps)
        return err_set(why, "step %llu is beyond the run's %ld steps", (unsigned long long)step, ck->cfg.steps);
    ck->step = (long)step;
    ck->train_loss = get_f32(&in);
    ck->val_loss = get_f32(&in);
    if (!loss_is_possible(ck->train_loss) || !loss_is_possible(ck->val_loss))
        return err_set(why, "a stored loss (%g, %g) is negative or infinite", (double)ck->train_loss,
                       (double)ck->val_loss);
    ck->data_bytes = get_u64(&in);
    ck->data_crc = get_u32(&in);
    if (version == 1)
        return 0;
    uint32_t extension = get_u32(&in);
    if (extension != V2_EXTENSION)
        return err_set(why, "its extension block has %u bytes, version 2's has %d", extension, V2_EXTENSION);
    uint64_t val_step = get_u64(&in);
    if (val_step > step || (val_step != 0 && isnan(ck->val_loss))) /* 0 with a loss: measured before version 2 */
        return err_set(why, "the validation loss's step %llu does not fit its step %llu and loss %g",
                       (unsigned long long)val_step, (unsigned long long)step, (double)ck->val_loss);
    ck->val_step = (long)val_step;
    ck->has_run = 1;
    ck->run.eval_every = (int)get_u32(&in);
    ck->run.eval_batches = (int)get_u32(&in);
    ck->run.save_every = (int)get_u32(&in);
    ck->run.sample_length = (int)get_u32(&in);
    uint32_t on_nan = get_u32(&in);
    if (on_nan > ON_NAN_SKIP)
        return err_set(why, "the on-nan setting %u is neither stop (0) nor skip (1)", on_nan);
    ck->run.on_nan = (OnNan)on_nan;
    return run_settings_check(&ck->run, why);
}

/* A stored path: at most MAX_STORED_PATH bytes, none of them NUL (no command line can give one). */
static char *read_string(const uint8_t *p, size_t n, Err *why)
{
    if (n > MAX_STORED_PATH || memchr(p, 0, n)) {
        err_set(why, "a stored path is longer than %d bytes or holds a NUL byte", MAX_STORED_PATH);
        return NULL;
    }
    char *s = malloc(n + 1);
    if (!s) {
        err_set(why, "out of memory");
        return NULL;
    }
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

int checkpoint_parse(const uint8_t *buf, size_t len, const char *name, Checkpoint *ck, Err *e)
{
    memset(ck, 0, sizeof *ck);
    char msg[600];
    if (memcmp(buf, MAGIC, len < 8 ? len : 8) != 0)
        return fail(ck, e, name, "not a charrnn checkpoint (wrong magic bytes)");
    if (len < 12) {
        snprintf(msg, sizeof msg, "truncated: %zu bytes, too short to be a checkpoint", len);
        return fail(ck, e, name, msg);
    }
    uint32_t version = u32_at(buf + 8);
    if (version > CHECKPOINT_VERSION) {
        snprintf(msg, sizeof msg, "format version %u is newer than this charrnn reads (up to %d); update charrnn",
                 version, CHECKPOINT_VERSION);
        return fail(ck, e, name, msg);
    }
    if (version == 0)
        return fail(ck, e, name, "corrupted: format version 0 does not exist");
    if (len < header_bytes(version) + 8) {
        snprintf(msg, sizeof msg, "truncated: %zu bytes, shorter than the %zu-byte header", len,
                 header_bytes(version) + 8);
        return fail(ck, e, name, msg);
    }
    int crc_ok = crc32_update(0, buf, len - 4) == u32_at(buf + len - 4);

    ck->version = (int)version;
    uint32_t flags;
    Err why;
    if (read_header(buf, version, ck, &flags, &why) != 0) {
        if (!crc_ok)
            return fail(ck, e, name, "corrupted (CRC-32 mismatch)");
        snprintf(msg, sizeof msg, "corrupted: %s", why.msg);
        return fail(ck, e, name, msg);
    }
    /* From here on sizes come from the file: check each against what is left before using it. The CRC is
     * not part of the header, so no length field is read from it. */
    Layout lay;
    uint64_t expected = described_length(buf, len - 4, version, &ck->cfg, flags, &lay);
    if (expected == 0 || expected > len) {
        if (expected == 0)
            snprintf(msg, sizeof msg, "truncated or corrupted: %zu bytes, too short for the lengths in its header",
                     len);
        else
            snprintf(msg, sizeof msg, "truncated or corrupted: %zu bytes, its header describes %llu", len,
                     (unsigned long long)expected);
        return fail(ck, e, name, crc_ok ? "corrupted: sizes in the header exceed the file" : msg);
    }
    if (!crc_ok)
        return fail(ck, e, name, "corrupted (CRC-32 mismatch: the file was damaged or cut short)");
    if (expected != len)
        return fail(ck, e, name, "corrupted: unexpected bytes after the last field");

    char **strings[V2_STRINGS] = {&ck->data_path, &ck->data_path_abs, &ck->log_path};
    for (size_t i = 0; i < V2_STRINGS; i++) {
        *strings[i] = read_string(buf + lay.str_at[i], i < lay.n_strings ? lay.str_len[i] : 0, &why);
        if (!*strings[i]) {
            snprintf(msg, sizeof msg, "corrupted: %s", why.msg);
            return fail(ck, e, name, msg);
        }
    }
    Err verr;
    if (vocab_from_utf8(&ck->vocab, buf + lay.vocab_at, lay.vocab_len, &verr) != 0)
        return fail(ck, e, name, verr.msg);
    if (ck->vocab.size != ck->cfg.model.vocab)
        return fail(ck, e, name, "corrupted: the vocabulary does not match the model's vocabulary size");
    In in = {buf + lay.body_at, buf + len};
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
        for (size_t i = 0; i < P; i++)
            if (ck->v[i] < 0.0f) /* a mean of squares */
                return fail(ck, e, name, "corrupted: a second moment of the optimizer is negative");
    }
    if (flags & FLAG_RESUME) {
        ck->has_resume = 1;
        for (int i = 0; i < 4; i++)
            ck->rng.s[i] = get_u64(&in);
        if ((ck->rng.s[0] | ck->rng.s[1] | ck->rng.s[2] | ck->rng.s[3]) == 0) /* xoshiro's one dead state */
            return fail(ck, e, name, "corrupted: the batch generator's state is all zero");
        ck->stream_pos = get_u64(&in);
        /* Streams advance T characters per batch from 0, inside a text of data_bytes bytes at most; only
         * stateful runs have one. Whether it fits the text itself is checked against the text. */
        const TrainConfig *c = &ck->cfg;
        if (c->stateful ? ck->stream_pos % (uint64_t)c->seq_len != 0 || ck->stream_pos > ck->data_bytes
                        : ck->stream_pos != 0) {
            snprintf(msg, sizeof msg, "corrupted: the stream position %llu is outside the data",
                     (unsigned long long)ck->stream_pos);
            return fail(ck, e, name, msg);
        }
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

/* Reads up to n bytes at offset; returns how many. */
static size_t read_at(int fd, uint8_t *buf, size_t n, off_t offset)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, offset + (off_t)got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* A file longer than any header: its header's lengths must describe exactly its size before its body
 * is read (a sparse file of gigabytes with a small header is refused unread). */
static int check_length(int fd, uint64_t size, const char *path, Err *e)
{
    uint8_t *head = malloc(HEAD_MAX);
    if (!head)
        return err_set(e, "%s: out of memory", path);
    size_t have = read_at(fd, head, HEAD_MAX, 0);
    Checkpoint ck;
    memset(&ck, 0, sizeof ck);
    uint32_t version = have >= 12 ? u32_at(head + 8) : 0, flags;
    Err why;
    int rc = 0;
    if (have < HEAD_MAX || memcmp(head, MAGIC, 8) != 0 || version == 0 || version > CHECKPOINT_VERSION) {
        rc = 0; /* cut short, not a checkpoint, or a version it cannot read: the parser says which */
    } else if (read_header(head, version, &ck, &flags, &why) != 0) {
        rc = err_set(e, "%s: corrupted: %s", path, why.msg);
    } else {
        Layout lay;
        uint64_t expected = described_length(head, HEAD_MAX, version, &ck.cfg, flags, &lay);
        if (expected != size)
            rc = err_set(e, "%s: truncated or corrupted: %llu bytes, its header describes %s", path,
                         (unsigned long long)size, expected ? "another length" : "lengths beyond any valid header");
    }
    free(head);
    return rc;
}

int checkpoint_load(const char *path, Checkpoint *ck, Err *e)
{
    memset(ck, 0, sizeof *ck);
    int fd = open_regular(path, O_RDONLY, "a charrnn checkpoint", e);
    if (fd < 0)
        return -1;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : err_set(e, "%s: cannot stat it", path);
    const uint64_t size = (uint64_t)st.st_size;
    if (rc == 0 && size > HEAD_MAX)
        rc = check_length(fd, size, path, e);
    close(fd);
    /* Loading holds the file's image and the parsed copy of its arrays at once. */
    MemoryNeed avail;
    char need_text[32], avail_text[32];
    if (rc == 0 && memory_available(NULL, &avail, e) != 0)
        rc = -1;
    else if (rc == 0 && 2 * size > avail.host)
        rc = err_set(e, "%s: loading it needs an estimated %s of memory, %s is available", path,
                     fmt_bytes(2 * size, need_text, sizeof need_text), fmt_bytes(avail.host, avail_text, sizeof avail_text));
    if (rc != 0)
        return -1;
    uint8_t *buf;
    size_t len;
    if (read_file(path, &buf, &len, e) != 0)
        return -1;
    rc = checkpoint_parse(buf, len, path, ck, e);
    free(buf);
    return rc;
}

int checkpoint_peek(const char *path, CheckpointSummary *s, Err *e)
{
    memset(s, 0, sizeof *s);
    int fd = open_regular(path, O_RDONLY, "a charrnn checkpoint", e);
    if (fd < 0)
        return PEEK_NOT_CHECKPOINT;
    uint8_t head[COMMON_FIELDS + 4 + V2_EXTENSION];
    size_t have = read_at(fd, head, sizeof head, 0);
    close(fd);
    if (have < 8 || memcmp(head, MAGIC, 8) != 0) {
        err_set(e, "%s: not a charrnn checkpoint", path);
        return PEEK_NOT_CHECKPOINT;
    }
    uint32_t version = have >= 12 ? u32_at(head + 8) : 0, flags;
    Checkpoint ck;
    memset(&ck, 0, sizeof ck);
    Err why;
    if (version == 0 || version > CHECKPOINT_VERSION || have < header_bytes(version) ||
        read_header(head, version, &ck, &flags, &why) != 0) {
        err_set(e, "%s: a charrnn checkpoint whose header cannot be read (cut short, damaged, or a newer version)",
                path);
        return PEEK_DAMAGED;
    }
    s->step = ck.step;
    s->steps = ck.cfg.steps;
    return PEEK_OK;
}
