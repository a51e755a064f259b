#include "selftest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

double rel_l2(const float *ref, const float *x, size_t n)
{
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < n; i++) {
        diff += ((double)x[i] - ref[i]) * ((double)x[i] - ref[i]);
        norm += (double)ref[i] * ref[i];
    }
    return norm > 0.0 ? sqrt(diff / norm) : sqrt(diff);
}

double product_rel_l2(const float *A, const float *B, const float *C, int n)
{
    double *ref = malloc((size_t)n * sizeof(double)), diff = 0.0, norm = 0.0;
    if (!ref)
        return NAN;
    for (int i = 0; i < n; i++) { /* row i of A B, a row of B at a time */
        memset(ref, 0, (size_t)n * sizeof(double));
        for (int k = 0; k < n; k++) {
            const double a = A[(size_t)i * n + k];
            for (int j = 0; j < n; j++)
                ref[j] += a * B[(size_t)k * n + j];
        }
        for (int j = 0; j < n; j++) {
            diff += (C[(size_t)i * n + j] - ref[j]) * (C[(size_t)i * n + j] - ref[j]);
            norm += ref[j] * ref[j];
        }
    }
    free(ref);
    return sqrt(diff / norm);
}

/* The models: three layers with a carried-in state, folded through the vocabulary (V <= T B), Adam; two
 * layers past one tile of columns and of rows (H = 40, B = 5), window mode, the embedding's rows
 * (V > T B), AdamW; and the gated cells with dropout, a GRU with a carried-in state and an LSTM (carrying
 * h and c) in window mode. Odd sizes, so that indexing mistakes show. */
typedef struct {
    ModelConfig cfg;
    int T, B, window, carry_in;
    OptimizerKind optimizer;
    float dropout;
} Model;

static const Model MODELS[] = {
    {{.vocab = 11, .embed = 7, .hidden = 13, .layers = 3}, 5, 3, 0, 1, OPT_ADAM, 0.0f},
    {{.vocab = 70, .embed = 9, .hidden = 40, .layers = 2}, 4, 5, 1, 0, OPT_ADAMW, 0.0f},
    {{.vocab = 11, .embed = 7, .hidden = 13, .layers = 2, .cell = CELL_GRU}, 4, 3, 0, 1, OPT_ADAM, 0.3f},
    {{.vocab = 11, .embed = 7, .hidden = 13, .layers = 2, .cell = CELL_LSTM}, 4, 3, 1, 1, OPT_ADAM, 0.3f},
};
enum { SELFTEST_DROPOUT_SEED = 99 }; /* any: both backends draw the same masks from it */
enum { N_MODELS = sizeof MODELS / sizeof MODELS[0], STEPS = 3, FED = 5, DRAWS = 20 };

/* Records err for the quantity `name`, keeping the largest (NaN counts as the largest). */
static void record(SelftestReport *r, const char *name, double err, double tolerance, const char *variant, int model)
{
    SelftestLine *l = NULL;
    for (int i = 0; i < r->n_lines && !l; i++)
        if (strcmp(r->lines[i].name, name) == 0)
            l = &r->lines[i];
    if (!l) {
        if (r->n_lines == SELFTEST_MAX_LINES)
            return;
        l = &r->lines[r->n_lines++];
        snprintf(l->name, sizeof l->name, "%s", name);
        l->worst = -1.0;
        l->tolerance = tolerance;
    }
    if (isnan(err) || (err > l->worst && !isnan(l->worst))) {
        l->worst = isnan(err) ? NAN : err;
        snprintf(l->where, sizeof l->where, "%s, model %d", variant, model + 1);
    }
}

static void record_tensors(SelftestReport *r, const ModelConfig *cfg, const float *ref, const float *x,
                           double tolerance, const char *variant, int model)
{
    ParamTensor t[MODEL_MAX_TENSORS];
    const int n = model_tensors(cfg, t);
    for (int k = 0; k < n; k++)
        record(r, t[k].name, rel_l2(ref + t[k].offset, x + t[k].offset, t[k].rows * t[k].cols), tolerance, variant,
               model);
}

typedef struct {
    Backend ref, dev;
    float *a, *b; /* scratch: [max(P, L B H)] each, then 2 more for moments */
    float *ma, *mb;
} Pair;

static void free_pair(Pair *p)
{
    backend_destroy(&p->ref);
    backend_destroy(&p->dev);
    free(p->a), free(p->b), free(p->ma), free(p->mb);
}

