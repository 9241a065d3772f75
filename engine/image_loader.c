/* image_loader.c: placeholder. */
typedef int ims_placeholder_unit;
