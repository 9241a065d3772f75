/* cmd_index_set.c: `imgsearch index-set create OUT.set SHARD...`: writes a set
 * file naming index shards (engine/index/index_set.c), which every command
 * that reads an index then reads as one index; `imgsearch index-set list SET`
 * names the shards a set (a set file or a folder of shards) holds. */
#include "cli.h"

#include <string.h>

static const char index_set_usage[] =
    "usage: imgsearch index-set create OUT.set SHARD...\n"
    "       imgsearch index-set list SET\n"
    "\n"
    "An index set is the shards of one collection (made with 'imgsearch index\n"
    "--shard I/N', on as many machines as you like) read as one index: search,\n"
    "info and the library open a set file, a folder whose subfolders are the\n"
    "shards, or a single index alike, and a search of a set gives exactly the\n"
    "answer one index of the same files would. create checks that every shard\n"
    "opens and was made with the same models and settings, then writes OUT.set\n"
    "(JSON; paths below its folder stored relative to it). list prints the\n"
    "shards with their live rows. docs/SCALE.md has the whole recipe.\n";

static int run_list(const char *path)
{
    ims_index_set *set = NULL;
    ims_error err = {0};
    if (ims_index_set_open(path, &set, &err))
        return cli_error(&err);
    int64_t total = 0;
    for (int64_t i = 0; i < ims_index_set_shard_count(set); i++) {
        ims_index_info info;
        ims_index_get_info(ims_index_set_shard(set, i), &info);
        total += info.live_rows;
        printf("%4lld  %10lld  ", (long long)i, (long long)info.live_rows);
        text_safe(stdout, ims_index_set_shard_path(set, i));
        fputc('\n', stdout);
    }
    printf("%lld shards, %lld live rows\n", (long long)ims_index_set_shard_count(set), (long long)total);
    ims_index_set_close(set);
    return CLI_EXIT_OK;
}

int cmd_index_set(int argc, char **argv)
{
    cli_args a;
    cli_list operands = {0};
    cli_args_init(&a, "index-set", index_set_usage, argc, argv);
    while (cli_args_next(&a)) {
        if (a.operand)
            cli_operand_add(&a, &operands);
        else
            cli_args_unknown(&a);
    }
    int rc = a.status >= 0 ? a.status : -1;
    const char *verb = operands.count ? operands.items[0] : NULL;
    if (rc < 0 && !verb)
        rc = cli_args_error(&a, "give create OUT.set SHARD... or list SET");
    else if (rc < 0 && !strcmp(verb, "create") && operands.count < 3)
        rc = cli_args_error(&a, "create needs a set file and one or more shard folders");
    else if (rc < 0 && !strcmp(verb, "list") && operands.count != 2)
        rc = cli_args_error(&a, "list needs one set");
    else if (rc < 0 && strcmp(verb, "create") && strcmp(verb, "list"))
        rc = cli_args_error(&a, "unknown action '%s' (create or list)", verb);
    if (rc < 0 && !strcmp(verb, "list"))
        rc = run_list(operands.items[1]);
    if (rc < 0) {
        ims_error err = {0};
        if (ims_index_set_create(operands.items[1], operands.items + 2, operands.count - 2, &err))
            rc = cli_error(&err);
        else {
            printf("wrote index set %s: %zu shards\n", operands.items[1], operands.count - 2);
            rc = CLI_EXIT_OK;
        }
    }
    cli_list_free(&operands);
    return rc;
}
