/* charrnn [--device auto|cpu|cuda] COMMAND [options] */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"

#define CHARRNN_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f, "usage: charrnn [--device auto|cpu|cuda] COMMAND [options]\n"
               "\n"
               "A character-level recurrent language model: train it on a UTF-8 text file, then sample from it.\n"
               "\n"
               "commands:\n"
               "  train    train a model (or --resume one) and write a checkpoint\n"
               "  sample   generate text from a checkpoint\n"
               "  eval     loss of a checkpoint on its validation text or on --data FILE\n"
               "  info     describe a checkpoint\n"
               "  plot     chart the train and validation loss of a training log (train --log) as SVG\n"
               "  device   show the devices and how a model would run on each (the GPU's plan), without training\n"
               "  selftest check a device against the CPU reference on small models, in seconds\n"
               "\n"
               "global options:\n"
               "  --device auto|cpu|cuda  where to compute; auto picks cuda when usable, else cpu [default: auto]\n"
               "  --version               print the version and exit\n"
               "  -h, --help              show this help; `charrnn COMMAND --help` describes a command\n"
               "\n"
               "quick start:\n"
               "  charrnn train            (tiny shakespeare from data/, checkpoint to " DEFAULT_CHECKPOINT ")\n"
               "  charrnn sample           (reads the same default checkpoint)\n");
}

static int run(int argc, char **argv)
{
    GlobalOptions g = {.device = DEVICE_AUTO, .device_given = 0};
    int i = 1;
    while (i < argc && strncmp(argv[i], "-", 1) == 0) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("charrnn %s\n", CHARRNN_VERSION);
            return EXIT_OK;
        }
        if (strcmp(arg, "--device") == 0 || strncmp(arg, "--device=", 9) == 0) {
            int choice = (int)g.device, help;
            Option opt = {"--device", ARG_CHOICE, &choice, 0, 0, DEVICE_NAMES, "DEVICE", "", g.device_given};
            int n = arg[8] == '=' || i + 1 >= argc ? 1 : 2; /* the option alone, or with its value */
            Err e;
            if (options_parse(&opt, 1, n, argv + i, "charrnn", &help, &e) != 0) {
                fprintf(stderr, "%s\n", e.msg);
                return EXIT_USAGE;
            }
            g.device = (DeviceChoice)choice;
            g.device_given = 1;
            i += n;
            continue;
        }
        fprintf(stderr, "charrnn: unknown global option '%s' (see %s --help)\n", arg, program_name());
        return EXIT_USAGE;
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[i];
    int rest = argc - i - 1;
    char **args = argv + i + 1;
    if (strcmp(command, "train") == 0 || strcmp(command, "sample") == 0 || strcmp(command, "eval") == 0 ||
        strcmp(command, "selftest") == 0)
        device_prepare(g.device, argv);
    if (strcmp(command, "help") == 0) {
        if (rest == 0) {
            usage(stdout);
            return EXIT_OK;
        }
        static char help_flag[] = "--help";
        static char *help_args[] = {help_flag, NULL};
        command = args[0];
        args = help_args;
        rest = 1;
    }
    /* Under mpirun, train and eval share every batch among the ranks; the other commands run alone. */
    static const char *const alone[] = {"sample", "info", "plot", "device", "selftest", NULL};
    int runs_alone = 0;
    for (int k = 0; alone[k]; k++)
        runs_alone |= strcmp(command, alone[k]) == 0;
    if (runs_alone && dist_launched_size() > 1) {
        if (dist_launched_rank() == 0)
            fprintf(stderr,
                    "charrnn: %s runs in a single process; start it without mpirun (train and eval run on "
                    "several ranks)\n",
                    command);
        return EXIT_USAGE;
    }
    if (strcmp(command, "train") == 0)
        return cmd_train(rest, args, &g);
    if (strcmp(command, "sample") == 0)
        return cmd_sample(rest, args, &g);
    if (strcmp(command, "eval") == 0)
        return cmd_eval(rest, args, &g);
    if (strcmp(command, "info") == 0)
        return cmd_info(rest, args, &g);
    if (strcmp(command, "plot") == 0)
        return cmd_plot(rest, args, &g);
    if (strcmp(command, "device") == 0)
        return cmd_device(rest, args, &g);
    if (strcmp(command, "selftest") == 0)
        return cmd_selftest(rest, args, &g);
    fprintf(stderr,
            "charrnn: unknown command '%s' (commands: train, sample, eval, info, plot, device, selftest; see %s "
            "--help)\n",
            command, program_name());
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    program_name_set(argv[0]);
    /* A file-size limit, a closed pipe: a write that fails then returns an error that the command reports
     * (a checkpoint write fails whole, the previous one stays) instead of a signal that kills the run. */
    signal(SIGXFSZ, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    int status = run(argc, argv);
    /* Whatever a command printed must have reached its destination: a full disk or a closed pipe is a
     * failure, not a success with nothing shown. A command that failed has said so already. */
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (status == EXIT_OK)
            fprintf(stderr, "charrnn: writing to standard output failed%s%s\n", errno ? ": " : "",
                    errno ? strerror(errno) : "");
        return status == EXIT_OK ? EXIT_ERROR : status;
    }
    return status;
}
