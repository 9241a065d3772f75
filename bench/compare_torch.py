#!/usr/bin/env python3
"""compare_torch.py: imgsearch's workloads beside PyTorch's, same GPU, same run.

    python3 bench/compare_torch.py --imgsearch build/imgsearch [--text-model M.isw]
        [--minilm-dir DIR] [--quick] [--device cuda|cpu] [--json OUT.json]

Runs `imgsearch bench -o jsonl` on the device, then times the same workloads in
PyTorch with CUDA events (warm-up, then the median of repeated runs, inputs
rotated, never zeros) and prints our time, theirs and the ratio (theirs / ours:
above 1 means imgsearch is faster):

- inception_v3 fp16 batch B  vs torchvision inception_v3, fp16, channels_last,
                                 eager and torch.compile (random weights: timing
                                 does not depend on them)
- text fp16 batch B x T      vs the sentence-transformers model (MiniLM's BERT)
                                 in fp16 on the same token ids, with mean pooling
- knn f16 N D B k            vs torch.matmul (fp16) + torch.topk
With --device cpu everything runs in fp32 on the CPU (a smoke run).
"""
import argparse
import json
import statistics
import subprocess
import sys


def time_torch(fn, inputs, reps, device):
    import torch
    fn(inputs[0])  # warm-up (and compile)
    fn(inputs[1 % len(inputs)])
    times = []
    for r in range(reps):
        x = inputs[r % len(inputs)]
        if device == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(x)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        else:
            import time
            t0 = time.perf_counter()
            fn(x)
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def inception_runner(device, dtype, compiled):
    import torch
    import torchvision
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
    model = model.to(device=device, dtype=dtype, memory_format=torch.channels_last)
    if compiled:
        model = torch.compile(model)

    def make_inputs(batch):
        g = torch.Generator().manual_seed(batch)
        return [torch.rand(batch, 3, 299, 299, generator=g).mul(2).sub(1).to(device=device, dtype=dtype)
                .contiguous(memory_format=torch.channels_last) for _ in range(2)]

    def run(x):
        with torch.inference_mode():
            return model(x)
    return make_inputs, run


def text_runner(device, dtype, minilm_dir, isw_meta):
    """The Hugging Face model from its directory, or else a BertModel of the
    same shape with random weights (timing does not depend on the values)."""
    import torch
    from transformers import AutoModel, BertConfig, BertModel
    if minilm_dir:
        model = AutoModel.from_pretrained(minilm_dir)
    else:
        model = BertModel(BertConfig(vocab_size=isw_meta["bert.vocab_size"], hidden_size=isw_meta["bert.hidden_size"],
                                     num_hidden_layers=isw_meta["bert.num_layers"],
                                     num_attention_heads=isw_meta["bert.num_heads"],
                                     intermediate_size=isw_meta["bert.intermediate_size"],
                                     max_position_embeddings=isw_meta["bert.max_position_embeddings"]),
                          add_pooling_layer=False)
    model = model.eval().to(device=device, dtype=dtype)

    def make_inputs(batch, tokens):
        g = torch.Generator().manual_seed(batch * 1000 + tokens)
        v = model.config.vocab_size
        ids = torch.randint(1000 if v > 2000 else v // 2, v, (batch, tokens), generator=g)
        ids[:, 0], ids[:, -1] = isw_meta.get("tokenizer.cls_id", 101), isw_meta.get("tokenizer.sep_id", 102)
        mask = torch.ones_like(ids)
        return [(ids.to(device), mask.to(device)), (ids.roll(1, 1).to(device), mask.to(device))]

    def run(x):
        ids, mask = x
        with torch.inference_mode():
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1)
            return torch.nn.functional.normalize(e.float(), dim=1)
    return make_inputs, run