static int make_pair(Pair *p, const BackendOps *reference, const BackendOps *device, const BackendOptions *ref_opts,
                     const BackendOptions *dev_opts, const Model *m, uint64_t seed, Err *e)
{
    memset(p, 0, sizeof *p);
    const size_t P = model_num_params(&m->cfg);
    const size_t nh = (size_t)model_state_sets(&m->cfg) * m->cfg.layers * m->B * m->cfg.hidden;
    const size_t n = P > nh ? P : nh;
    p->a = malloc(sizeof(float) * n), p->b = malloc(sizeof(float) * n);
    p->ma = malloc(sizeof(float) * n), p->mb = malloc(sizeof(float) * n);
    if (!p->a || !p->b || !p->ma || !p->mb)
        return err_set(e, "out of memory");
    if (backend_create(&p->ref, reference, &m->cfg, m->T, m->B, ref_opts, e) != 0 ||
        backend_create(&p->dev, device, &m->cfg, m->T, m->B, dev_opts, e) != 0)
        return -1;
    model_init_params(&m->cfg, p->a, seed);
    memset(p->b, 0, sizeof(float) * n);
    Rng r;
    rng_seed(&r, seed + 1);
    for (size_t i = 0; i < nh; i++)
        p->ma[i] = 1.8f * rng_uniform(&r) - 0.9f; /* a carried-in state in (-0.9, 0.9) */
    Backend *both[2] = {&p->ref, &p->dev};
    for (int i = 0; i < 2; i++)
        if (both[i]->ops->set_params(both[i]->ctx, p->a, e) != 0 ||
            both[i]->ops->set_moments(both[i]->ctx, p->b, p->b, e) != 0 ||
            both[i]->ops->set_carry(both[i]->ctx, p->ma, e) != 0)
            return -1;
    return 0;
}

/* Three optimizer steps of one model under one variant: the loss, gradient norm, every gradient and the
 * carried state after each step, the parameters and moments after the last; then the logits of
 * generation, and the characters the device draws against the host's rule. */
static int run_model(SelftestReport *r, const BackendOps *reference, const BackendOps *device,
                     const BackendOptions *ref_opts, const BackendOptions *dev_opts, const char *variant, int mi,
                     double tolerance, Err *e)
{
    const Model *m = &MODELS[mi];
    Pair p;
    if (make_pair(&p, reference, device, ref_opts, dev_opts, m, 100 + (uint64_t)mi, e) != 0) {
        free_pair(&p);
        return -1;
    }
    const size_t nh = (size_t)model_state_sets(&m->cfg) * m->cfg.layers * m->B * m->cfg.hidden;
    const int n = m->T * m->B, V = m->cfg.vocab;
    token_t *x = malloc(sizeof(token_t) * 2 * (size_t)n), *y = x ? x + n : NULL;
    float *logits = malloc(sizeof(float) * 4 * (size_t)V);
    int rc = x && logits ? 0 : err_set(e, "out of memory");
    OptimConfig o = optim_defaults();
    o.kind = m->optimizer;
    o.weight_decay = m->optimizer == OPT_ADAMW ? 0.1f : 0.0f;
    o.lr = 0.01f;
    Rng rng;
    rng_seed(&rng, 7 + (uint64_t)mi);
    Backend *both[2] = {&p.ref, &p.dev};
    for (long step = 1; rc == 0 && step <= STEPS; step++) {
        for (int i = 0; i < n; i++)
            x[i] = (token_t)rng_below(&rng, (uint64_t)V), y[i] = (token_t)rng_below(&rng, (uint64_t)V);
        const Batch b = {x, y, m->T, m->B, m->window ? m->T - 1 : 0, m->carry_in, 1, m->dropout, SELFTEST_DROPOUT_SEED,
                         step, 0};
        float loss[2], norm[2];
        float *grads[2] = {p.a, p.b}, *carry[2] = {p.ma, p.mb};
        for (int i = 0; rc == 0 && i < 2; i++)
            rc = both[i]->ops->forward_backward(both[i]->ctx, &b, &loss[i], e) ||
                         both[i]->ops->grad_norm(both[i]->ctx, &norm[i], e) ||
                         both[i]->ops->get_grads(both[i]->ctx, grads[i], e)
                     ? -1
                     : 0;
        if (rc != 0)
            break;
        record(r, "loss", rel_l2(&loss[0], &loss[1], 1), tolerance, variant, mi);
        record(r, "gradient norm", rel_l2(&norm[0], &norm[1], 1), tolerance, variant, mi);
        record_tensors(r, &m->cfg, p.a, p.b, tolerance, variant, mi);
        for (int i = 0; rc == 0 && i < 2; i++)
            rc = both[i]->ops->get_carry(both[i]->ctx, carry[i], e) ||
                         both[i]->ops->update(both[i]->ctx, &o, o.lr, step, 0.5f, e)
                     ? -1
                     : 0;
        if (rc == 0)
            record(r, "carried state", rel_l2(p.ma, p.mb, nh), tolerance, variant, mi);
    }
    for (int what = 0; rc == 0 && what < 3; what++) { /* parameters, then first and second moments */
        float *ref = p.a, *dev = p.b, *ref2 = p.ma, *dev2 = p.mb;
        rc = what == 0 ? (p.ref.ops->get_params(p.ref.ctx, ref, e) || p.dev.ops->get_params(p.dev.ctx, dev, e))
                       : (p.ref.ops->get_moments(p.ref.ctx, ref, ref2, e) ||
                          p.dev.ops->get_moments(p.dev.ctx, dev, dev2, e));
        if (rc == 0)
            record_tensors(r, &m->cfg, what == 2 ? ref2 : ref, what == 2 ? dev2 : dev, tolerance, variant, mi);
        rc = rc ? -1 : 0;
    }
    /* generation: the logits after each of FED characters, from a fresh state */
    for (int i = 0; rc == 0 && i < 2; i++)
        rc = both[i]->ops->sample_reset(both[i]->ctx, e);
    for (int k = 0; rc == 0 && k < FED; k++) {
        const int token = (k * 7 + 3) % V;
        rc = p.ref.ops->sample_step(p.ref.ctx, token, logits, e) ||
                     p.dev.ops->sample_step(p.dev.ctx, token, logits + V, e)
                 ? -1
                 : 0;
        if (rc == 0)
            record(r, "generation logits", rel_l2(logits, logits + V, (size_t)V), tolerance, variant, mi);
    }
    /* the characters the device draws itself, with the host's uniform numbers, against the host's rule */
    if (rc == 0 && device->sample_token) {
        const SamplerConfig sc = {0.8f, 0, 0};
        int token = 1, drawn = -1, differ = 0;
        for (int i = 0; rc == 0 && i < 2; i++)
            rc = both[i]->ops->sample_reset(both[i]->ctx, e);
        for (int k = 0; rc == 0 && k < DRAWS; k++) {
            const float u = rng_uniform(&rng);
            rc = p.ref.ops->sample_step(p.ref.ctx, token, logits, e) ||
                         p.dev.ops->sample_token(p.dev.ctx, token, &sc, u, &drawn, e)
                     ? -1
                     : 0;
            const int expected = sample_from_uniform(logits, V, &sc, u, logits + V);
            differ += drawn != expected;
            token = expected;
        }
        if (rc == 0)
            record(r, "drawn characters", (double)differ / DRAWS, 0.0, variant, mi);
    }
    if (rc == 0 && device->check_variant) {
        Err why;
        if (device->check_variant(p.dev.ctx, &why) != 0) {
            r->path_failures++;
            const size_t used = strlen(r->paths);
            snprintf(r->paths + used, sizeof r->paths - used, "%s%s (model %d): %s", used ? "\n" : "", variant, mi + 1,
                     why.msg);
        }
    }
    free(x);
    free(logits);
    free_pair(&p);
    return rc;
}

