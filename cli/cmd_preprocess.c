/* cmd_preprocess.c: placeholder until `imgsearch preprocess` lands. */
#include "cli.h"

int cmd_preprocess(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "imgsearch preprocess: not available yet\n");
    return CLI_EXIT_FAILURE;
}
