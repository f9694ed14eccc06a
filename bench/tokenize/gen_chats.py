"""Writes a ShareGPT-like JSONL file of multi-turn chats for the tokenize benchmark.

Usage: gen_chats.py OUT.jsonl [--messages N] [--seed S]

Each record has 1-5 exchanges (a human message, then a gpt reply) of
40-1,200 characters cut from a corpus of English words with some Chinese,
accented text, emoji, numbers, code and newlines, so that the tokenizer
meets what real chats hold. Records are written until the file holds N
messages (human and gpt together, default 220,000). Deterministic for a
seed; written to OUT.tmp and renamed when complete.
"""

import argparse
import json
import os
import random

WORDS = (
    "the of and to in is that for it as with was on be by this are or at from "
    "model data server request token latency batch cache prefix context user "
    "assistant answer question function return value error memory throughput "
    "python rust parquet column schema stream buffer thread queue sample trace "
    "replay session turn prompt output input length window block hash compute "
    "because however therefore example following important different possible"
).split()
OTHER = ["数据", "模型", "请求", "缓存", "你好，世界。", "谢谢", "こんにちは", "café", "Größe",
         "😀", "🚀", "→", "2024-05-17", "3.14159", "42", "1,000,000"]
CODE = ['print("hello, world")\n', "if (x > 0) {\n\treturn x;\n}\n", "for i in range(10):\n    total += i\n"]


def corpus(rng, chars):
    out, size = [], 0
    while size < chars:
        roll = rng.random()
        if roll < 0.06:
            piece = rng.choice(OTHER)
        elif roll < 0.07:
            piece = "\n```\n" + rng.choice(CODE) + "```\n"
        elif roll < 0.09:
            piece = rng.choice(WORDS) + ".\n"
        else:
            piece = rng.choice(WORDS)
        out.append(piece)
        size += len(piece) + 1
    return " ".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--messages", type=int, default=220_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    text = corpus(rng, 2_000_000)

    def cut():
        n = rng.randint(40, 1200)
        start = rng.randrange(0, len(text) - n)
        return text[start : start + n]

    tmp = args.out + ".tmp"
    written = records = 0
    with open(tmp, "w", encoding="utf-8") as f:
        while written < args.messages:
            conv = []
            for _ in range(rng.randint(1, 5)):
                conv.append({"from": "human", "value": cut()})
                conv.append({"from": "gpt", "value": cut()})
            written += len(conv)
            f.write(json.dumps({"id": f"chat_{records}", "conversations": conv}, ensure_ascii=False))
            f.write("\n")
            records += 1
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {records} records, {written} messages")


if __name__ == "__main__":
    main()