int selftest_run(const BackendOps *reference, const BackendOps *device, const BackendVariant *variants,
                 const SelftestOptions *o, SelftestReport *r, Err *e)
{
    memset(r, 0, sizeof *r);
    const double tolerance = o->tf32 ? TF32_REL_L2 : PARITY_REL_L2;
    const BackendOptions ref_opts = {.threads = 1};
    static const BackendVariant defaults[] = {{"default", {0}}, {NULL, {0}}};
    if (!variants)
        variants = defaults;
    for (int v = 0; variants[v].name && !(o->quick && v > 0); v++) {
        BackendOptions dev_opts = variants[v].opts;
        dev_opts.tf32 = o->tf32;
        if (!dev_opts.threads)
            dev_opts.threads = o->threads;
        for (int mi = 0; mi < N_MODELS && !(o->quick && mi > 0); mi++)
            if (run_model(r, reference, device, &ref_opts, &dev_opts, variants[v].name, mi, tolerance, e) != 0)
                return err_set(e, "%s (variant %s, model %d)", e->msg, variants[v].name, mi + 1);
        r->variants++;
    }
    r->models = o->quick ? 1 : N_MODELS;
    r->steps = STEPS;
    r->product_error = -1.0;
    if (device->product_error && !o->quick) {
        const ModelConfig tiny = {.vocab = 3, .embed = 2, .hidden = 2, .layers = 1};
        const BackendOptions opts = {.tf32 = o->tf32, .threads = o->threads};
        Backend be;
        if (backend_create(&be, device, &tiny, 1, 1, &opts, e) != 0)
            return -1;
        int rc = device->product_error(be.ctx, PRODUCT_CHECK_N, 5, &r->product_error, e);
        backend_destroy(&be);
        if (rc != 0)
            return -1;
        r->product_min = o->tf32 ? PRODUCT_TF32_MIN : 0.0;
        r->product_max = o->tf32 ? PRODUCT_TF32_MAX : PRODUCT_FLOAT32_MAX;
        r->failures += !(r->product_error >= r->product_min && r->product_error <= r->product_max);
    }
    for (int i = 0; i < r->n_lines; i++)
        r->failures += !(r->lines[i].worst <= r->lines[i].tolerance);
    r->failures += r->path_failures;
    return 0;
}
