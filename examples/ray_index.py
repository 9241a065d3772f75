"""ray_index.py: embed a folder of images with Ray Data on one machine, then search it.

    python examples/ray_index.py PHOTOS IV3.isw OUT [--workers 2] [--batch 16] [--device auto]

imgsearch.list_images lists the images (sorted by path: `imgsearch index`'s walk), and Ray Data runs
them through Inception-v3 on a pool of `--workers` actors, each holding its own
imgsearch.ImageEncoder (its decode threads and its device: `--device cuda`
gives each actor a GPU). The driver writes

    OUT/features.npy   (N, 2048) float32: the pool features of the N images that could be read
    OUT/paths.txt      their paths, one per line, row r = line r
    OUT/failures.txt   path<TAB>reason of the others

The features are the bits `imgsearch embed-image` writes for the same files on
the same device (python/tests/test_examples.py checks it with 2 local workers;
on the CPU with the workers' thread count, OMP_NUM_THREADS=1 under Ray, as
OpenBLAS rounds differently with another), and `imgsearch knn
OUT/features.npy QUERIES.npy` or imgsearch.Table searches them.

What it does not do yet: write an index folder (`imgsearch index`'s format,
with the ConSE table for text search) from several workers. One index has one
writer; the scale-out issue's sharded indexing (`imgsearch index --shard I/N`,
each worker indexing every N-th chunk of the sorted file list into a shard
that search reads as one index) is what will let each Ray actor call
imgsearch.index on its shard. Until it lands, index a folder with one
imgsearch.index() call (examples/notebook.py), or use this script for the
embeddings.
"""
import argparse
import os
import sys

import numpy as np
import ray

import imgsearch


class Embed:
    """A Ray actor: one encoder, reused for every batch it is given."""

    def __init__(self, model, device, threads):
        self.encoder = imgsearch.ImageEncoder(model, device=device)
        self.threads = threads

    def __call__(self, batch):
        paths = [str(p) for p in batch["path"]]
        features = np.empty((len(paths), self.encoder.feature_dim), np.float32)
        reasons = [""] * len(paths)
        for b in self.encoder.run(paths, batch_size=len(paths), threads=self.threads):
            features[b.first:b.first + b.count] = b.features
            for i, _, reason in b.failures:
                reasons[i] = reason
        return {"path": np.array(paths, dtype=object), "features": features,
                "reason": np.array(reasons, dtype=object)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos")
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2, help="decode threads per worker")
    a = ap.parse_args(argv)

    listing = imgsearch.list_images(a.photos)  # the indexer's own walk: sorted, links followed, each folder once
    paths = listing.paths
    ray.init(num_cpus=max(a.workers, 1), include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # rows in path order
    ds = ray.data.from_items([{"path": p} for p in paths])
    gpus = 1 if a.device.startswith("cuda") else 0
    ds = ds.map_batches(Embed, fn_constructor_args=(os.path.abspath(a.model), a.device, a.threads),
                        batch_size=a.batch, batch_format="numpy", concurrency=a.workers, num_gpus=gpus)
    feats, good, failed = [], [], []
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for p, f, r in zip(batch["path"], batch["features"], batch["reason"]):
            if r:
                failed.append((p, r))
            else:
                good.append(p)
                feats.append(f)
    ray.shutdown()

    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "features.npy"), np.array(feats, np.float32).reshape(len(feats), -1))
    with open(os.path.join(a.out, "paths.txt"), "w") as f:
        f.writelines(p + "\n" for p in good)
    with open(os.path.join(a.out, "failures.txt"), "w") as f:
        f.writelines(f"{p}\t{r}\n" for p, r in failed)
    print(f"{len(good)} of {len(paths)} images embedded by {a.workers} Ray workers into {a.out}"
          + (f" ({len(failed)} could not be read)" if failed else ""))

    if good:  # the nearest neighbours of the first image, by cosine
        features = np.load(os.path.join(a.out, "features.npy"))
        with imgsearch.Table(features, device="cpu") as table:
            scores, ids = table.search(features[0], k=min(3, len(good)))
        for s, i in zip(scores, ids):
            print(f"  {s:.4f}  {good[i]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
