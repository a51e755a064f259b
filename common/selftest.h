/* A backend against the CPU reference, side by side on small models, under every way the backend can
 * run a step: what `charrnn selftest` prints, and the tolerances the parity suite states. */
#ifndef CHARRNN_SELFTEST_H
#define CHARRNN_SELFTEST_H

#include "backend.h"

/* Relative L2 error per tensor, |device - reference| / |reference|. Both compute in float32 and differ
 * only in summation order, which moves results by a few float32 ulps: up to ~7e-7 relative. A wrong
 * operand, a skipped timestep or a missing term is off by 1e-2 or more. */
#define PARITY_REL_L2 1e-5
/* With --tf32 the products' inputs are rounded to TF32's 10-bit mantissa (up to 2^-11 relative per
 * input); through the recurrence and the optimizer's division by sqrt(v) that becomes about 1e-3. */
#define TF32_REL_L2 1e-2
/* The backend's own product on random numbers in [-1, 1) at PRODUCT_CHECK_N^3, large enough that cuBLAS
 * has no reason to leave the tensor cores: float32 rounding stays near 1e-7 relative L2; TF32 lands
 * near 1e-4. Between the TF32 bounds TF32 was used; below PRODUCT_FLOAT32_MAX it was not. */
#define PRODUCT_CHECK_N 512
#define PRODUCT_FLOAT32_MAX 1e-5
#define PRODUCT_TF32_MIN 2e-5
#define PRODUCT_TF32_MAX 2e-3

double rel_l2(const float *ref, const float *x, size_t n);
/* The relative L2 error of C against A B computed in double, all n x n row-major (product_error). */
double product_rel_l2(const float *A, const float *B, const float *C, int n);

enum { SELFTEST_MAX_LINES = 64 };

/* One quantity (loss, gradient norm, a parameter tensor by name, the carried state, ...): the largest
 * error seen over every variant, model and step, where it was seen, and its tolerance. */
typedef struct {
    char name[40];
    double worst;
    char where[64];
    double tolerance;
} SelftestLine;

typedef struct {
    SelftestLine lines[SELFTEST_MAX_LINES];
    int n_lines;
    int variants, models, steps;
    char paths[1024];      /* variants that ran another path than they asked for, with what ran */
    int path_failures;
    double product_error;  /* the backend's product check, or -1 when it has none */
    double product_min, product_max;
    int failures;          /* quantities above their tolerance, wrong paths, a product check out of bounds */
} SelftestReport;

typedef struct {
    int tf32;  /* the device's products in TF32, against TF32_REL_L2 */
    int quick; /* the first variant and the first model only, no product check */
    int threads; /* the reference's CPU threads (the device's, when it is the CPU too) */
} SelftestOptions;

/* Runs `device` (under each of `variants`, a NULL-terminated list; NULL: its defaults) against
 * `reference` on a few small models for three optimizer steps each, then generation; fills *r. Returns
 * 0 when it ran (r->failures says whether it passed), -1 when something could not run. */
int selftest_run(const BackendOps *reference, const BackendOps *device, const BackendVariant *variants,
                 const SelftestOptions *o, SelftestReport *r, Err *e);

#endif
