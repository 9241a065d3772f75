/* hf_model_dir.c: placeholder. */
typedef int ims_placeholder_unit;
