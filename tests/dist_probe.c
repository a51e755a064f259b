/* The collectives of common/dist.c and the trainer's replica check, run inside an MPI job of two ranks
 * (the dist suite starts it with mpirun -np 2). Every check runs on every rank; the exit status is 0
 * when all held on every rank, and each failure is printed with its rank.
 *   dist_probe          the checks
 *   dist_probe abort    rank 1 fails on its own (dist_abort, status 3) while rank 0 waits in a collective */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cpu/cpu.h"
#include "dist.h"
#include "train.h"

static int failures;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "dist_probe: rank %d: %s:%d: ", d.rank, __FILE__, __LINE__);                               \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

int main(int argc, char **argv)
{
    Dist d;
    Err e;
    if (dist_init(&d, &e) != 0) {
        fprintf(stderr, "dist_probe: %s\n", e.msg);
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "abort") == 0) {
        if (d.rank == 1)
            dist_abort(&d, 3, "a failure of this rank alone");
        dist_max(&d, 0); /* rank 0 would wait here for ever */
        dist_finalize(&d);
        return 0;
    }
    CHECK(d.size == 2 && d.local_size == 2, "expected 2 ranks on one machine, got %d (%d here)", d.size, d.local_size);

    /* dist_agree: nobody failed; one rank failed (named); every rank failed alike (not named); differently. */
    CHECK(dist_agree(&d, 0, NULL, &e) == 0, "all passed, yet: %s", e.msg);
    int status = dist_agree(&d, d.rank == 1 ? 2 : 0, d.rank == 1 ? "data.txt: cannot open" : NULL, &e);
    CHECK(status == 2 && strcmp(e.msg, "rank 1: data.txt: cannot open") == 0, "one failed: %d '%s'", status, e.msg);
    status = dist_agree(&d, 2, "--hidden: out of range", &e);
    CHECK(status == 2 && strcmp(e.msg, "--hidden: out of range") == 0, "all failed alike: %d '%s'", status, e.msg);
    status = dist_agree(&d, 1 + d.rank, d.rank ? "b" : "a", &e);
    CHECK(status == 1 && strcmp(e.msg, "rank 0: a") == 0, "all failed differently: %d '%s'", status, e.msg);

    CHECK(dist_max(&d, d.rank == 1 ? 15 : 0) == 15, "a stop signal on rank 1 is not every rank's");

    /* The step's reduction: each rank's gradient weighted by its share, summed. */
    float g[3] = {1.0f + d.rank, 2.0f, -4.0f * d.rank};
    double loss = d.rank == 0 ? 3.0 : 6.0;
    const float weight = d.rank == 0 ? 0.6f : 0.4f; /* rows 3 and 2 of a batch of 5 */
    CHECK(dist_reduce_step(&d, g, 3, weight, &loss, &e) == 0, "%s", e.msg);
    CHECK(fabsf(g[0] - 1.4f) < 1e-6f && fabsf(g[1] - 2.0f) < 1e-6f && fabsf(g[2] + 1.6f) < 1e-6f,
          "weighted sum %g %g %g", (double)g[0], (double)g[1], (double)g[2]);
    CHECK(fabs(loss - 4.2) < 1e-6, "weighted loss %g", loss);

    /* dist_gather_rows: two blocks of a batch of 5 rows of width 2; rank 0 holds rows 0-2, rank 1 rows 3-4. */
    const Share s = dist_share(5, d.rank, d.size);
    float mine[2 * 3 * 2], all[2 * 5 * 2];
    for (int b = 0; b < 2; b++)
        for (int r = 0; r < s.count; r++)
            for (int k = 0; k < 2; k++)
                mine[(b * s.count + r) * 2 + k] = (float)(100 * b + 10 * (s.first + r) + k);
    CHECK(dist_gather_rows(&d, mine, all, 2, 5, 2, &e) == 0, "%s", e.msg);
    for (int i = 0; i < 20 && d.rank == 0; i++)
        CHECK(all[i] == (float)(100 * (i / 10) + 10 * (i % 10 / 2) + i % 2), "gathered row entry %d is %g", i,
              (double)all[i]);

    /* The replica check: quiet while the ranks agree, and naming rank 1 once it holds another model. */
    static const char text[] = "It is a tale told by an idiot, full of sound and fury, signifying nothing.\n";
    Dataset data;
    Backend be;
    Trainer tr;
    TrainConfig cfg = {.model = {.embed = 5, .hidden = 7, .layers = 1},
                       .seq_len = 4,
                       .batch = 3,
                       .steps = 10,
                       .seed = 5,
                       .optim = optim_defaults()};
    const BackendOptions opts = {.threads = 1, .dist = &d};
    CHECK(dataset_from_text(&data, (const uint8_t *)text, sizeof text - 1, 0.0f, "text", &e) == 0, "%s", e.msg);
    cfg.model.vocab = data.vocab.size;
    CHECK(backend_create(&be, &cpu_backend_ops, &cfg.model, cfg.seq_len, dist_share(3, d.rank, 2).count, &opts, &e) ==
              0,
          "%s", e.msg);
    CHECK(trainer_start(&tr, &cfg, &data, "text", &be, &e) == 0, "%s", e.msg);
    CHECK(trainer_check_replicas(&tr, &e) == 0, "the same model on both ranks, yet: %s", e.msg);
    if (d.rank == 1) {
        tr.replica[4] += 1e-3f; /* the check's copy of the parameters, nudged and set back */
        be.ops->set_params(be.ctx, tr.replica, &e);
    }
    status = trainer_check_replicas(&tr, &e);
    CHECK(status == TRAIN_STEP_REPLICAS_DIFFER && strstr(e.msg, "rank 1 differs from rank 0 in the parameters"),
          "another model on rank 1: %d '%s'", status, e.msg);
    trainer_free(&tr);
    backend_destroy(&be);
    dataset_free(&data);

    const int all_failures = dist_max(&d, failures);
    if (d.rank == 0 && all_failures == 0)
        printf("dist_probe: every check held on every rank\n");
    dist_finalize(&d);
    return all_failures ? 1 : 0;
}
