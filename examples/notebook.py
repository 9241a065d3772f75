# %% [markdown]
# # Search a folder of images from Python
#
# A notebook in the percent format (Jupyter, VS Code, or `python examples/notebook.py`):
# index a folder, search it by text and by image, show the top results, then use the
# encoders and the exact k-NN search on your own arrays.
#
#     python examples/notebook.py PHOTOS IV3.isw MINILM.isw [INDEX]
#
# The models are weight files made by `imgsearch convert` (README, "The main job");
# `imgsearch.convert_synthetic("iv3.isw")` makes a stand-in Inception-v3 whose
# results are not meaningful, for trying things out.

# %%
import os
import sys
import tempfile

import numpy as np

import imgsearch

PHOTOS, IMAGE_MODEL, TEXT_MODEL = sys.argv[1:4] if len(sys.argv) >= 4 else ("photos", "iv3.isw", "minilm.isw")
INDEX = sys.argv[4] if len(sys.argv) > 4 else os.path.join(tempfile.mkdtemp(), "photos.idx")
print(imgsearch.library_versions().splitlines()[0], "|", "GPUs:", imgsearch.cuda_device_count())

# %% [markdown]
# ## Index the folder
# Resumable: run it again after an interruption, or after adding photos, and only the new files are processed.

# %%
report = imgsearch.index(PHOTOS, INDEX, image_model=IMAGE_MODEL, text_model=TEXT_MODEL,
                         on_failure=lambda path, reason: print(f"skipped {path}: {reason}"))
print(f"indexed {report.indexed} images ({report.failed} skipped, {report.already} already there) "
      f"in {report.elapsed_s:.1f} s")


# %% [markdown]
# ## Search it
# Top results by text, then by example image (the first indexed photo finds itself first).

# %%
def show(title, hits):
    print(f"\n{title}")
    for rank, hit in enumerate(hits, 1):
        print(f"{rank:3d}  {hit.score:.4f}  row {hit.row:<5d} {hit.path}")


with imgsearch.Index(INDEX) as idx:
    show("text: 'a horse in a field'", idx.search(text="a horse in a field", k=5))
    example = idx.paths[0]
    show(f"image: {example}", idx.search(image=example, k=5))
    features = idx.features()  # (rows, 2048) float16, memory-mapped from the index
    paths = idx.paths
print(f"\nthe index's visual table: {features.shape} {features.dtype}")

# %% [markdown]
# ## Your own arrays
# The encoders take paths or decoded uint8 (H, W, 3) arrays; `knn` searches any float32/float16 table exactly.

# %%
with imgsearch.ImageEncoder(IMAGE_MODEL) as enc:
    feats = enc.embed(paths[:2])  # (2, 2048) float32
    for path, top in zip(paths[:2], enc.classify(paths[:2], k=3)):
        print(os.path.basename(path), [(p.label, round(p.probability, 4)) for p in top])

scores, ids = imgsearch.knn(np.ascontiguousarray(features, dtype=np.float32), feats, k=3)
print("nearest rows of each embedded photo:", ids.tolist())

with imgsearch.TextEncoder(TEXT_MODEL) as te:
    e = te.embed(["a horse in a field", "a cup of coffee"])
    print("text embeddings", e.shape, "cosine", float(e[0] @ e[1]))
