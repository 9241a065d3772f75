/* image_preprocess.c: placeholder. */
typedef int ims_placeholder_unit;
