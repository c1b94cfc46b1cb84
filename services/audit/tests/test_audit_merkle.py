"""RFC 6962 Merkle proofs: every proof for every small tree verifies; altered ones do not."""

from __future__ import annotations

import hashlib

from phoihop_audit import merkle


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"record {i}".encode()) for i in range(n)]


def test_root_matches_rfc6962_definition_and_prefix_roots() -> None:
    leaves = _leaves(7)
    # MTH(7) = H(1 || MTH(0:4) || MTH(4:7)), MTH(4:7) = H(1 || MTH(4:6) || leaf 6)
    l4 = merkle.node_hash(
        merkle.node_hash(leaves[0], leaves[1]), merkle.node_hash(leaves[2], leaves[3])
    )
    r3 = merkle.node_hash(merkle.node_hash(leaves[4], leaves[5]), leaves[6])
    assert merkle.root(leaves) == merkle.node_hash(l4, r3)
    assert merkle.root([]) == hashlib.sha256(b"").digest()
    roots = merkle.prefix_roots(leaves, range(8))
    assert all(roots[n] == merkle.root(leaves[:n]) for n in range(8))


def test_every_inclusion_proof_verifies_and_a_wrong_one_fails() -> None:
    leaves = _leaves(33)
    for size in range(1, 34):
        tree = leaves[:size]
        root = merkle.root(tree)
        for index in range(size):
            proof = merkle.inclusion_proof(index, tree)
            assert merkle.verify_inclusion(
                index=index, tree_size=size, leaf=tree[index], proof=proof, root_hash=root
            )
            assert not merkle.verify_inclusion(
                index=index,
                tree_size=size,
                leaf=merkle.leaf_hash(b"forged"),
                proof=proof,
                root_hash=root,
            )
            if size > 1:
                assert not merkle.verify_inclusion(
                    index=(index + 1) % size,
                    tree_size=size,
                    leaf=tree[index],
                    proof=proof,
                    root_hash=root,
                )


def test_every_consistency_proof_verifies_and_a_rewritten_history_fails() -> None:
    leaves = _leaves(33)
    for second in range(1, 34):
        second_root = merkle.root(leaves[:second])
        for first in range(1, second + 1):
            proof = merkle.consistency_proof(first, leaves[:second])
            first_root = merkle.root(leaves[:first])
            assert merkle.verify_consistency(
                first=first,
                second=second,
                first_root=first_root,
                second_root=second_root,
                proof=proof,
            ), (first, second)
            rewritten = [*leaves[: first - 1], merkle.leaf_hash(b"rewritten")]
            if first < second:
                assert not merkle.verify_consistency(
                    first=first,
                    second=second,
                    first_root=merkle.root(rewritten),
                    second_root=second_root,
                    proof=proof,
                )
