"""Writes the multi-class data sets of `data/multiclass/` from their
original files (standard library only; see README.md for the sources).

    python data/multiclass/convert.py --cb-dir DIR --sst-dir DIR --trec-dir DIR [--out data/multiclass]

* CB (`DIR/train.jsonl`, `DIR/val.jsonl`, SuperGLUE's files): copied byte
  for byte to `cb/train.jsonl`, `cb/val.jsonl`.
* SST-5 (`DIR/train.txt`, `dev.txt`, `test.txt`, the PTB trees of
  `trainDevTestTrees_PTB.zip`): one row per tree, `sentence` = the tree's
  leaves joined by single spaces (the tokens as they are: `-LRB-`, `\\/`,
  `` `` `` stay), `label` = the root's label 0-4, to `sst5/{train,dev,test}.tsv`.
* TREC (`DIR/train_5500.label`, `DIR/TREC_10.label`, ISO-8859-1): one row per
  line, `question` = the text after the first space, `label` = the coarse
  class before the colon, `fine_label` = the whole first field, to
  `trec/{train,test}.tsv` (UTF-8).

Every output is checked: no tab or newline in a text, the row count equal
to the source's line count. The sha256 of every input and output is printed.
"""

import argparse
import hashlib
import os
import re
import shutil

_LEAF = re.compile(r"\((\d) ([^()]+)\)")  # a leaf: "(label text)"; text may hold a space ("8 1\\/2")
_ROOT = re.compile(r"\((\d) ")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tree_sentence(line):
    """(root label, the leaves joined by spaces) of one PTB-style SST tree."""
    line = line.strip()
    root = _ROOT.match(line)
    leaves = _LEAF.findall(line)
    nodes = line.count("(")
    # A binary tree with n leaves has 2n - 1 nodes; anything else is damage.
    if root is None or not line.endswith(")") or nodes != line.count(")") \
            or nodes != 2 * len(leaves) - 1:
        raise ValueError(f"not a binary sentiment tree: {line[:80]!r}")
    return int(root.group(1)), " ".join(text for _, text in leaves)


def write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            for value in row:
                if "\t" in value or "\n" in value or "\r" in value:
                    raise ValueError(f"{path}: tab or newline in {value!r}")
            f.write("\t".join(row) + "\n")


def convert_sst(src, out):
    os.makedirs(out, exist_ok=True)
    for split in ("train", "dev", "test"):
        with open(os.path.join(src, f"{split}.txt"), encoding="utf-8") as f:
            lines = [l for l in f.read().split("\n") if l.strip()]
        rows = []
        for line in lines:
            label, sentence = tree_sentence(line)
            rows.append((sentence, str(label)))
        write_tsv(os.path.join(out, f"{split}.tsv"), ("sentence", "label"), rows)


def convert_trec(src, out):
    os.makedirs(out, exist_ok=True)
    for name, split in (("train_5500.label", "train"), ("TREC_10.label", "test")):
        with open(os.path.join(src, name), encoding="latin-1", newline="") as f:
            lines = [l for l in f.read().split("\n") if l.strip()]
        rows = []
        for line in lines:
            fine, question = line.split(" ", 1)
            coarse = fine.split(":", 1)[0]
            rows.append((question, coarse, fine))
        write_tsv(os.path.join(out, f"{split}.tsv"), ("question", "label", "fine_label"), rows)


def convert_cb(src, out):
    os.makedirs(out, exist_ok=True)
    for name in ("train.jsonl", "val.jsonl"):
        shutil.copyfile(os.path.join(src, name), os.path.join(out, name))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cb-dir", required=True)
    parser.add_argument("--sst-dir", required=True)
    parser.add_argument("--trec-dir", required=True)
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args(argv)
    convert_cb(args.cb_dir, os.path.join(args.out, "cb"))
    convert_sst(args.sst_dir, os.path.join(args.out, "sst5"))
    convert_trec(args.trec_dir, os.path.join(args.out, "trec"))
    for src in (args.cb_dir, args.sst_dir, args.trec_dir):
        for name in sorted(os.listdir(src)):
            print(f"in  {sha256(os.path.join(src, name))}  {os.path.join(src, name)}")
    for sub in ("cb", "sst5", "trec"):
        for name in sorted(os.listdir(os.path.join(args.out, sub))):
            path = os.path.join(args.out, sub, name)
            print(f"out {sha256(path)}  {sub}/{name}")


if __name__ == "__main__":
    main()
