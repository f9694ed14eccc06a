"""Checks the token columns of a trace written by `trace tokenize` against
Python's `tokenizers` and `transformers` on the same rows.

Usage: compare.py TRACE TOKENIZER MODE [TEMPLATE_FILE] [--expect-input-tokens]

TOKENIZER is a tokenizer.json or a folder holding one (and, for MODE
`template`, a tokenizer_config.json with a chat template). MODE is
`template` (the prompt is rendered by transformers' apply_chat_template with
add_generation_prompt=True, then encoded without special tokens) or
`plain` (the messages joined with "\\n", encoded with special tokens).
TEMPLATE_FILE replaces the tokenizer's own chat template.

The prompt of a turn is rebuilt independently from docs/tokenize.md: the
session's earlier messages, each earlier turn's reference_output (with its
reference_tool_calls) as an assistant message, restarting at reset_context.
With --expect-input-tokens, rows that have input_tokens must also have
exactly that many prompt tokens (the check of `--materialize`).

Prints a JSON summary; exits 1 on the first mismatches (listed).
"""

import json
import os
import sys

import pyarrow.parquet as pq
from tokenizers import Tokenizer


def plain_text(m):
    calls = m.get("_calls_text")
    if calls is None:
        return m["content"]
    if m["content"] == "":
        return calls
    return m["content"] + "\n" + calls


def to_msg(role, content, tool_calls, tool_call_id):
    m = {"role": role, "content": content}
    if tool_calls is not None:
        m["tool_calls"] = json.loads(tool_calls)
        m["_calls_text"] = tool_calls
    if tool_call_id is not None:
        m["tool_call_id"] = tool_call_id
    return m


def for_template(msgs):
    return [{k: v for k, v in m.items() if not k.startswith("_")} for m in msgs]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    expect_input = "--expect-input-tokens" in sys.argv
    trace, tok_path, mode = args[:3]
    template_file = args[3] if len(args) > 3 else None
    tok_file = os.path.join(tok_path, "tokenizer.json") if os.path.isdir(tok_path) else tok_path
    tok = Tokenizer.from_file(tok_file)
    tok.no_truncation()
    tok.no_padding()
    hf = None
    if mode == "template":
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(tok_path)
        if template_file:
            with open(template_file, encoding="utf-8") as f:
                hf.chat_template = f.read()
        assert hf.chat_template, "the tokenizer has no chat template"

    def n(text, special=False):
        return len(tok.encode(text, add_special_tokens=special).ids)

    rows = pq.read_table(trace).to_pylist()
    sessions = {}
    for i, r in enumerate(rows):
        sessions.setdefault(r["session_id"], []).append(i)
    mismatches = []
    checked = 0
    for idx in sessions.values():
        idx.sort(key=lambda i: rows[i]["turn"])
        history = []
        for i in idx:
            r = rows[i]
            if r["reset_context"]:
                history = []
            msgs = [
                to_msg(m["role"], m["content"], m["tool_calls"], m["tool_call_id"])
                for m in r["messages"]
            ]
            new = sum(n(plain_text(m)) for m in msgs)
            if mode == "template":
                text = hf.apply_chat_template(
                    for_template(history + msgs), tokenize=False, add_generation_prompt=True
                )
                prompt = n(text)
            else:
                prompt = n("\n".join(plain_text(m) for m in history + msgs), special=True)
            ref = r["reference_output"]
            ref_tokens = None if ref is None else n(ref)
            want = {"new_tokens": new, "prompt_tokens": prompt, "reference_output_tokens": ref_tokens}
            if expect_input and r["input_tokens"] is not None:
                want["input_tokens"] = prompt
            for col, value in want.items():
                got = r[col]
                if got != value:
                    mismatches.append(
                        {"request_id": r["request_id"], "column": col, "trace": got, "python": value}
                    )
            checked += 1
            history += msgs
            if ref is not None or r["reference_tool_calls"] is not None:
                history.append(
                    to_msg("assistant", ref if ref is not None else "", r["reference_tool_calls"], None)
                )
    print(json.dumps({"rows": checked, "sessions": len(sessions), "mismatches": len(mismatches),
                      "first": mismatches[:10]}))
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
