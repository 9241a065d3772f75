/* image_decode.c: placeholder. */
typedef int ims_placeholder_unit;
