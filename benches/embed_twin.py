"""transformers on the shapes `cargo bench --bench embed` times (run by hand, for BENCHMARKS.md).

    python benches/embed_twin.py [--threads 2] [--batches 3]

DINOv2-base (Dinov2Config with the facebook/dinov2-base sizes: 768 wide, 12 layers, patch 14,
trained at 518 px) on batches of 8 crops at 224 px, and BERT-base (bert-base-uncased sizes) on
batches of 8 texts of 128 tokens; random weights, eval mode, no_grad, float32, the same warm-up
and timed batches as the Rust side.
"""

import argparse
import json
import time

import torch
from transformers import BertConfig, BertModel, Dinov2Config, Dinov2Model


def timed(step, batches, batch):
    step()
    each = []
    for _ in range(batches):
        t = time.perf_counter()
        step()
        each.append(time.perf_counter() - t)
    return batches * batch / sum(each), each


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    report = {}
    dinov2 = Dinov2Model(Dinov2Config(image_size=518, patch_size=14)).eval()
    pixels = torch.randn(8, 3, 224, 224)
    with torch.no_grad():
        rate, each = timed(lambda: dinov2(pixel_values=pixels).pooler_output, args.batches, 8)
    print(f"transformers dinov2-base 224 px: {rate:.2f} crops/s (batches: {[round(e, 2) for e in each]} s)")
    report["dinov2_crops_per_s"] = rate
    bert = BertModel(BertConfig()).eval()
    ids = torch.randint(100, 30000, (8, 128))
    mask = torch.ones(8, 128, dtype=torch.long)
    with torch.no_grad():
        rate, each = timed(lambda: bert(input_ids=ids, attention_mask=mask).last_hidden_state, args.batches, 8)
    print(f"transformers bert-base 128 tokens: {rate:.2f} texts/s (batches: {[round(e, 2) for e in each]} s)")
    report["bert_texts_per_s"] = rate
    print("RESULT", json.dumps(report), f"torch {torch.__version__}", f"threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
