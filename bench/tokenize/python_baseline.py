"""The Python baseline of the tokenize benchmark: the same counts as
`trace tokenize --chat-template none`, with Hugging Face `tokenizers`'
encode_batch.

Usage: python_baseline.py TRACE.parquet TOKENIZER.json

Reads the trace with pyarrow, builds every turn's prompt as trace does
(the session's messages so far, each earlier reply as a message, joined
with "\\n"), and encodes three batches: every message, every reference
output, every prompt (with special tokens). Prints one JSON line with the
token totals (which must equal trace's) and the seconds spent.
"""

import json
import sys
import time

import pyarrow.parquet as pq
from tokenizers import Tokenizer


def main():
    trace, tok_file = sys.argv[1], sys.argv[2]
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(tok_file)
    tok.no_truncation()
    tok.no_padding()
    cols = pq.read_table(
        trace,
        columns=["session_id", "turn", "messages", "reset_context", "reference_output"],
    ).to_pydict()
    order = {}
    for i, s in enumerate(cols["session_id"]):
        order.setdefault(s, []).append(i)
    message_texts, references, prompts = [], [], []
    for rows in order.values():
        rows.sort(key=lambda i: cols["turn"][i])
        history = []
        for i in rows:
            if cols["reset_context"][i]:
                history = []
            texts = [m["content"] for m in cols["messages"][i]]
            message_texts.extend(texts)
            prompts.append("\n".join(history + texts))
            history.extend(texts)
            ref = cols["reference_output"][i]
            if ref is not None:
                references.append(ref)
                history.append(ref)
    t1 = time.perf_counter()
    totals = {}
    for name, batch, special in [
        ("new_tokens", message_texts, False),
        ("reference_output_tokens", references, False),
        ("prompt_tokens", prompts, True),
    ]:
        totals[name] = sum(len(e.ids) for e in tok.encode_batch(batch, add_special_tokens=special))
    t2 = time.perf_counter()
    print(json.dumps({**totals, "messages": len(message_texts) + len(references),
                      "prepare_seconds": t1 - t0, "encode_seconds": t2 - t1, "seconds": t2 - t0}))


if __name__ == "__main__":
    main()
