/* json_parse.c: placeholder. */
typedef int ims_placeholder_unit;