def knn_runner(device, dtype, n, d):
    import torch
    g = torch.Generator().manual_seed(n + d)
    table = torch.nn.functional.normalize(torch.rand(n, d, generator=g).mul(2).sub(1), dim=1).to(device, dtype)

    def make_inputs(b, k):
        return [(torch.nn.functional.normalize(torch.rand(b, d, generator=g).mul(2).sub(1), dim=1).to(device, dtype), k)
                for _ in range(2)]

    def run(x):
        q, k = x
        with torch.inference_mode():
            return torch.topk(q @ table.T, k, dim=1)
    return make_inputs, run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--imgsearch", required=True)
    ap.add_argument("--text-model", help="the .isw of the text model (for imgsearch)")
    ap.add_argument("--minilm-dir", help="the same model's Hugging Face directory (else PyTorch runs a BertModel "
                    "of the same shape with random weights)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--only", help="workloads, as imgsearch bench -w (inception, text, knn)")
    ap.add_argument("--json", help="write the comparison here too")
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("SKIPPED: PyTorch is not installed")
        return 77
    if a.device == "cuda" and not torch.cuda.is_available():
        print("SKIPPED: PyTorch sees no CUDA device")
        return 77

    cmd = [a.imgsearch, "bench", "-o", "jsonl", "--device", a.device,
           "-w", a.only or ("inception,text,knn" if a.text_model else "inception,knn")]
    if a.quick:
        cmd.append("--quick")
    if a.text_model:
        cmd += ["--text-model", a.text_model]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    ours = [json.loads(l) for l in out.splitlines() if l.strip()]
    if not ours:
        print("imgsearch bench measured nothing")
        return 1
    header = {"device": ours[0]["device"], **ours[0]["ceilings"]}
    dtype = torch.float16 if a.device == "cuda" else torch.float32
    ours_prec = "fp16" if a.device == "cuda" else "fp32"
    reps = 5 if a.quick else 20
    print(f"device: {header['device']}; torch {torch.__version__}; imgsearch ceilings: copy "
          f"{header['copy_gb_per_s']:.0f} GB/s, GEMM {header['gemm_tflop_per_s']:.1f} TFLOP/s")
    print(f"{'workload':44s} {'imgsearch ms':>12s} {'peer':>22s} {'peer ms':>10s} {'peer/ours':>9s}")
    rows = []
    runners = {}

    def report(name, ours_ms, peer, peer_ms):
        ratio = peer_ms / ours_ms
        rows.append({"workload": name, "imgsearch_ms": ours_ms, "peer": peer, "peer_ms": peer_ms, "ratio": ratio})
        print(f"{name:44s} {ours_ms:12.3f} {peer:>22s} {peer_ms:10.3f} {ratio:9.2f}")
        sys.stdout.flush()

    for r in ours:
        ms = r["ms_per_call"]
        if r["workload"] == "inception" and r["precision"] == ours_prec:
            b = r["batch"]
            name = f"inception_v3 {r['precision']} batch {b}"
            for compiled in ([False] if a.no_compile or a.device == "cpu" else [False, True]):
                key = ("inception", compiled)
                if key not in runners:
                    runners[key] = inception_runner(a.device, dtype, compiled)
                make, run = runners[key]
                report(name, ms, "torch.compile" if compiled else "torch eager", time_torch(run, make(b), reps, a.device))
            continue
        if r["workload"] == "text" and r["precision"] == ours_prec:
            name = f"text {r['precision']} batch {r['batch']} x {r['tokens']} tokens"
            if "text" not in runners:
                info = json.loads(subprocess.run([a.imgsearch, "info", "--json", a.text_model], check=True,
                                                 capture_output=True, text=True).stdout)
                meta = {x["key"]: x["value"] for x in info["metadata"]}
                runners["text"] = text_runner(a.device, dtype, a.minilm_dir, meta)
            make, run = runners["text"]
            report(name, ms, "transformers eager", time_torch(run, make(r["batch"], r["tokens"]), reps, a.device))
            continue
        if r["workload"] == "knn":
            n, d, b, k = r["rows"], r["dim"], r["batch"], r["k"]
            name = f"knn f16 N={n} D={d} B={b} k={k}"
            key = ("knn", n, d)
            if key not in runners:
                runners = {kk: v for kk, v in runners.items() if kk[0] != "knn"}  # one table in memory at a time
                runners[key] = knn_runner(a.device, dtype, n, d)
            make, run = runners[key]
            report(name, ms, "matmul + topk", time_torch(run, make(b, k), reps, a.device))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
