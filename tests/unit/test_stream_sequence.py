"""The stream sequence read from a delivery's reply subject equals nats-py's metadata."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg

from cryptodudez.stream.consumer import stream_sequence, to_message

numbers = st.integers(min_value=1, max_value=2**63 - 1)


def _msg(reply: str) -> Msg:
    return Msg(_client=None, subject="cryptomood.trades.BTC", reply=reply,  # type: ignore[arg-type]
               data=b"{}", headers={"Cryptomood-Published-Ns": "17", "Cryptomood-Origin": "f:3"})


@given(delivered=numbers, sseq=numbers, cseq=numbers, pending=st.integers(0, 10**9),
       domain=st.sampled_from(["_", "hub"]), v2=st.booleans(),
       v2_tail=st.sampled_from(["", ".tok", ".tok.more"]))
def test_the_sequence_is_the_one_nats_py_parses(delivered: int, sseq: int, cseq: int,
                                               pending: int, domain: str, v2: bool,
                                               v2_tail: str) -> None:
    """v1 (9 tokens) and v2 with 11, 12 or 13 tokens, as nats-py accepts them."""
    head = f"$JS.ACK.{domain}.ACCHASH" if v2 else "$JS.ACK"
    tail = v2_tail if v2 else ""
    reply = f"{head}.CRYPTOMOOD.mood.{delivered}.{sseq}.{cseq}.1796094749675779800.{pending}{tail}"
    msg = _msg(reply)
    assert stream_sequence(reply) == msg.metadata.sequence.stream == sseq
    message = to_message(msg)
    assert (message.seq, message.published_ns, message.origin) == (sseq, 17, "f:3")


@pytest.mark.parametrize("reply", [None, "", "_INBOX.abc.1", "$JS.ACK.S.c.1.2",
                                   "$JS.NAK.S.c.1.2.3.4.5",
                                   "$JS.ACK.S.c.1.2.3.4.5.6",  # 10 tokens: neither form
                                   "$JS.ACK.S.c.1.2.3.4"])  # 8 tokens
def test_a_reply_that_is_not_a_delivery_is_refused(reply: str | None) -> None:
    with pytest.raises(ValueError, match="not a JetStream delivery"):
        stream_sequence(reply)
