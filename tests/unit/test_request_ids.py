"""Request ids: 32 random hex digits, drawn in blocks, never repeated, never shared with a
forked child."""

from __future__ import annotations

import os
import re

import pytest

from app.request_id import RandomIds, new_request_id

HEX_32 = re.compile(r"[0-9a-f]{32}")


def test_ids_are_32_hex_digits_and_blocks_do_not_repeat() -> None:
    ids = RandomIds(batch=4)
    drawn = [ids.next() for _ in range(4 * 50)]  # fifty blocks
    assert all(HEX_32.fullmatch(item) for item in drawn)
    assert len(set(drawn)) == len(drawn)
    assert HEX_32.fullmatch(new_request_id())


def test_a_forked_child_draws_its_own_ids() -> None:
    ids = RandomIds(batch=8)
    ids.next()  # the parent holds seven undrawn ids
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(reader)
        os.write(writer, ids.next().encode())
        os._exit(0)
    os.close(writer)
    from_child = os.read(reader, 64).decode()
    os.close(reader)
    os.waitpid(child, 0)
    assert HEX_32.fullmatch(from_child)
    assert from_child not in [ids.next() for _ in range(7)], "the parent's id in the child"


def test_a_block_is_one_urandom_call_cut_into_its_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four ids per draw: three draws of 64 bytes for twelve ids, each id 16 of those bytes."""
    draws: list[bytes] = []
    urandom = os.urandom

    def counted(size: int) -> bytes:
        draws.append(urandom(size))
        return draws[-1]

    monkeypatch.setattr(os, "urandom", counted)
    ids = RandomIds(batch=4)
    drawn = [ids.next() for _ in range(12)]
    assert [len(draw) for draw in draws] == [64, 64, 64]
    assert sorted(drawn) == sorted(draw[start:start + 16].hex()
                                   for draw in draws for start in range(0, 64, 16))
