import asyncio

import pytest

from voiceapi_async._gate import PageGate


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_tokens_run_out_and_come_back() -> None:
    """A gate admits up to its budget at once; a release admits the next one."""
    gate = PageGate(2)
    assert await gate.admit(0) is True
    assert await gate.admit(0) is True
    assert gate.free == 0
    third = asyncio.create_task(gate.admit(0))
    await settle()
    assert not third.done()
    gate.release()
    assert await third is True
    gate.release()
    gate.release()
    assert gate.free == 2


@pytest.mark.asyncio
async def test_the_earliest_window_is_admitted_first() -> None:
    """Waiters are admitted by window rank, then by arrival."""
    gate = PageGate(1)
    await gate.admit(0)
    order: list[str] = []

    async def wait(rank: int, name: str) -> None:
        await gate.admit(rank)
        order.append(name)

    async with asyncio.TaskGroup() as group:
        for rank, name in [(5, "late"), (2, "early-1"), (9, "last"), (2, "early-2")]:
            group.create_task(wait(rank, name))
            await settle()
        for _ in range(4):
            gate.release()
            await settle()
    assert order == ["early-1", "early-2", "late", "last"]


@pytest.mark.asyncio
async def test_the_head_window_passes_without_a_token() -> None:
    """Later windows holding every token cannot block the window being delivered."""
    gate = PageGate(1)
    assert await gate.admit(3) is True
    head = asyncio.create_task(gate.admit(1))
    later = asyncio.create_task(gate.admit(4))
    await settle()
    assert not head.done()
    gate.advance(1)
    assert await head is False
    assert await gate.admit(0) is False
    await settle()
    assert not later.done()
    gate.release()
    assert await later is True
    gate.release()
    assert gate.free == 1


@pytest.mark.asyncio
async def test_a_cancelled_waiter_loses_no_token() -> None:
    """Cancelling a waiter, even one just handed a token, keeps the count right."""
    gate = PageGate(1)
    await gate.admit(0)
    waiting = asyncio.create_task(gate.admit(0))
    await settle()
    waiting.cancel()
    await asyncio.wait({waiting})
    gate.release()
    assert gate.free == 1

    await gate.admit(0)
    handed = asyncio.create_task(gate.admit(0))
    await settle()
    gate.release()  # the waiter now holds the token, but has not run yet
    handed.cancel()
    await asyncio.wait({handed})
    assert handed.cancelled()
    assert gate.free == 1


def test_a_budget_below_one_is_refused() -> None:
    """A gate with no tokens would admit nothing."""
    with pytest.raises(ValueError, match="budget must be 1 or more"):
        PageGate(0)


@pytest.mark.asyncio
async def test_an_admission_holds_a_token_for_its_block_and_gives_it_back() -> None:
    """An admission takes its window's token for the block, and returns it however it ends."""
    gate = PageGate(1)
    admission = gate.admission(2)
    async with admission.holding():
        assert gate.free == 0
    assert gate.free == 1
    with pytest.raises(RuntimeError, match="boom"):
        async with admission.holding():
            raise RuntimeError("boom")
    assert gate.free == 1
    gate.advance(2)
    async with admission.holding():
        assert gate.free == 1  # the head passes without a token
    assert gate.free == 1


@pytest.mark.asyncio
async def test_a_larger_budget_admits_waiters_at_once_and_a_smaller_one_as_tokens_return() -> None:
    """resize(): growing hands the new tokens to waiters; shrinking takes back returns first."""
    gate = PageGate(1)
    assert await gate.admit(0) is True
    waiting = [asyncio.create_task(gate.admit(0)) for _ in range(2)]
    await settle()
    gate.resize(3)
    assert [await task for task in waiting] == [True, True]
    assert gate.free == 0
    gate.resize(1)  # three held, one allowed: the next two returns are kept
    later = asyncio.create_task(gate.admit(0))
    gate.release()
    gate.release()
    await settle()
    assert not later.done()
    gate.release()
    assert await later is True
    with pytest.raises(ValueError, match="1 or more"):
        gate.resize(0)
