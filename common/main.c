/* charrnn [--device auto|cpu|cuda] COMMAND [options] */
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

int main(int argc, char **argv)
{
    DeviceChoice device = DEVICE_AUTO;
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
            int choice = (int)device, help;
            Option opt = {"--device", ARG_CHOICE, &choice, 0, 0, DEVICE_NAMES, "DEVICE", "", 0};
            int n = arg[8] == '=' || i + 1 >= argc ? 1 : 2; /* the option alone, or with its value */
            Err e;
            if (options_parse(&opt, 1, n, argv + i, "charrnn", &help, &e) != 0) {
                fprintf(stderr, "%s\n", e.msg);
                return EXIT_USAGE;
            }
            device = (DeviceChoice)choice;
            i += n;
            continue;
        }
        fprintf(stderr, "charrnn: unknown global option '%s' (see charrnn --help)\n", arg);
        return EXIT_USAGE;
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[i];
    int rest = argc - i - 1;
    char **args = argv + i + 1;
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
    const int alone = strcmp(command, "sample") == 0 || strcmp(command, "info") == 0 || strcmp(command, "plot") == 0;
    if (alone && dist_launched_size() > 1) {
        if (dist_launched_rank() == 0)
            fprintf(stderr,
                    "charrnn: %s runs in a single process; start it without mpirun (train and eval run on "
                    "several ranks)\n",
                    command);
        return EXIT_USAGE;
    }
    if (strcmp(command, "train") == 0)
        return cmd_train(rest, args, device);
    if (strcmp(command, "sample") == 0)
        return cmd_sample(rest, args, device);
    if (strcmp(command, "eval") == 0)
        return cmd_eval(rest, args, device);
    if (strcmp(command, "info") == 0)
        return cmd_info(rest, args, device);
    if (strcmp(command, "plot") == 0)
        return cmd_plot(rest, args, device);
    fprintf(stderr, "charrnn: unknown command '%s' (commands: train, sample, eval, info, plot; see charrnn --help)\n",
            command);
    return EXIT_USAGE;
}
