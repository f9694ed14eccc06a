"""Writes a ShareGPT-like JSON array for the conversion benchmark.

Usage: gen_sharegpt.py OUT.json [--bytes N] [--seed S]

Records look like real ShareGPT dumps: `{"id", "conversations": [{"from",
"value"}, ...]}` with 2-8 exchanges (human then gpt), messages of about
1,000-2,000 characters of English-like prose with some Chinese, accented
and emoji text, quotes, backslashes, tabs and newlines (so the JSON has
escapes), pretty-printed with two-space indentation. About one record in
ten is written with ASCII escapes (`\\uXXXX`) as some dumps are. The file is
written to OUT.json.tmp and renamed when complete. Deterministic for a seed.
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
    "network layer attention kernel matrix vector gradient training inference "
    "because however therefore example following important different possible"
).split()
NON_ASCII = [
    "数据", "模型", "请求", "缓存", "你好", "谢谢", "こんにちは", "データ",
    "café", "naïve", "résumé", "Größe", "Ärger", "señal", "😀", "🚀", "→", "€",
]
CODE = [
    'print("hello, world")\n',
    "if (x > 0) {\n\treturn \"yes\";\n}\n",
    'path = "C:\\\\Users\\\\data\\\\file.json"\n',
    "for i in range(10):\n    total += i  # running sum\n",
]


def corpus(rng, chars):
    """One long string of prose to cut messages from."""
    out, size = [], 0
    while size < chars:
        roll = rng.random()
        if roll < 0.04:
            piece = rng.choice(NON_ASCII)
        elif roll < 0.05:
            piece = "\n\n```\n" + rng.choice(CODE) + "```\n\n"
        elif roll < 0.06:
            piece = '"' + rng.choice(WORDS) + '"'
        elif roll < 0.075:
            piece = rng.choice(WORDS) + ".\n"
        else:
            piece = rng.choice(WORDS)
        out.append(piece)
        size += len(piece) + 1
    return " ".join(out)


def message(rng, text):
    length = rng.randint(1000, 2000)
    start = rng.randrange(0, len(text) - length)
    return text[start : start + length]


def record(rng, text, index):
    conversations = []
    for _ in range(rng.randint(2, 8)):
        conversations.append({"from": "human", "value": message(rng, text)})
        conversations.append({"from": "gpt", "value": message(rng, text)})
    return {"id": f"bench_{index}", "conversations": conversations}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--bytes", type=int, default=1_100_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    text = corpus(rng, 4_000_000)
    tmp = args.out + ".tmp"
    written, index = 0, 0
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("[\n")
        written += 2
        while written < args.bytes:
            rec = record(rng, text, index)
            body = json.dumps(rec, ensure_ascii=rng.random() < 0.1, indent=2)
            chunk = ("  " if index == 0 else ",\n  ") + body.replace("\n", "\n  ")
            f.write(chunk)
            written += len(chunk.encode("utf-8"))
            index += 1
        f.write("\n]\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {index} records, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
