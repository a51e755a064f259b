/* The charrnn commands. Each parses its own options and returns the process exit status. */
#ifndef CHARRNN_CLI_H
#define CHARRNN_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "checkpoint.h"
#include "device.h"
#include "dist.h"
#include "memory.h"
#include "options.h"

#define DEFAULT_CHECKPOINT "checkpoints/charrnn.ckpt"
#define DEFAULT_DATA "data/tinyshakespeare/input.txt"
/* train's model and batch shape when not given (and `charrnn device`'s) */
#define DEFAULT_EMBED 64
#define DEFAULT_HIDDEN 256
#define DEFAULT_LAYERS 2
#define DEFAULT_SEQ_LEN 128
#define DEFAULT_BATCH 64
#define DEFAULT_VOCAB 65 /* tiny shakespeare's, for `charrnn device` */

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2 };

/* What main parsed before the command. */
typedef struct {
    DeviceChoice device;
    int device_given; /* --device came before the command, which may then not give it again */
} GlobalOptions;

int cmd_train(int argc, char **argv, const GlobalOptions *g);
int cmd_sample(int argc, char **argv, const GlobalOptions *g);
int cmd_eval(int argc, char **argv, const GlobalOptions *g);
int cmd_info(int argc, char **argv, const GlobalOptions *g);
int cmd_plot(int argc, char **argv, const GlobalOptions *g);
int cmd_selftest(int argc, char **argv, const GlobalOptions *g);
int cmd_device(int argc, char **argv, const GlobalOptions *g);

#define MAX_THREADS 256
#define LN2 0.69314718055994530942 /* nats per bit */

/* Shared by the commands. */
int cli_default_threads(void); /* the online cores, 1..MAX_THREADS */
#define TF32_ON_CPU "--tf32: TF32 is a tensor-core format of --device cuda; the CPU computes in float32"

/* The options of every command that runs a model: the device, the CPU's threads, TF32 on the GPU. */
/* clang-format off */
#define DEVICE_OPTIONS(dev, threads, tf32)                                                                             \
    {"--device", ARG_CHOICE, dev, 0, 0, DEVICE_NAMES, "DEVICE", "auto, cpu or cuda"},                                  \
    {"--threads", ARG_INT, threads, 1, MAX_THREADS, NULL, "N", "CPU threads (--device cpu) (default: every core)"},     \
    {"--tf32", ARG_FLAG, tf32, 0, 0, NULL, NULL,                                                                       \
     "--device cuda: products in TF32 on tensor cores (faster; about 1e-3 relative error)"}
/* clang-format on */

/* Parses a command's options (a --device in the table may not repeat one given before the command).
 * Returns 1 when the command should go on; 0 after printing --help (*status = EXIT_OK) or an error
 * (*status = EXIT_USAGE). */
int cli_parse(Option *opts, int n_opts, int argc, char **argv, const char *command, const char *usage,
              const char *about, const GlobalOptions *g, int *status);
int cli_fail(int status, const char *msg);                       /* prints "charrnn: msg", returns status */
/* A command run by several ranks (mpirun) speaks through rank 0. After cli_ranks, cli_fail keeps the first
 * message instead of printing it, and help is printed by rank 0 only, until cli_agree: every rank
 * calls it where its set-up ends, with its status (0: ready); rank 0 prints the message of the first
 * rank that failed, once, and every rank gets the status the job ends with (0: every rank is ready).
 * After it, cli_fail prints on rank 0 only (a failure every rank shares), and cli_fail_alone ends the
 * whole job from a rank that failed by itself. In a single process these are plain cli_fail. */
void cli_ranks(const Dist *d);
int cli_agree(int status);
int cli_fail_alone(int status, const char *msg);
/* 1 on the ranks other than 0 of a command run by several: they print nothing but their own failures. */
int cli_quiet(void);
/* Runs a command that trains or evaluates across ranks: joins them (dist_init) and leaves them around it. */
int cli_on_ranks(int (*command)(int argc, char **argv, const GlobalOptions *g, const Dist *dist), int argc,
                 char **argv, const GlobalOptions *g);
const char *fmt_count(uint64_t n, char *buf, size_t len);        /* 1234567 -> "1,234,567" */
const char *fmt_duration(double seconds, char *buf, size_t len); /* "1:02:03" or "2:03" */
void print_codepoint(FILE *f, uint32_t cp);                      /* as UTF-8 */
/* checkpoint_load, with a hint on how to make the default checkpoint when it is missing. */
int cli_load_checkpoint(const char *path, Checkpoint *ck, Err *e);
/* How sample and eval begin: the device first (an unusable --device is the first thing to hear about),
 * then the checkpoint. Returns 0, or -1 after printing the error. */
int cli_open(int device, const char *path, const BackendOps **ops, const char **device_note, Checkpoint *ck);
/* The training text a checkpoint records, for a command that was given no --data: its absolute path when
 * that file exists (a checkpoint used from another directory), else the path as given. When neither
 * exists the error says that the path came from the checkpoint and to pass --data. */
int cli_stored_data(const Checkpoint *ck, const char *ckpt_path, const char *command, const char **path, Err *e);
/* Refuses (exit 2 for the caller) a command whose estimated memory does not fit what is available:
 * "COMMAND: WHAT needs an estimated ..., ... is available; HINT". */
int cli_check_memory(const BackendOps *ops, const MemoryNeed *need, const char *command, const char *what,
                     const char *hint, Err *e);

#endif
