/* zip_reader.c: placeholder. */
typedef int ims_placeholder_unit;
