"""Build routing's labelled examples (`deploy/config/category_examples.jsonl`) from the corpora.

    python tools/build_category_examples.py            # write the file
    python tools/build_category_examples.py --check    # exit 1 when the file is stale
    python tools/build_category_examples.py --report   # the model set by set, each held out

The examples are the text and expected category of every item of `TRAINING_SETS`. The last
held-out set (`corpus/holdout3.jsonl`) is never among them: it is the judge of the model.
`--report` trains on all training sets but one and scores the one left out, for each in turn
(the model's own accuracy, and its margins when right and when wrong), which is how
`phoihop_routing.learned.TAKE_MARGIN` was chosen.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from phoihop_common.config import load_reference
from phoihop_routing.classify import Classifier
from phoihop_routing.learned import EXAMPLES_FILE, TAKE_MARGIN, CategoryModel

ROOT = Path(__file__).resolve().parents[1]
TRAINING_SETS = ("dev", "written", "blind", "holdout", "holdout2")
HELD_OUT = ("holdout3",)


def examples(corpus_dir: Path) -> list[dict[str, str]]:
    """Id, text and category of every training item, in set and file order."""
    out = []
    for name in TRAINING_SETS:
        for line in (corpus_dir / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                doc = json.loads(line)
                out.append(
                    {"id": doc["id"], "text": doc["text"], "category": doc["expected"]["category"]}
                )
    return out


def render(rows: list[dict[str, str]]) -> str:
    """The file's text: one JSON object per line, diacritics as written."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def report(rows: list[dict[str, str]], classifier: Classifier) -> None:
    """Each training set held out in turn: accuracy and margins of the model's guesses."""
    folded = {r["id"]: classifier.prepare(r["text"]).folded for r in rows}
    for held in TRAINING_SETS:
        held_ids = {r["id"] for r in rows if _set_of(r["id"]) == held}
        train = [r for r in rows if r["id"] not in held_ids]
        model = CategoryModel.train(
            texts=[folded[r["id"]] for r in train], categories=[r["category"] for r in train]
        )
        right: list[float] = []
        wrong: list[float] = []
        for r in (r for r in rows if r["id"] in held_ids):
            guess = model.guess(folded[r["id"]])
            (right if guess.category == r["category"] else wrong).append(guess.margin)
        sure_wrong = sum(m >= TAKE_MARGIN for m in wrong)
        sure_right = sum(m >= TAKE_MARGIN for m in right)
        n = len(right) + len(wrong)
        print(
            f"{held:9} {n:4} items  model accuracy {len(right) / n:.3f}  "
            f"sure (margin >= {TAKE_MARGIN}): {sure_right} right, {sure_wrong} wrong"
        )


def _set_of(item_id: str) -> str:
    """The training set an item id comes from (its letter)."""
    letters = {"D": "dev", "W": "written", "B": "blind", "H": "holdout", "K": "holdout2"}
    return letters[item_id[0]]


def main(argv: list[str] | None = None) -> int:
    """Write, check or report on the examples file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus-dir", type=Path, default=ROOT / "corpus")
    parser.add_argument("--config-dir", type=Path, default=ROOT / "deploy" / "config")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    group.add_argument("--report", action="store_true", help="each training set held out")
    args = parser.parse_args(argv)
    rows = examples(args.corpus_dir)
    target = args.config_dir / EXAMPLES_FILE
    if args.report:
        report(rows, Classifier.from_config(reference=load_reference(args.config_dir)))
        return 0
    text = render(rows)
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target} is stale: run python tools/build_category_examples.py")
            return 1
        print(f"{target}: {len(rows)} examples, up to date")
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}: {len(rows)} examples from {', '.join(TRAINING_SETS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
