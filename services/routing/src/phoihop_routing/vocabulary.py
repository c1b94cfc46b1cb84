"""The light statistical component of classification: token weights from the rules' own terms.

Derived only from `routing_rules.yaml` and the categories' "covers" lists, never from
labelled data (that is `learned`): a token used by one category weighs 1, by k categories 1/k.
"""

from __future__ import annotations

from collections import defaultdict

from phoihop_common.config import Reference
from phoihop_routing.rules import RoutingRules
from phoihop_routing.textmatch import exact_phrase, fold_phrase

# Words that carry no field on their own (report boilerplate, function words); the
# statistical component ignores them.
STOPWORDS = frozenset(
    """
    cu tri de nghi kien xem xet giai quyet phan anh nhan dan ba con nguoi cac nhung da
    dang se va voi cua cho tu den trong tren duoc bi khong chua nhieu rat lam mot so
    hien nay khi thi ma la co o tai ve qua sau truoc nam thang ngay gio xa phuong tinh
    thon to ban khu dac ho nha gia dinh toi chung ong hai cung nhu de theo vao ra len
    xuong lai nua con viec tinh trang som co quan chuc nang huong dan kiem tra ho tro
    dau tu sua chua cai tao xay dung nang cap bo sung thuc hien bao dam dam bao tang
    cuong quan ly hoat dong chinh sach che do quy dinh doi voi giai doan
    """.split()  # noqa: SIM905
)


def vocabulary_weights(
    *, rules: RoutingRules, reference: Reference, toned: bool
) -> dict[str, dict[str, float]]:
    """Token -> {category: weight}, from the rules' terms and the categories' covers lists.

    A token used by one category weighs 1, by k categories 1/k; tokens used by more than
    three categories and stop words are dropped. No labelled data is involved. Tokens are
    folded words, or with `toned` words with their diacritics (for texts that have them).
    """
    used: dict[str, set[str]] = defaultdict(set)
    sources: list[tuple[str, str]] = [
        (r.category, t) for r in rules.categories if r.category for t in (*r.terms, *r.exact)
    ]
    sources += [(c.code, c.covers) for c in reference.categories]
    for category, phrase in sources:
        if category == rules.unplaced_category:
            continue
        words = exact_phrase(phrase).split() if toned else fold_phrase(phrase).split()
        for word in words:
            plain = fold_phrase(word)
            if plain not in STOPWORDS and not plain.isdigit() and len(plain) > 1:
                used[word].add(category)
    return {
        word: {cat: 1.0 / len(cats) for cats_ in [cats] for cat in cats_}
        for word, cats in used.items()
        if len(cats) <= 3
    }
